# syntax=docker/dockerfile:1
# ferrolb image: one statically linked binary (`ferrolb controller` / `ferrolb speaker`) on a
# distroless base with no shell and no package manager. Build: docker build -t ferrolb:dev .

# --- builder: the same Rust release the project is developed and tested with, pinned ---
FROM rust:1.95.0-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# musl-tools gives the C toolchain `ring` needs for the musl target.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl

WORKDIR /src
# The whole crate (manifest targets such as benches and tests must exist for cargo to load it);
# .dockerignore keeps target/, .git/ and everything not needed to compile out of the context.
COPY . .

# Static musl binary: the final image has no libc to link against. --locked: exactly Cargo.lock.
# The check refuses a binary that still needs a dynamic loader or shared library.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ferrolb --target x86_64-unknown-linux-musl \
    && cp target/x86_64-unknown-linux-musl/release/ferrolb /ferrolb \
    && if readelf -d /ferrolb | grep -q NEEDED; then echo "ferrolb is not static" >&2; exit 1; fi \
    && /ferrolb --version

# --- runtime: distroless static (CA bundle, /etc/passwd with nobody=65534, nothing else) ---
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ferrolb" \
      org.opencontainers.image.description="Bare-metal LoadBalancer for Kubernetes: a drop-in replacement for MetalLB's layer-2 mode" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"

COPY --from=builder /ferrolb /usr/local/bin/ferrolb

# nobody: the controller runs as this user. The speaker's pod spec overrides it with uid 0 and
# only CAP_NET_RAW, which raw ARP/NDP sockets need.
USER 65534:65534

# controller metrics/health, speaker metrics/health, speaker gossip (UDP)
EXPOSE 7472 7473 7946/udp

ENTRYPOINT ["/usr/local/bin/ferrolb"]
CMD ["--help"]
