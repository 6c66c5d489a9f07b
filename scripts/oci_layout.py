#!/usr/bin/env python3
"""Writes ferrolb's multi-architecture OCI image layout from already-built static binaries.

Deterministic by construction, so one commit always gives the same digests: tar entries in a
fixed order with a fixed mtime (SOURCE_DATE_EPOCH), uid/gid 0, no user/group names and no
extended headers; gzip with mtime 0 and no file name; JSON with sorted keys and no whitespace.

Usage: oci_layout.py --out DIR --version V --revision R --source URL --created EPOCH
                     --ca-bundle FILE --image ARCH=BINARY [--image ARCH=BINARY ...]
       oci_layout.py --rootfs DIR --ca-bundle FILE --image ARCH=BINARY
ARCH is an OCI platform without the os: amd64, arm64 or arm/v7.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

BINARY_PATH = "usr/local/bin/ferrolb"
USER = "65534:65534"
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
)
GROUP = "root:x:0:\nnobody:x:65534:\n"
# controller metrics/health, speaker metrics/health, speaker gossip
EXPOSED_PORTS = ["7472/tcp", "7473/tcp", "7946/udp"]
TITLE = "ferrolb"
DESCRIPTION = (
    "Bare-metal LoadBalancer for Kubernetes: a drop-in replacement for MetalLB's layer-2 mode"
)
LICENSES = "Apache-2.0"

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    def __init__(self, out):
        self.out = out
        self.blobs = os.path.join(out, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)

    def blob(self, data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def rootfs_entries(binary, ca_bundle):
    """(path, mode, bytes or None for a folder) of every file in the image, sorted by path."""
    with open(binary, "rb") as f:
        binary_bytes = f.read()
    with open(ca_bundle, "rb") as f:
        ca_bytes = f.read()
    entries = [
        ("etc", 0o755, None),
        ("etc/group", 0o644, GROUP.encode()),
        ("etc/passwd", 0o644, PASSWD.encode()),
        ("etc/ssl", 0o755, None),
        ("etc/ssl/certs", 0o755, None),
        ("etc/ssl/certs/ca-certificates.crt", 0o644, ca_bytes),
        ("tmp", 0o1777, None),
        ("usr", 0o755, None),
        ("usr/local", 0o755, None),
        ("usr/local/bin", 0o755, None),
        (BINARY_PATH, 0o755, binary_bytes),
    ]
    return sorted(entries, key=lambda e: e[0])


def layer_tar(entries, mtime):
    """The image's only layer, uncompressed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, mode, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_rootfs(directory, entries):
    """The same files unpacked, for a Dockerfile's `COPY --from=builder /rootfs/ /`."""
    for name, mode, data in entries:
        path = os.path.join(directory, name)
        if data is None:
            os.makedirs(path, exist_ok=True)
        else:
            with open(path, "wb") as f:
                f.write(data)
        os.chmod(path, mode)


def gzip_bytes(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def platform_of(arch):
    name, _, variant = arch.partition("/")
    platform = {"architecture": name, "os": "linux"}
    if variant:
        platform["variant"] = variant
    return platform


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="the OCI layout folder to write")
    p.add_argument("--rootfs", help="instead, write the one image's files to this folder")
    p.add_argument("--version")
    p.add_argument("--revision")
    p.add_argument("--source")
    p.add_argument("--created", type=int, help="SOURCE_DATE_EPOCH")
    p.add_argument("--ca-bundle", required=True)
    p.add_argument("--image", action="append", required=True, metavar="ARCH=BINARY")
    args = p.parse_args()

    if args.rootfs:
        if len(args.image) != 1:
            sys.exit("--rootfs takes exactly one --image")
        binary = args.image[0].partition("=")[2]
        write_rootfs(args.rootfs, rootfs_entries(binary, args.ca_bundle))
        return
    missing = [a for a in ("out", "version", "revision", "source", "created")
               if getattr(args, a) is None]
    if missing:
        sys.exit("missing " + ", ".join("--" + a for a in missing))

    created = datetime.datetime.fromtimestamp(args.created, datetime.timezone.utc)
    created = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.description": DESCRIPTION,
        "org.opencontainers.image.licenses": LICENSES,
        "org.opencontainers.image.revision": args.revision,
        "org.opencontainers.image.source": args.source,
        "org.opencontainers.image.title": TITLE,
        "org.opencontainers.image.version": args.version,
    }

    # Start from an empty folder: a stale blob from an earlier run would not change a digest,
    # but it would make the layout differ from a fresh one.
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    layout = Layout(args.out)

    seen = set()
    manifests = []
    for spec in args.image:
        arch, sep, binary = spec.partition("=")
        if not sep or not binary:
            sys.exit(f"--image {spec!r}: expected ARCH=BINARY")
        if arch in seen:
            sys.exit(f"--image {arch} given twice")
        seen.add(arch)
        platform = platform_of(arch)
        tar = layer_tar(rootfs_entries(binary, args.ca_bundle), args.created)
        layer = layout.blob(gzip_bytes(tar), MT_LAYER)
        config = {
            **platform,
            "created": created,
            "config": {
                "User": USER,
                "Entrypoint": ["/" + BINARY_PATH],
                "Cmd": ["--help"],
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                "WorkingDir": "/",
                "ExposedPorts": {port: {} for port in EXPOSED_PORTS},
                "Labels": labels,
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()],
            },
            "history": [{"created": created, "created_by": "scripts/image.sh"}],
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": layout.blob(canonical_json(config), MT_CONFIG),
            "layers": [layer],
            "annotations": labels,
        }
        descriptor = layout.blob(canonical_json(manifest), MT_MANIFEST)
        descriptor["platform"] = platform
        manifests.append(descriptor)

    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": manifests,
        "annotations": labels,
    }
    index_descriptor = layout.blob(canonical_json(index), MT_INDEX)
    # The layout's entry point names the multi-arch index by the version, the tag it is pushed as.
    index_descriptor["annotations"] = {"org.opencontainers.image.ref.name": args.version}
    top = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [index_descriptor]}
    with open(os.path.join(args.out, "index.json"), "wb") as f:
        f.write(canonical_json(top))
    with open(os.path.join(args.out, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
    print(index_descriptor["digest"])


if __name__ == "__main__":
    main()
