# The Rust agents (chimeraforge-agent, chimeraforge-multi) with every runtime compiled in: the offline path.
#
# What CI and air-gapped hosts use: the binaries are built on the host from vendored crates with
# `cargo build --release --locked --offline` (harness.containers.images.build_rust_binaries) and copied in, because the
# locally bootstrapped Debian base has no Rust toolchain. Host and base are both Debian bookworm. Where a
# registry answers, docker/rust-agent.Dockerfile compiles the same sources in a pinned Rust builder instead.
ARG BASE_IMAGE=chimeraforge/base:bookworm
FROM ${BASE_IMAGE}
ARG KIT_VERSION=0.0.0
ARG BASE_IMAGE_ID=unknown
LABEL io.chimeraforge.kit_version=${KIT_VERSION} io.chimeraforge.base_image_id=${BASE_IMAGE_ID}
RUN echo 'kit:x:10001:10001:chimeraforge kit:/home/kit:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'kit:x:10001:' >> /etc/group \
 && mkdir -p /home/kit && chown 10001:10001 /home/kit
COPY bin/ /opt/kit/bin/
COPY experiments/ /opt/kit/experiments/
ENV PATH=/opt/kit/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/home/kit
WORKDIR /opt/kit
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["chimeraforge-agent", "--help"]
