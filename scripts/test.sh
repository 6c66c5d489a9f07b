#!/usr/bin/env bash
# Runs every test tier of ferrolb. Installs the tools the tests need when they are missing, so it
# works on a fresh machine; with CI set, tests that need root or a tool fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/install-test-tools.sh

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings
cargo nextest run --locked --no-fail-fast
cargo test --locked --doc
