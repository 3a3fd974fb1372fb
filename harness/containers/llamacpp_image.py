"""The llama.cpp server image: the host-built ``llama-server`` on the kit's offline Debian base.

Tagged by the hash of its context (binary, build record, Dockerfile, base image id), so a new sdist pin or new
build flags give a new image and parallel checkouts of different trees coexist.
"""

from __future__ import annotations

import time
from pathlib import Path

import docker

from harness.containers.engine import build_from_files, image_or_none
from harness.containers.images import (
    ImageBuildResult,
    _context_sha256,
    _image_labels,
    _require_base,
)
from harness.containers.llamacpp_build import LlamaServerBuild, build_llama_server, load_llamacpp_pin
from harness.containers.pins import PINS_PATH, REPO_ROOT
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
