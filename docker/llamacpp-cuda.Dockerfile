# llama.cpp's HTTP server (llama-server) with CUDA, for `--backend llamacpp` on NVIDIA hosts: the registry path.
#
# The offline path cannot make this image (the Debian base has no CUDA toolkit), so it needs a registry for the
# two pinned NVIDIA images (docker/pins.toml `cuda_devel`, `cuda_runtime`; by digest once `invoke images.lock`
# has resolved them). The builder compiles the llama-server target from the same hash-checked llama-cpp-python
# sdist as the CPU image (the kit copies the file it verified into the context; the hash is checked again here),
# for the pinned CUDA architectures, linked statically against ggml/llama. libcuda comes from the host driver at
# run time (the NVIDIA container runtime mounts it), so the link resolves against the toolkit's stub.
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:12.8.1-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
ARG BASE_IMAGE=chimeraforge/base:bookworm

# tini-static from the kit's own base: the same init as every other kit image, and no apt step in the runtime.
FROM ${BASE_IMAGE} AS kitbase

FROM ${CUDA_DEVEL_IMAGE} AS builder
ARG SDIST_SHA256
ARG CMAKE_FLAGS
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cmake g++ make \
 && rm -rf /var/lib/apt/lists/*
COPY sdist.tar.gz /src/sdist.tar.gz
RUN echo "${SDIST_SHA256}  /src/sdist.tar.gz" | sha256sum -c - \
 && mkdir /src/tree && tar -xzf /src/sdist.tar.gz -C /src/tree --strip-components=1
ENV LIBRARY_PATH=/usr/local/cuda/lib64/stubs
RUN cmake -S /src/tree/vendor/llama.cpp -B /build ${CMAKE_FLAGS} \
 && cmake --build /build --target llama-server -j "$(nproc)" \
 && mkdir -p /out && cp /build/bin/llama-server /out/

FROM ${CUDA_RUNTIME_IMAGE}
ARG KIT_VERSION=0.0.0
ARG BASE_IMAGE_ID=unknown
ARG LLAMA_CPP_COMMIT=unknown
ARG SDIST_SHA256=unknown
LABEL io.chimeraforge.kit_version=${KIT_VERSION} io.chimeraforge.base_image_id=${BASE_IMAGE_ID} \
      io.chimeraforge.llama_cpp_commit=${LLAMA_CPP_COMMIT} io.chimeraforge.llama_cpp_sdist_sha256=${SDIST_SHA256}
RUN echo 'kit:x:10001:10001:chimeraforge kit:/home/kit:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'kit:x:10001:' >> /etc/group \
 && mkdir -p /home/kit /models && chown 10001:10001 /home/kit
COPY --from=kitbase /usr/bin/tini-static /usr/bin/tini
COPY --from=builder /out/llama-server /usr/local/bin/llama-server
ENV HOME=/home/kit
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["llama-server", "--help"]
