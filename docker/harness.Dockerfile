# The kit's Python image: agents, controller and the simulated Ollama server (`python -m harness.sim`).
# Built by harness.containers.images.build_harness_image from an explicit context (Dockerfile, requirements.lock, wheels/,
# harness/, experiments/) on the classic builder: no BuildKit features, no network, no registry.
# BASE_IMAGE must provide python3.11 with the venv module and tini: the offline base does
# (chimeraforge/base:bookworm-*, see docker/pins.toml).
ARG BASE_IMAGE=chimeraforge/base:bookworm

FROM ${BASE_IMAGE} AS venv
# Marks this stage's image, which the classic builder keeps untagged: it is the cache of the dependency layer.
LABEL io.chimeraforge.stage=venv
COPY requirements.lock /tmp/kit/requirements.lock
COPY wheels/ /tmp/kit/wheels/
# Every wheel is checked against the hashes of requirements.lock; nothing is fetched.
RUN python3.11 -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --no-index --find-links /tmp/kit/wheels --require-hashes \
        --no-cache-dir --disable-pip-version-check --only-binary=:all: -r /tmp/kit/requirements.lock \
 && /opt/venv/bin/python -m pip check

FROM ${BASE_IMAGE}
ARG KIT_VERSION=0.0.0
ARG BASE_IMAGE_ID=unknown
# A fixed uid/gid so bind mounts and volumes have predictable ownership on every host.
RUN echo 'kit:x:10001:10001:chimeraforge kit:/home/kit:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'kit:x:10001:' >> /etc/group \
 && echo 'kit:!:19000::::::' >> /etc/shadow \
 && mkdir -p /home/kit /models /work \
 && chown 10001:10001 /home/kit /models /work
COPY --from=venv /opt/venv /opt/venv
COPY harness/ /opt/kit/harness/
COPY experiments/ /opt/kit/experiments/
# Byte-compile the kit now: the code is read-only at run time, so without this every container (every simulated
# server of every run) recompiled it on start-up, about 0.1 s of CPU each time.
RUN python3.11 -m compileall -q /opt/kit/harness
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/kit \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/kit \
    OLLAMA_MODELS=/models \
    HARNESS_KIT_VERSION=${KIT_VERSION}
WORKDIR /opt/kit
USER 10001:10001
EXPOSE 11434
# tini reaps children and forwards SIGTERM, so `docker stop` ends agents and the simulator promptly.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "harness", "--help"]
