#!/usr/bin/env bash
# Runs every test tier of ferrolb. Installs the tools the tests need when they are missing, so it
# works on a fresh machine; with CI set, tests that need root or a tool fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/install-test-tools.sh

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings

# The multi-architecture image (amd64, arm64, arm/v7), built by the script a release uses, its
# layout checked and each architecture's binary run (the foreign ones under qemu-user-static).
image_dir="$(mktemp -d)"
trap 'rm -rf "$image_dir"' EXIT
image_start=$SECONDS
bash scripts/image.sh "$image_dir/oci"
python3 scripts/check_image.py "$image_dir/oci"
echo "image build and checks took $((SECONDS - image_start)) s"

cargo nextest run --locked --no-fail-fast
cargo test --locked --doc
