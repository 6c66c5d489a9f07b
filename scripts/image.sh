#!/usr/bin/env bash
# Builds ferrolb's container image without a Docker engine: cross-builds the static binary for
# each architecture and writes a multi-architecture OCI image layout (an index with one manifest
# per architecture) to OUT_DIR. Reproducible: the same commit gives the same digests.
#
#   scripts/image.sh [--arch ARCH]... OUT_DIR     ARCH: amd64, arm64, arm/v7 (default: all three)
#   scripts/image.sh --arch ARCH --rootfs DIR     the image's files for one ARCH, unpacked (the
#                                                 Dockerfile's build)
#
# Push the layout with: skopeo copy --all oci:OUT_DIR:VERSION docker://REGISTRY/ferrolb:VERSION
# Environment: SOURCE_DATE_EPOCH (default: the commit time), FERROLB_IMAGE_SOURCE (the
# org.opencontainers.image.source label), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '6,8s/^#   //p' "$0" >&2
    exit 2
}

archs=()
rootfs=""
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) [ $# -ge 2 ] || usage; archs+=("${2#linux/}"); shift 2 ;;
        --rootfs) [ $# -ge 2 ] || usage; rootfs="$2"; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *) [ -z "$out" ] || usage; out="$1"; shift ;;
    esac
done
[ "${#archs[@]}" -gt 0 ] || archs=(amd64 arm64 arm/v7)
if [ -n "$rootfs" ]; then
    [ -z "$out" ] && [ "${#archs[@]}" -eq 1 ] || usage
else
    [ -n "$out" ] || usage
fi

rust_target() {
    case "$1" in
        amd64) echo x86_64-unknown-linux-musl ;;
        arm64) echo aarch64-unknown-linux-musl ;;
        arm/v7) echo armv7-unknown-linux-gnueabihf ;;
        *) echo "unsupported architecture $1 (amd64, arm64, arm/v7)" >&2; exit 2 ;;
    esac
}
zig_targets=()
gcc_targets=()
for arch in "${archs[@]}"; do
    target="$(rust_target "$arch")"
    case "$target" in
        *-musl) zig_targets+=(--target "$target") ;;
        *) gcc_targets+=("$target") ;;
    esac
done

source scripts/install-image-tools.sh

# The image ships the `image` cargo profile (Cargo.toml): release optimisations, parallel codegen.
profile=image
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
# A build context without .git (the Dockerfile's) has no commit; only the layout needs one.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
export SOURCE_DATE_EPOCH
# The cargo registry's and the target folder's paths are not part of the binary (this crate's own
# sources are named relative to the checkout already, so two clones build the same bytes). The
# checkout's path stays out of RUSTFLAGS: a flag that changes with it would make cargo rebuild
# every dependency in each fresh clone.
remap="--remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$target_dir=/target"

if [ "${#zig_targets[@]}" -gt 0 ]; then
    PYTHONPATH="$FERROLB_ZIG_DIR${PYTHONPATH:+:$PYTHONPATH}" RUSTFLAGS="$remap" \
        cargo zigbuild --locked --profile "$profile" --bin ferrolb "${zig_targets[@]}"
fi
for target in "${gcc_targets[@]}"; do
    # crt-static: glibc linked in, no dynamic loader needed in the image.
    env "CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$target")_LINKER=arm-linux-gnueabihf-gcc" \
        "CC_${target//-/_}=arm-linux-gnueabihf-gcc" "AR_${target//-/_}=arm-linux-gnueabihf-ar" \
        RUSTFLAGS="$remap -C target-feature=+crt-static" \
        cargo build --locked --profile "$profile" --bin ferrolb --target "$target"
done

images=()
for arch in "${archs[@]}"; do
    binary="$target_dir/$(rust_target "$arch")/$profile/ferrolb"
    # A binary that asks for a dynamic loader would not start in an image without one.
    if LC_ALL=C readelf -l "$binary" | grep -q 'INTERP'; then
        echo "$binary is not static" >&2
        exit 1
    fi
    images+=(--image "$arch=$binary")
done

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
# A checkout with uncommitted changes is not the commit it names.
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    revision="$revision-dirty"
fi
if [ -n "$rootfs" ]; then
    python3 scripts/oci_layout.py --rootfs "$rootfs" --ca-bundle "$FERROLB_CA_BUNDLE" "${images[@]}"
    exit 0
fi
digest="$(python3 scripts/oci_layout.py --out "$out" --version "$version" --revision "$revision" \
    --source "${FERROLB_IMAGE_SOURCE:-https://github.com/ferrolb/ferrolb}" \
    --created "$SOURCE_DATE_EPOCH" --ca-bundle "$FERROLB_CA_BUNDLE" "${images[@]}")"
echo "ferrolb $version ($revision) for ${archs[*]}: $out, index $digest"
