# The Rust agents (chimeraforge-agent, chimeraforge-multi) with every runtime compiled in: the registry path.
#
# Multi-stage: a pinned Rust builder (docker/pins.toml `rust_builder`, by digest once `invoke images.lock` has
# resolved it) compiles the workspace from the context's vendored crates with --locked --offline, so the build
# reads nothing from the network even here; the binaries then go onto BASE_IMAGE, the same Debian base the
# offline path uses. Without a registry, harness.containers.images builds docker/rust-agent-offline.Dockerfile instead.
ARG BUILDER_IMAGE=rust:1.90.0-slim-bookworm
ARG BASE_IMAGE=chimeraforge/base:bookworm

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src
COPY rust/ /src/
COPY rust-vendor/ /vendor/
RUN cargo build --release --locked --offline --bins \
        --config 'source.crates-io.replace-with="vendored"' \
        --config 'source.vendored.directory="/vendor"' \
 && mkdir -p /out \
 && cp target/release/chimeraforge-agent target/release/chimeraforge-multi /out/

FROM ${BASE_IMAGE}
ARG KIT_VERSION=0.0.0
ARG BASE_IMAGE_ID=unknown
LABEL io.chimeraforge.kit_version=${KIT_VERSION} io.chimeraforge.base_image_id=${BASE_IMAGE_ID}
RUN echo 'kit:x:10001:10001:chimeraforge kit:/home/kit:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'kit:x:10001:' >> /etc/group \
 && mkdir -p /home/kit && chown 10001:10001 /home/kit
COPY --from=builder /out/ /opt/kit/bin/
COPY experiments/ /opt/kit/experiments/
ENV PATH=/opt/kit/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/home/kit
WORKDIR /opt/kit
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["chimeraforge-agent", "--help"]
