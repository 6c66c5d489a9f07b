#!/usr/bin/env bash
# Writes the CycloneDX SBOM of the ferrolb binary's dependencies (Cargo.lock) to OUT_DIR:
#   scripts/sbom.sh OUT_DIR      -> OUT_DIR/ferrolb.cdx.json
# Installs the pinned cargo-cyclonedx when missing. The release attaches the file to the image.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
out="$1"
FERROLB_CYCLONEDX_VERSION="0.5.9"
if ! cargo cyclonedx --version 2>/dev/null | grep -q "$FERROLB_CYCLONEDX_VERSION"; then
    cargo install --locked cargo-cyclonedx --version "$FERROLB_CYCLONEDX_VERSION"
fi
mkdir -p "$out"
cargo cyclonedx --format json --spec-version 1.5 --override-filename ferrolb.cdx
mv ferrolb.cdx.json "$out/ferrolb.cdx.json"
echo "SBOM: $out/ferrolb.cdx.json"
