#!/usr/bin/env bash
# Runs one cargo-fuzz target of fuzz/ for a while on the stable toolchain:
#   scripts/fuzz.sh <arp_parse|ndp_parse|responder|config_parse|bgp_message|bgp_session> [seconds, default 300]
# Installs cargo-fuzz from crates.io when missing. New corpus entries go to fuzz/corpus/<target>
# (git-ignored); the committed seeds in fuzz/seeds/<target> are read as well. A crash leaves its
# input in fuzz/artifacts/<target>: turn it into a regression test next to the parser.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

target="${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}"
seconds="${2:-300}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz

mkdir -p "corpus/$target"
# cargo-fuzz passes -Z flags to rustc; RUSTC_BOOTSTRAP lets the stable compiler accept them.
# The code under test forbids unsafe, so no sanitizer is needed: libFuzzer's coverage feedback
# plus Rust's own bounds and overflow checks (debug assertions are on) catch the failures.
export RUSTC_BOOTSTRAP=1
exec cargo fuzz run --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1
