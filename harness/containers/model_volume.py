"""A GGUF file in a named Docker volume, so llama.cpp servers read it read-only without a host bind mount.

The container policy (:mod:`harness.containers.policy`) refuses bind mounts of host paths. The weights go into a
volume named by their sha256 instead, copied once through the Docker API (a created, never started container
of the server image, labelled as the kit's, removed at once); a digest file written after the weights marks
the copy complete, so a copy cut short is redone, not served.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import IO

import docker
import docker.errors
import docker.types
from docker.models.containers import Container

from harness.containers import controller
from harness.containers.engine import LABEL_KIT, LABEL_KIT_VERSION, LABEL_ROLE, ROLE_MODEL_STORE, docker_op

MOUNT = "/gguf"
"""Where the volume is mounted in a llama.cpp server (compose/llamacpp*.override.yml)."""
MODEL_NAME = "model.gguf"
DIGEST_NAME = "model.sha256"
OWNER = 10001
"""The kit images' non-root user: the files are its own, mode 0444."""
ROLE_LOADER = "gguf-loader"


def volume_name(sha256: str) -> str:
    """One volume per distinct weights file: ``chimeraforge-gguf-<first 16 hex of its sha256>``."""
    return f"chimeraforge-gguf-{sha256[:16]}"


def ensure_gguf_volume(
    client: docker.DockerClient, model_file: Path, sha256: str, *, image: str, kit_version: str
) -> str:
    """The volume holding ``model_file`` as ``/gguf/model.gguf`` (copied when absent or incomplete); its name."""
    name = volume_name(sha256)
    with docker_op(f"preparing model volume {name}"):
        try:
            client.volumes.get(name)
        except docker.errors.NotFound:
            client.volumes.create(
                name=name,
                labels={
                    LABEL_KIT: "1",
                    LABEL_ROLE: ROLE_MODEL_STORE,
                    LABEL_KIT_VERSION: kit_version,
                    "io.chimeraforge.model_sha256": sha256,
                },
            )
        loader = client.containers.create(
            image,
            command=["true"],
            user=f"{OWNER}:{OWNER}",
            network_disabled=True,
            mounts=[docker.types.Mount(target=MOUNT, source=name, type="volume")],
            labels={
                LABEL_KIT: "1",
                LABEL_ROLE: ROLE_LOADER,
                LABEL_KIT_VERSION: kit_version,
                **controller.current().labels(),
            },
        )
        try:
            if _digest(loader) != sha256:
                with tempfile.TemporaryFile() as tar:  # weights can be GBs: streamed from disk, never held in memory
                    _tar_file(tar, MODEL_NAME, model_file)
                    tar.seek(0)
                    loader.put_archive(MOUNT, tar)
                loader.put_archive(MOUNT, _tar_bytes(DIGEST_NAME, sha256.encode()))
        finally:
            loader.remove(force=True)
    return name


def _digest(loader: Container) -> str | None:
    """The digest file's content; None when the volume holds no complete copy."""
    try:
        chunks, _ = loader.get_archive(f"{MOUNT}/{DIGEST_NAME}")
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.extractfile(DIGEST_NAME)
        return member.read().decode().strip() if member is not None else None


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o444
    info.uid = info.gid = OWNER
    return info


def _tar_file(out: IO[bytes], name: str, path: Path) -> None:
    with tarfile.open(fileobj=out, mode="w") as tar, path.open("rb") as src:
        tar.addfile(_info(name, path.stat().st_size), src)


def _tar_bytes(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(_info(name, len(data)), io.BytesIO(data))
    return buf.getvalue()
