"""The Docker engine: connect, GPU visibility, engine and image facts, the kit's labels, reaping.

With :mod:`harness.containers.stack` and :mod:`harness.containers.images` one of the modules that import
``docker``; Docker SDK and ``requests`` errors are translated here (:func:`docker_op`) into
:class:`harness.errors.DockerError` with a message that says what to do.

Every container, network and per-run volume carries the kit's labels (``io.chimeraforge.kit=1``, the run id,
the kit version and ``com.docker.compose.project``), so :func:`reap` can remove whatever a crash left behind.
The shared model volume is never removed.
"""

from __future__ import annotations

import io
import re
import secrets
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.models.images import Image

from harness.containers.compose import MODEL_VOLUME
from harness.errors import DockerError
from harness.schemas import EngineFacts

Client = docker.DockerClient
"""The engine client type, for modules that hold a client but may not import ``docker`` themselves."""

LABEL_KIT = "io.chimeraforge.kit"
LABEL_RUN_ID = "io.chimeraforge.run_id"
LABEL_KIT_VERSION = "io.chimeraforge.kit_version"
LABEL_ROLE = "io.chimeraforge.role"
LABEL_IMAGE_ROLE = "io.chimeraforge.image"
LABEL_CONTEXT_SHA = "io.chimeraforge.context_sha256"
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
ROLE_MODEL_STORE = "model-store"

GPU_HINT = "install the NVIDIA Container Toolkit, or rehearse with --backend sim"
ENGINE_HINT = "start it or check DOCKER_HOST"


@contextmanager
def docker_op(action: str) -> Iterator[None]:
    """Translate Docker SDK and requests errors into :class:`DockerError` with a next step."""
    try:
        yield
    except DockerError:
        raise
    except docker.errors.ImageNotFound as exc:
        raise DockerError(f"{action}: image not found ({_explain(exc)})", hint="build it with `invoke build`") from None
    except docker.errors.APIError as exc:
        text = _explain(exc)
        low = text.lower()
        if "could not select device driver" in low or "nvidia-container" in low or "unknown runtime" in low:
            raise DockerError(f"{action}: no NVIDIA GPU visible to Docker ({text})", hint=GPU_HINT) from None
        if "port is already allocated" in low or "address already in use" in low:
            raise DockerError(
                f"{action}: {text}", hint="free the host port or let the kit pick an ephemeral one"
            ) from None
        raise DockerError(f"{action} failed: {text}", hint="see `docker info` and the engine log") from None
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        raise DockerError(f"Docker engine not reachable during {action} ({_explain(exc)})", hint=ENGINE_HINT) from None
    except requests.exceptions.RequestException as exc:
        raise DockerError(f"{action}: the engine did not answer in time ({_explain(exc)})", hint=ENGINE_HINT) from None


def _explain(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def connect(base_url: str | None = None, *, timeout_s: float = 120.0) -> docker.DockerClient:
    """A client for the engine; with ``base_url`` None the SDK itself reads ``DOCKER_HOST`` (not the kit)."""
    with docker_op("connecting"):
        try:
            client = (
                docker.DockerClient(base_url=base_url, timeout=int(timeout_s))
                if base_url
                else docker.from_env(timeout=int(timeout_s))
            )
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerError(f"Docker engine not reachable ({_explain(exc)})", hint=ENGINE_HINT) from None
    return client


def gpu_visible(client: docker.DockerClient) -> bool:
    """Whether Docker can hand an NVIDIA GPU to a container (``--backend auto`` picks Ollama when true).

    True when the engine lists an ``nvidia`` runtime (NVIDIA Container Toolkit) or has discovered NVIDIA CDI
    devices (newer engines).
    """
    with docker_op("reading docker info"):
        info = client.info()
    return _info_gpu_visible(info)


def _info_gpu_visible(info: Mapping[str, Any]) -> bool:
    runtimes = info.get("Runtimes") or {}
    if "nvidia" in runtimes or info.get("DefaultRuntime") == "nvidia":
        return True
    devices = info.get("DiscoveredDevices") or []
    return any(str(d.get("ID", "")).startswith("nvidia.com/gpu") for d in devices if isinstance(d, dict))


def engine_facts(client: docker.DockerClient) -> EngineFacts:
    """The engine's version, API version, runtimes (is ``nvidia`` registered?), root dir and host figures."""
    with docker_op("reading docker version and info"):
        version = client.version()
        info = client.info()
    runtimes = tuple(sorted(info.get("Runtimes") or {}))
    return EngineFacts(
        server_version=str(version.get("Version") or info.get("ServerVersion") or ""),
        api_version=str(version.get("ApiVersion") or ""),
        operating_system=str(info.get("OperatingSystem") or ""),
        kernel_version=str(info.get("KernelVersion") or version.get("KernelVersion") or ""),
        architecture=str(info.get("Architecture") or version.get("Arch") or ""),
        runtimes=runtimes,
        default_runtime=str(info.get("DefaultRuntime") or ""),
        nvidia_runtime="nvidia" in runtimes,
        gpu_visible=_info_gpu_visible(info),
        root_dir=str(info.get("DockerRootDir") or ""),
        storage_driver=str(info.get("Driver") or ""),
        cgroup_version=str(info["CgroupVersion"]) if info.get("CgroupVersion") else None,
        cpu_count=int(info.get("NCPU") or 0),
        memory_total_bytes=int(info.get("MemTotal") or 0),
    )


@dataclass(frozen=True)
class ImageFacts:
    """A local image as the engine describes it. ``repo_digests`` is empty for an image that never came from
    (or went to) a registry, e.g. everything the kit builds offline: its ``id`` is then its only pin."""

    reference: str
    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    created: str
    size_bytes: int
    labels: Mapping[str, str]


def image_facts(client: docker.DockerClient, reference: str) -> ImageFacts:
    """Inspect one local image (by tag, digest reference or ID); the kit's own labels are kept, others dropped."""
    with docker_op(f"inspecting image {reference}"):
        try:
            image = client.images.get(reference)
        except docker.errors.ImageNotFound:
            raise DockerError(f"image {reference} is not on this engine", hint="run `invoke build`") from None
    attrs = image.attrs or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return ImageFacts(
        reference=reference,
        id=str(image.id),
        repo_tags=tuple(sorted(attrs.get("RepoTags") or [])),
        repo_digests=tuple(sorted(attrs.get("RepoDigests") or [])),
        created=str(attrs.get("Created") or ""),
        size_bytes=int(attrs.get("Size") or 0),
        labels={k: str(v) for k, v in sorted(labels.items()) if k.startswith("io.chimeraforge.")},
    )


def image_id(client: docker.DockerClient, reference: str) -> str:
    """The ``sha256:…`` ID of a local image (what a sweep records, so a resume or a bundle uses the same bytes)."""
    with docker_op(f"inspecting image {reference}"):
        try:
            return str(client.images.get(reference).id)
        except docker.errors.ImageNotFound:
            raise DockerError(f"image {reference} is not on this engine", hint="run `invoke build`") from None


def project_name(run_id: str) -> str:
    """``cfk-<run id>-<short random>``: unique per stack, valid as a compose project and container name."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", run_id.lower()).strip("-_")[:40] or "run"
    return f"cfk-{slug}-{secrets.token_hex(3)}"


def ensure_model_volume(client: docker.DockerClient, name: str = MODEL_VOLUME, *, kit_version: str) -> None:
    """Create the shared model store when missing (labelled as the kit's, with the role that reap skips)."""
    with docker_op(f"checking volume {name}"):
        try:
            client.volumes.get(name)
            return
        except docker.errors.NotFound:
            pass
        client.volumes.create(
            name=name, labels={LABEL_KIT: "1", LABEL_ROLE: ROLE_MODEL_STORE, LABEL_KIT_VERSION: kit_version}
        )


# ------------------------------------------------------------------------------------------- reaping


@dataclass(frozen=True)
class ReapReport:
    """What :func:`reap` removed (names), and what it could not."""

    containers: tuple[str, ...]
    networks: tuple[str, ...]
    volumes: tuple[str, ...]
    failed: tuple[str, ...]


def _remove_container(container: Container) -> tuple[str, str]:
    """``(name, "removed" | "gone" | "left")`` for one forced removal."""
    name = str((container.attrs.get("Names") or [container.id])[0]).lstrip("/")
    try:
        container.remove(force=True, v=False)
        return name, "removed"
    except docker.errors.NotFound:
        return name, "gone"
    except (docker.errors.APIError, requests.exceptions.RequestException):
        return name, "left"


def remove_labelled(
    client: docker.DockerClient, label: str, *, volumes: bool, removed: dict[str, list[str]] | None = None
) -> list[str]:
    """Remove containers, then networks (then volumes) carrying ``label``; returns what is still there."""
    removed = removed if removed is not None else {"containers": [], "networks": [], "volumes": []}
    leftovers: list[str] = []
    for _attempt in range(3):
        leftovers = []
        with docker_op("listing the kit's containers"):
            # sparse: the list's own fields, without one inspect round trip per container
            containers = client.containers.list(all=True, filters={"label": label}, sparse=True)
        if containers:
            # removed at once: a stack's servers stop in parallel, as `docker compose down` stops them
            with ThreadPoolExecutor(max_workers=min(8, len(containers)), thread_name_prefix="remove") as pool:
                outcomes = list(pool.map(_remove_container, containers))
            for name, outcome in outcomes:
                if outcome == "removed":
                    removed["containers"].append(name)
                elif outcome == "left":
                    leftovers.append(f"container {name}")
        with docker_op("listing the kit's networks"):
            networks = client.networks.list(filters={"label": label})
        for n in networks:
            try:
                n.remove()
                removed["networks"].append(str(n.name))
            except docker.errors.NotFound:
                pass
            except (docker.errors.APIError, requests.exceptions.RequestException):
                leftovers.append(f"network {n.name}")
        if volumes:
            with docker_op("listing the kit's volumes"):
                vols = client.volumes.list(filters={"label": label})
            for v in vols:
                if (v.attrs.get("Labels") or {}).get(LABEL_ROLE) == ROLE_MODEL_STORE or v.name == MODEL_VOLUME:
                    continue
                try:
                    v.remove()
                    removed["volumes"].append(str(v.name))
                except docker.errors.NotFound:
                    pass
                except (docker.errors.APIError, requests.exceptions.RequestException):
                    leftovers.append(f"volume {v.name}")
        if not leftovers:
            break
        time.sleep(0.5)
    return leftovers


def reap(
    client: docker.DockerClient, *, run_id: str | None = None, project: str | None = None, volumes: bool = False
) -> ReapReport:
    """Remove everything labelled ``io.chimeraforge.kit=1`` (or one run's, or one project's) that is left.

    Containers and networks always; per-run volumes when ``volumes``; the shared model volume never. Backs
    ``invoke clean`` and ``invoke stack.down``.
    """
    label = f"{LABEL_PROJECT}={project}" if project else f"{LABEL_RUN_ID}={run_id}" if run_id else f"{LABEL_KIT}=1"
    removed: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
    failed = remove_labelled(client, label, volumes=volumes, removed=removed)
    return ReapReport(
        containers=tuple(sorted(set(removed["containers"]))),
        networks=tuple(sorted(set(removed["networks"]))),
        volumes=tuple(sorted(set(removed["volumes"]))),
        failed=tuple(failed),
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:400]


def image_or_none(client: docker.DockerClient, ref: str) -> Image | None:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerError(f"cannot inspect image {ref}: {first_line(exc)}", hint="is the engine up?") from None


def pull_image(client: docker.DockerClient, reference: str, *, hint: str) -> Image:
    """Pull ``reference`` (``name:tag`` or ``name:tag@sha256:…``); a registry or engine failure is a DockerError."""
    try:
        return client.images.pull(reference)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerError(f"pulling {reference} failed: {first_line(exc)}", hint=hint) from None


def build_from_files(
    client: docker.DockerClient,
    files: Mapping[str, Path | bytes],
    *,
    tag: str,
    labels: Mapping[str, str],
    buildargs: Mapping[str, str],
    dockerfile: str,
) -> Image:
    """Build from an explicit file set (a tar made here), so nothing outside it can leak into the image."""
    with tempfile.TemporaryFile() as buf:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name in sorted(files):
                item = files[name]
                data = item if isinstance(item, bytes) else item.read_bytes()
                info = tarfile.TarInfo(name)
                mode = 0o755 if name.startswith("bin/") else 0o644  # bin/: the Rust agent binaries
                info.size, info.mode, info.mtime = len(data), mode, 0
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        try:
            image, _logs = client.images.build(
                fileobj=buf,
                custom_context=True,
                dockerfile=dockerfile,
                tag=tag,
                labels=dict(labels),
                buildargs=dict(buildargs),
                rm=True,
                forcerm=True,
                pull=False,
            )
        except docker.errors.BuildError as exc:
            tail = _build_log_tail(exc.build_log)
            raise DockerError(f"building {tag} failed: {exc.msg}\n{tail}", hint="see the build output above") from None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerError(f"building {tag} failed: {first_line(exc)}", hint="is the engine up?") from None
    return image


def _build_log_tail(log: Iterable[Mapping[str, Any]], lines: int = 20) -> str:
    text = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in log)
    return "\n".join(text.strip().splitlines()[-lines:])
