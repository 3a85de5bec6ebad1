// Package testenv finds the real programs integration tests run against
// (Prometheus, Alertmanager, promtool, amtool, our own binaries) and decides
// whether a test that needs them skips or fails. Under `make test`
// (AUTOGLM_REQUIRE_TOOLS=1) a missing program or privilege is a failure, so CI
// can never pass by skipping.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// Required reports whether missing tools must fail tests instead of skipping them.
func Required() bool { return os.Getenv("AUTOGLM_REQUIRE_TOOLS") == "1" }

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// Tool returns the path of the first of names found on PATH.
func Tool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	missing(t, "none of %v found on PATH (run `make test-deps`)", names)
	return ""
}

// Prometheus returns the prometheus server binary.
func Prometheus(t testing.TB) string { return Tool(t, "prometheus") }

// Alertmanager returns the alertmanager binary (Debian names it prometheus-alertmanager).
func Alertmanager(t testing.TB) string { return Tool(t, "alertmanager", "prometheus-alertmanager") }

// Promtool returns the promtool binary.
func Promtool(t testing.TB) string { return Tool(t, "promtool") }

// Amtool returns the amtool binary.
func Amtool(t testing.TB) string { return Tool(t, "amtool") }

// Root skips (or fails under make test) unless the test runs as root, which eBPF needs.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "test needs root for eBPF (running as uid %d)", os.Geteuid())
	}
}

// Binary returns bin/<name> built by `make build` (AUTOGLM_BIN), building it
// into a temporary directory when that is not set.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("AUTOGLM_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	return out
}

// RepoRoot returns the repository root.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate repository root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Dataset returns the directory of a labelled data set the repository
// carries (rulegen/score/testdata/<name>: "nab-dev", "llm-sli-dev"), whose
// series are gzipped CSV files under data/<category>/.
func Dataset(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "rulegen", "score", "testdata", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("data set %s: %v", name, err)
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr returns "127.0.0.1:<port>".
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
