#!/usr/bin/env python3
"""Checks the OCI image layout scripts/image.sh wrote, then runs each architecture's binary.

Usage: check_image.py LAYOUT_DIR [ARCH ...]     (ARCH default: amd64 arm64 arm/v7)

The index is read through skopeo (`skopeo inspect --raw`), as a registry client would see it:
one manifest per architecture, each image running as 65534:65534 with ferrolb as its entrypoint,
the OCI labels naming this commit, and a layer written deterministically (sorted entries, owner
0, mtime SOURCE_DATE_EPOCH). Each image's files are unpacked and its binary runs `--version` and
`check-config config/example-config.yaml`: natively on this machine's architecture, under
qemu-user-static for the others.
"""

import hashlib
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QEMU = {"amd64": "qemu-x86_64-static", "arm64": "qemu-aarch64-static", "arm/v7": "qemu-arm-static"}
NATIVE = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm/v7"}
LABELS = ["created", "description", "licenses", "revision", "source", "title", "version"]
failures = []
passes = 0


def check(ok, what):
    global passes
    if ok:
        passes += 1
    else:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def crate_version():
    with open(os.path.join(REPO, "Cargo.toml")) as f:
        for line in f:
            if line.startswith('version = "'):
                return line.split('"')[1]
    raise SystemExit("no version in Cargo.toml")


def git(*args):
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def blob(layout, digest, verify=True):
    algo, hexdigest = digest.split(":")
    with open(os.path.join(layout, "blobs", algo, hexdigest), "rb") as f:
        data = f.read()
    if verify:
        check(hashlib.sha256(data).hexdigest() == hexdigest, f"blob {digest} matches its digest")
    return data


def run(argv, what):
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    check(proc.returncode == 0, f"{what} exits 0 (got {proc.returncode}: {proc.stderr.strip()})")
    return proc.stdout


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    layout = os.path.abspath(sys.argv[1])
    archs = sys.argv[2:] or ["amd64", "arm64", "arm/v7"]
    version = crate_version()
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct"))
    revision = git("rev-parse", "HEAD")

    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}:{version}"],
                         capture_output=True, text=True)
    if raw.returncode != 0:
        raise SystemExit(f"skopeo inspect --raw oci:{layout}:{version}: {raw.stderr}")
    index = json.loads(raw.stdout)
    check(index.get("mediaType") == "application/vnd.oci.image.index.v1+json", "an OCI image index")
    platforms = []
    for entry in index["manifests"]:
        p = entry["platform"]
        platforms.append(p["architecture"] + ("/" + p["variant"] if p.get("variant") else ""))
        check(p["os"] == "linux", f"{platforms[-1]} is a linux image")
    check(sorted(platforms) == sorted(archs), f"one manifest per architecture: {platforms} vs {archs}")

    native = NATIVE.get(platform.machine())
    for entry in index["manifests"]:
        arch = platforms[index["manifests"].index(entry)]
        manifest = json.loads(blob(layout, entry["digest"]))
        check(manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json", f"{arch}: manifest type")
        image = json.loads(blob(layout, manifest["config"]["digest"]))
        config = image["config"]
        check(image["architecture"] == entry["platform"]["architecture"], f"{arch}: config architecture")
        check(config["User"] == "65534:65534", f"{arch}: USER 65534:65534, got {config.get('User')}")
        check(config["Entrypoint"] == ["/usr/local/bin/ferrolb"], f"{arch}: entrypoint")
        labels = config.get("Labels", {})
        for label in LABELS:
            check(labels.get(f"org.opencontainers.image.{label}"), f"{arch}: label {label}")
        check(labels.get("org.opencontainers.image.version") == version, f"{arch}: version label {version}")
        check(labels.get("org.opencontainers.image.licenses") == "Apache-2.0", f"{arch}: licenses label")
        check(labels.get("org.opencontainers.image.revision", "").startswith(revision),
              f"{arch}: revision label names {revision}")

        check(len(manifest["layers"]) == 1, f"{arch}: one layer")
        layer = blob(layout, manifest["layers"][0]["digest"])
        with tempfile.TemporaryDirectory() as root, tempfile.TemporaryFile() as tmp:
            tmp.write(layer)
            tmp.seek(0)
            with tarfile.open(fileobj=tmp, mode="r:gz") as tar:
                members = tar.getmembers()
                names = [m.name for m in members]
                check(names == sorted(names), f"{arch}: layer entries sorted")
                check(all(m.uid == 0 and m.gid == 0 and not m.uname and not m.gname for m in members),
                      f"{arch}: layer entries owned by 0 with no names")
                check(all(m.mtime == epoch for m in members), f"{arch}: layer mtime is SOURCE_DATE_EPOCH")
                # Python before 3.11.4 has no extraction filters; the layer is our own anyway.
                if hasattr(tarfile, "tar_filter"):
                    tar.extractall(root, filter="tar")
                else:
                    tar.extractall(root)
            with open(os.path.join(root, "etc/passwd")) as f:
                check(any(l.split(":")[2:4] == ["65534", "65534"] for l in f), f"{arch}: passwd has 65534")
            with open(os.path.join(root, "etc/group")) as f:
                check(any(l.split(":")[2] == "65534" for l in f), f"{arch}: group has 65534")
            with open(os.path.join(root, "etc/ssl/certs/ca-certificates.crt")) as f:
                check(f.read().count("BEGIN CERTIFICATE") > 100, f"{arch}: CA certificates")
            binary = os.path.join(root, "usr/local/bin/ferrolb")
            runner = [] if arch == native else [QEMU[arch]]
            how = "natively" if arch == native else f"under {QEMU[arch]}"
            out = run([*runner, binary, "--version"], f"{arch} ferrolb --version {how}")
            check(out.strip() == f"ferrolb {version}", f"{arch}: --version prints ferrolb {version}, got {out!r}")
            out = run([*runner, binary, "check-config", "config/example-config.yaml"],
                      f"{arch} ferrolb check-config config/example-config.yaml {how}")
            print(f"{arch} ({how}): {out.strip().splitlines()[0] if out.strip() else ''}")

    print(f"image checks: {passes} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
