#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian machine, once.
set -euo pipefail

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
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
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing ${need[*]}; run as root or install them with apt-get" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts the packaged daemons; the tests run their own on other ports.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter nginx; do
	if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl stop "$svc" || true
	fi
done
# eBPF tracepoints need tracefs; the exporter mounts it too, this only saves a step.
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
	mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi
