# Open-AutoGLM traffic monitor.
#   make build   every binary into bin/
#   make test    installs what the tests need, then runs every test (unit, integration, end to end)
#                and a short fuzzing budget per fuzz target (make fuzz)
#   make bench   benchmarks that print tables
#   make demo    the native quickstart

GO        ?= go
BIN       := bin
PKG       := github.com/open-autoglm/autoglm-monitor
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/prometheus/common/version.Version=$(VERSION) \
             -X github.com/prometheus/common/version.Revision=$(REVISION) \
             -X github.com/prometheus/common/version.Branch=$(BRANCH) \
             -X github.com/prometheus/common/version.BuildUser=autoglm \
             -X github.com/prometheus/common/version.BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
CMDS      := $(notdir $(wildcard cmd/*))
TEST_TIMEOUT ?= 60m
# Fuzz targets of inputs that come from outside (package:target), and the
# time each gets in make test; seeds are committed under testdata/fuzz/.
FUZZ_TARGETS := ./receiver/api:FuzzDecode ./rulegen/backtest:FuzzReadCSV \
                ./exporter/accesslog:FuzzParsers ./exporter/accesslog:FuzzSplit
FUZZTIME     ?= 10s

.PHONY: all build test test-deps demo-deps fuzz bench demo generate lint clean

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# Real Prometheus, Alertmanager, promtool and amtool from Debian, plus tracefs for eBPF.
test-deps:
	@./deploy/install-deps.sh

test: test-deps build
	AUTOGLM_REQUIRE_TOOLS=1 AUTOGLM_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	cd deploy/helm && AUTOGLM_REQUIRE_TOOLS=1 $(GO) test -count=1 ./...
	@$(MAKE) --no-print-directory fuzz

# A failing input is written to the package's testdata/fuzz/<target>/:
# commit it with the fix, and it stays a regression test.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

bench: test-deps build
	AUTOGLM_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -p 1 -bench . -benchtime 1x -timeout 60m ./...

# Prometheus and Alertmanager from Debian where the packages can be installed
# (root, apt-get); otherwise autoglm-demo builds them from source and says so.
demo-deps:
	@./deploy/install-deps.sh --demo

demo: demo-deps build
	$(BIN)/autoglm-demo

generate:
	$(GO) generate ./...
	cd deploy/helm && $(GO) generate ./...

lint:
	$(GO) vet ./...
	cd deploy/helm && $(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

clean:
	rm -rf $(BIN)
