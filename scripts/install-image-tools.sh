#!/usr/bin/env bash
# Installs (when missing) what scripts/image.sh needs to cross-build ferrolb's image without a
# Docker engine, and puts it on PATH. Sourced by scripts/image.sh and scripts/install-test-tools.sh;
# safe to run again. Everything comes from rustup, Debian's packages or PyPI, pinned.
set -euo pipefail

FERROLB_TOOLS="${FERROLB_TOOLS:-$HOME/.cache/ferrolb-tools}"
mkdir -p "$FERROLB_TOOLS/bin"
export PATH="$FERROLB_TOOLS/bin:$PATH"

# arm64 and amd64 are static musl binaries linked by zig; rustup has no armv7 musl standard
# library for this toolchain, so arm/v7 is a static glibc binary linked by Debian's cross gcc.
FERROLB_RUST_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf)
installed_targets="$(rustup target list --installed)"
for target in "${FERROLB_RUST_TARGETS[@]}"; do
    if ! grep -qx "$target" <<<"$installed_targets"; then
        echo "installing the Rust standard library for $target"
        rustup target add "$target"
    fi
done

image_apt_missing=()
command -v arm-linux-gnueabihf-gcc >/dev/null 2>&1 || image_apt_missing+=(gcc-arm-linux-gnueabihf)
[ -f /usr/arm-linux-gnueabihf/lib/libc.a ] || image_apt_missing+=(libc6-dev-armhf-cross)
command -v python3 >/dev/null 2>&1 || image_apt_missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || image_apt_missing+=(python3-pip)
if [ "${#image_apt_missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${image_apt_missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${image_apt_missing[@]}" >/dev/null
fi

# ferrolb_pip_folder NAME "PINS" CHECK...: installs the PyPI packages PINS (space-separated) into
# a folder of their own under the tools folder, named after NAME and the pins, unless every
# CHECK (a path below that folder) is already executable there. Prints the folder.
ferrolb_pip_folder() {
    local name="$1" pins="$2"
    shift 2
    local dir
    dir="$FERROLB_TOOLS/$name-$(tr ' =' '_-' <<<"$pins")"
    local check missing=0
    for check in "$@"; do [ -x "$dir/$check" ] || missing=1; done
    if [ "$missing" = 1 ]; then
        echo "installing $pins from PyPI" >&2
        rm -rf "$dir"
        # shellcheck disable=SC2086 # the pins are words on purpose
        # A Debian system Python refuses pip (PEP 668) unless told the target folder is ours.
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$dir" $pins >&2 \
            || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --break-system-packages \
                --target "$dir" $pins >&2
    fi
    echo "$dir"
}

# zig (the linker and C compiler for the musl targets) and cargo-zigbuild, in a folder of their
# own: zig is found as `python3 -m ziglang` through PYTHONPATH.
zig_dir="$(ferrolb_pip_folder zig "ziglang==0.15.2 cargo-zigbuild==0.24.1" bin/cargo-zigbuild)"
ln -sf "$zig_dir/bin/cargo-zigbuild" "$FERROLB_TOOLS/bin/cargo-zigbuild"
export FERROLB_ZIG_DIR="$zig_dir"

# The image's CA bundle: Mozilla's, as packaged by certifi at a pinned version, so the same
# commit gives the same layer on any machine and any day.
FERROLB_CERTIFI_PIN="certifi==2026.10.19.post1"
FERROLB_CA_BUNDLE="$FERROLB_TOOLS/${FERROLB_CERTIFI_PIN/==/-}.pem"
if ! [ -s "$FERROLB_CA_BUNDLE" ]; then
    echo "fetching the CA bundle ($FERROLB_CERTIFI_PIN from PyPI)"
    certifi_dl="$(mktemp -d)"
    # `pip download` takes no --root-user-action (it installs nothing): pip 23 refuses the option.
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        "$FERROLB_CERTIFI_PIN" -d "$certifi_dl"
    python3 - "$certifi_dl" "$FERROLB_CA_BUNDLE" <<'PY'
import glob, os, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(src, "*.whl"))[0])
with open(dest + ".tmp", "wb") as out:
    out.write(wheel.read("certifi/cacert.pem"))
os.replace(dest + ".tmp", dest)
PY
    rm -rf "$certifi_dl"
fi
export FERROLB_CA_BUNDLE
