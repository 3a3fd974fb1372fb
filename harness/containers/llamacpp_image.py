"""The llama.cpp server image: the host-built ``llama-server`` on the kit's offline Debian base.

Tagged by the hash of its context (binary, build record, Dockerfile, base image id), so a new sdist pin or new
build flags give a new image and parallel checkouts of different trees coexist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from harness.containers.engine import build_from_files, image_or_none, pull_image
from harness.containers.images import (
    ImageBuildResult,
    _context_sha256,
    _image_labels,
    _require_base,
)
from harness.containers.llamacpp_build import (
    LlamaServerBuild,
    build_llama_server,
    cache_root,
    cuda_flags,
    fetch_sdist,
    load_llamacpp_pin,
)
from harness.containers.pins import LOCK_PATH, PINS_PATH, REPO_ROOT, load_pins, read_lock, registry_reachable
from harness.errors import DockerError
from harness.progress import Progress, quiet

LLAMACPP_REPOSITORY = "chimeraforge/llamacpp"


def build_llamacpp_image(
    client: docker.DockerClient,
    *,
    base_tag: str,
    kit_version: str,
    pins_path: Path = PINS_PATH,
    repo_root: Path = REPO_ROOT,
    server: LlamaServerBuild | None = None,
    progress: Progress = quiet,
) -> tuple[ImageBuildResult, LlamaServerBuild]:
    """The image (built unless present) and the cached server build it carries."""
    start = time.monotonic()
    pin = load_llamacpp_pin(pins_path)
    server = server or build_llama_server(pin, progress=progress)
    base = _require_base(client, base_tag)
    files: dict[str, Path | bytes] = {
        "Dockerfile": repo_root / "docker" / "llamacpp.Dockerfile",
        "bin/llama-server": server.binary,
        "build.json": server.binary.parent.parent / "build.json",
    }
    buildargs = {
        "BASE_IMAGE": base_tag,
        "BASE_IMAGE_ID": str(base.id),
        "KIT_VERSION": kit_version,
        "LLAMA_CPP_COMMIT": server.llama_cpp_commit,
        "SDIST_SHA256": server.sdist_sha256,
    }
    ctx_sha = _context_sha256(files, buildargs)
    tag = f"{LLAMACPP_REPOSITORY}:{server.llama_cpp_commit}-{ctx_sha[:12]}"
    existing = image_or_none(client, tag)
    if existing is not None:
        return ImageBuildResult("llamacpp", tag, str(existing.id), False, time.monotonic() - start, ctx_sha), server
    progress(f"building {tag} from {base_tag} (llama-server {server.llama_cpp_commit})")
    labels = _image_labels("llamacpp", kit_version, ctx_sha, base_tag, str(base.id))
    image = build_from_files(client, files, tag=tag, labels=labels, buildargs=buildargs, dockerfile="Dockerfile")
    return ImageBuildResult("llamacpp", tag, str(image.id), True, time.monotonic() - start, ctx_sha), server


# ---------------------------------------------------------------------------------------------------- CUDA

LLAMACPP_CUDA_REPOSITORY = "chimeraforge/llamacpp-cuda"
CUDA_DOCKERFILE = "llamacpp-cuda.Dockerfile"


@dataclass(frozen=True)
class CudaImagePlan:
    """The CUDA image this pin set makes: its tag is known before anything is downloaded or built."""

    tag: str
    devel_image: str
    runtime_image: str
    flags: tuple[str, ...]
    buildargs: dict[str, str]
    context_sha256: str

    def facts(self, image_id: str, build_s: float) -> dict[str, object]:
        """What provenance records about the engine build (``engine.json``)."""
        return {
            "engine": "llama.cpp",
            "device": "cuda",
            "source": f"llama-cpp-python sdist, compiled in {self.devel_image}",
            "sdist_sha256": self.buildargs["SDIST_SHA256"],
            "llama_cpp_commit": self.buildargs["LLAMA_CPP_COMMIT"],
            "cmake_flags": list(self.flags),
            "cuda_devel_image": self.devel_image,
            "cuda_runtime_image": self.runtime_image,
            "image": self.tag,
            "image_id": image_id,
            "build_s": round(build_s, 1),
        }


def plan_cuda_image(
    *, base_tag: str, base_id: str, kit_version: str, pins_path: Path = PINS_PATH, lock_path: Path = LOCK_PATH,
    repo_root: Path = REPO_ROOT,
) -> CudaImagePlan:  # fmt: skip
    """Pinned NVIDIA images (by digest when ``images.lock.json`` has one), flags and the content-hashed tag.

    The sdist enters the tag through its pinned sha256 (a build argument the Dockerfile checks again), so the tag
    is known, and a local image found, without downloading it.
    """
    pin = load_llamacpp_pin(pins_path)
    pins = load_pins(pins_path)
    lock = read_lock(lock_path)

    def ref(key: str) -> str:
        locked = lock.images.get(key) if lock else None
        if locked is not None and locked.reference == pins.images[key].reference:
            return locked.pinned_reference
        return pins.images[key].reference

    flags = cuda_flags(pin)
    buildargs = {
        "CUDA_DEVEL_IMAGE": ref("cuda_devel"),
        "CUDA_RUNTIME_IMAGE": ref("cuda_runtime"),
        "BASE_IMAGE": base_tag,
        "BASE_IMAGE_ID": base_id,
        "KIT_VERSION": kit_version,
        "LLAMA_CPP_COMMIT": pin.llama_cpp_commit,
        "SDIST_SHA256": pin.sdist_sha256,
        "CMAKE_FLAGS": " ".join(flags),
    }
    ctx_sha = _context_sha256({"Dockerfile": repo_root / "docker" / CUDA_DOCKERFILE}, buildargs)
    tag = f"{LLAMACPP_CUDA_REPOSITORY}:{pin.llama_cpp_commit}-{ctx_sha[:12]}"
    return CudaImagePlan(tag, buildargs["CUDA_DEVEL_IMAGE"], buildargs["CUDA_RUNTIME_IMAGE"], flags, buildargs, ctx_sha)


def cuda_image_unavailable(client: docker.DockerClient, plan: CudaImagePlan) -> str | None:
    """Why this host cannot get the CUDA image (None when it is here, or a registry can give its bases)."""
    if image_or_none(client, plan.tag) is not None:
        return None
    probe = registry_reachable(client, plan.devel_image)
    return None if probe.reachable else probe.detail


def cuda_images_unreachable(client: docker.DockerClient, pins_path: Path = PINS_PATH) -> str | None:
    """The early check, before any build: why no CUDA image can exist here (no kit CUDA image on the engine and
    no registry for the NVIDIA base), or None. The exact tag is checked once the base image is known."""
    try:
        if client.images.list(name=LLAMACPP_CUDA_REPOSITORY):
            return None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerError(f"cannot list images: {exc}", hint="is the engine up?") from None
    probe = registry_reachable(client, load_pins(pins_path).images["cuda_devel"].reference)
    return None if probe.reachable else probe.detail


def build_llamacpp_cuda_image(
    client: docker.DockerClient,
    plan: CudaImagePlan,
    *,
    pins_path: Path = PINS_PATH,
    repo_root: Path = REPO_ROOT,
    progress: Progress = quiet,
) -> tuple[ImageBuildResult, dict[str, object]]:
    """The CUDA server image (built unless present) and its provenance facts.

    Pulls the two NVIDIA images first, so a registry failure is named as one rather than as a build error.
    """
    start = time.monotonic()
    existing = image_or_none(client, plan.tag)
    if existing is not None:
        result = ImageBuildResult("llamacpp", plan.tag, str(existing.id), False, 0.0, plan.context_sha256)
        return result, plan.facts(str(existing.id), 0.0)
    pin = load_llamacpp_pin(pins_path)
    sdist = fetch_sdist(pin, cache_root(), progress=progress)
    for reference in (plan.devel_image, plan.runtime_image):
        progress(f"pulling {reference}")
        pull_image(client, reference, hint="the CUDA image needs a registry: run where one answers, or load a bundle")
    progress(f"building {plan.tag} (llama-server with CUDA for {pin.cuda_architectures}; long the first time)")
    files: dict[str, Path | bytes] = {"Dockerfile": repo_root / "docker" / CUDA_DOCKERFILE, "sdist.tar.gz": sdist}
    labels = _image_labels(
        "llamacpp", plan.buildargs["KIT_VERSION"], plan.context_sha256, plan.buildargs["BASE_IMAGE"],
        plan.buildargs["BASE_IMAGE_ID"],
    )  # fmt: skip
    image = build_from_files(
        client, files, tag=plan.tag, labels=labels, buildargs=plan.buildargs, dockerfile="Dockerfile"
    )
    elapsed = time.monotonic() - start
    result = ImageBuildResult("llamacpp", plan.tag, str(image.id), True, elapsed, plan.context_sha256)
    return result, plan.facts(str(image.id), elapsed)
