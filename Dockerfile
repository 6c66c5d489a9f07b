# syntax=docker/dockerfile:1
# ferrolb image for any TARGETPLATFORM: linux/amd64, linux/arm64 or linux/arm/v7.
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t ferrolb:dev .
# The builder runs on the build machine's platform and cross-compiles with scripts/image.sh, the
# script of the Docker-free build (scripts/image.sh OUT_DIR), so both images hold the same files:
# the static binary, /etc/passwd and /etc/group with nobody (65534), and a pinned CA bundle.

# --- builder: the same Rust release the project is developed and tested with, pinned ---
FROM --platform=$BUILDPLATFORM rust:1.95.0-bookworm AS builder
ARG TARGETPLATFORM
WORKDIR /src
# The whole crate (manifest targets such as benches and tests must exist for cargo to load it)
# and scripts/; .dockerignore keeps target/, .git/ and the docs out.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/image.sh --arch "$TARGETPLATFORM" --rootfs /rootfs

# --- runtime: nothing but those files ---
FROM scratch

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ferrolb" \
      org.opencontainers.image.description="Bare-metal LoadBalancer for Kubernetes: a drop-in replacement for MetalLB's layer-2 mode" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/ferrolb/ferrolb" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /rootfs/ /

# nobody: the controller runs as this user. The speaker's pod spec overrides it with uid 0 and
# only CAP_NET_RAW, which raw ARP/NDP sockets need.
USER 65534:65534

# controller metrics/health, speaker metrics/health, speaker gossip (UDP)
EXPOSE 7472 7473 7946/udp

ENTRYPOINT ["/usr/local/bin/ferrolb"]
CMD ["--help"]
