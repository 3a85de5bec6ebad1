#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian machine, once.
#   install-deps.sh          everything `make test` needs (fails if it cannot)
#   install-deps.sh --demo   Prometheus and Alertmanager for `make demo`; where
#                            packages cannot be installed it says so and exits 0:
#                            autoglm-demo then builds them from source.
set -euo pipefail

demo=false
if [ "${1:-}" = "--demo" ]; then
	demo=true
fi

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
if ! $demo; then
	command -v docker-compose >/dev/null || need+=(docker-compose)
	command -v python3 >/dev/null || need+=(python3)
	command -v nginx >/dev/null || need+=(nginx-light)
	# eBPF: the BPF object's rebuild check, and the exporter's cost benchmark.
	command -v clang-14 >/dev/null || need+=(clang-14)
	[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
	command -v wrk >/dev/null || need+=(wrk)
	command -v h2load >/dev/null || need+=(nghttp2-client)
	command -v curl >/dev/null || need+=(curl)
	# Network namespaces and veth pairs for the workload identity test.
	command -v ip >/dev/null || need+=(iproute2)
	# The Kafka output's documented consumer recipes (kcat, jq) are run by its tests.
	command -v kcat >/dev/null || need+=(kcat)
	command -v jq >/dev/null || need+=(jq)
	# The receiver's shared outbox: its tests start their own PostgreSQL cluster.
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
fi
# Each package once, in a stable order.
mapfile -t need < <(printf '%s\n' "${need[@]+"${need[@]}"}" | sed '/^$/d' | sort -u)

fallback() {
	echo "install-deps: $1" >&2
	echo "install-deps: autoglm-demo will build Prometheus and Alertmanager from source instead (first time only, into ~/.cache/autoglm-monitor): about 10 minutes on two idle cores and 2.5 GB of Go modules" >&2
	exit 0
}

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		$demo && fallback "not root: cannot install ${need[*]} (as root: apt-get install ${need[*]})"
		echo "install-deps: missing ${need[*]}; run as root or install them with apt-get" >&2
		exit 1
	fi
	if ! command -v apt-get >/dev/null; then
		$demo && fallback "no apt-get: cannot install ${need[*]}"
		echo "install-deps: missing ${need[*]} and no apt-get to install them" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
		$demo && fallback "apt-get could not install ${need[*]}"
		exit 1
	fi
fi
# Debian starts the packaged daemons on the ports the quickstart and the tests
# use. The demo stops only those it has just installed: a Prometheus the
# machine already ran is the user's (the demo then names the busy port).
services=(prometheus prometheus-alertmanager prometheus-node-exporter nginx)
if $demo; then
	services=("${need[@]+"${need[@]}"}")
fi
for svc in "${services[@]+"${services[@]}"}"; do
	if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl stop "$svc" || true
	fi
done
# eBPF tracepoints need tracefs; the exporter mounts it too, this only saves a step.
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
	mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi
