# The real Ollama server: upstream ollama/ollama (by digest when docker/images.lock.json has one) plus a fixed
# non-root user and a healthcheck. Needs an image registry; without one harness.containers.images skips it with a reason.
ARG BASE_IMAGE=ollama/ollama:0.12.10
FROM ${BASE_IMAGE}
ARG KIT_VERSION=0.0.0
RUN echo 'ollama:x:10001:10001:ollama:/home/ollama:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'ollama:x:10001:' >> /etc/group \
 && mkdir -p /home/ollama /models \
 && chown 10001:10001 /home/ollama /models
# Only where the server listens and keeps its store; every tuning setting stays at Ollama 0.12.10's default
# here (OLLAMA_FLASH_ATTENTION in particular must stay unset: unset lets the server enable it per model), and the
# compose files pass what a spec sets.
ENV HOME=/home/ollama \
    OLLAMA_HOST=0.0.0.0:11434 \
    OLLAMA_MODELS=/models
USER 10001:10001
EXPOSE 11434
# `ollama list` is a client call to the local server: healthy means the API answers, not only that it runs.
HEALTHCHECK --interval=2s --timeout=5s --start-period=10s --retries=30 CMD ["ollama", "list"]
ENTRYPOINT ["/bin/ollama"]
CMD ["serve"]
