# llama.cpp's HTTP server (llama-server) for `--backend llamacpp`: the offline path.
#
# The binary is compiled on the host from the pinned, hash-checked llama-cpp-python sdist
# (harness.containers.llamacpp_build; CPU, GGML_NATIVE=OFF, static ggml/llama, no OpenMP, no curl/OpenSSL) and
# copied onto the kit's offline Debian base, so the image needs no registry. Host and base are both Debian
# bookworm, so glibc and libstdc++ match. The model is bind-mounted read-only at run time, never baked in.
ARG BASE_IMAGE=chimeraforge/base:bookworm
FROM ${BASE_IMAGE}
ARG KIT_VERSION=0.0.0
ARG BASE_IMAGE_ID=unknown
ARG LLAMA_CPP_COMMIT=unknown
ARG SDIST_SHA256=unknown
LABEL io.chimeraforge.kit_version=${KIT_VERSION} io.chimeraforge.base_image_id=${BASE_IMAGE_ID} \
      io.chimeraforge.llama_cpp_commit=${LLAMA_CPP_COMMIT} io.chimeraforge.llama_cpp_sdist_sha256=${SDIST_SHA256}
RUN echo 'kit:x:10001:10001:chimeraforge kit:/home/kit:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'kit:x:10001:' >> /etc/group \
 && mkdir -p /home/kit /models && chown 10001:10001 /home/kit
COPY bin/llama-server /usr/local/bin/llama-server
COPY build.json /usr/local/share/llama-server/build.json
ENV HOME=/home/kit
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["llama-server", "--help"]
