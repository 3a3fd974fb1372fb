"""The kit's image builds (harness, Rust agent, Ollama), and ``docker save``/``load``.

An adapter beside :mod:`harness.containers.stack`; with it, :mod:`~harness.containers.engine`,
:mod:`~harness.containers.pins` and :mod:`~harness.containers.base_image` the modules that import ``docker``:
building images is its own concern, separate from running stacks. Docker SDK, registry and subprocess failures are
translated here into :class:`harness.errors.DockerError` / :class:`harness.errors.BadInputError`.

Why this shape:

- ``docker/pins.toml`` names every external reference; :func:`resolve_pins` asks a registry for digests and is
  the only writer of ``docker/images.lock.json``. A digest is never typed or guessed: an unanswered lookup is
  recorded as ``null`` with its reason.
- Every image the kit builds itself starts from an offline base bootstrapped with debootstrap from the Debian
  mirror in the pins and ``docker import``-ed (:func:`ensure_base_image`), so CI (no registry) and NVIDIA hosts
  run the same userland, and no build ever needs a registry or the network.
- Python dependencies come from a wheelhouse downloaded on the host against ``requirements.lock`` with hashes
  (:func:`build_wheelhouse`); the image installs them with ``--no-index --require-hashes``.
- The Ollama image wraps ``ollama/ollama`` and therefore needs a registry; without one its build is skipped
  with a reason (:func:`plan_build`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
from docker.models.images import Image

from harness.containers.base_image import BaseImageResult, WheelhouseResult, build_wheelhouse, ensure_base_image
from harness.containers.engine import LABEL_CONTEXT_SHA, LABEL_IMAGE_ROLE, LABEL_KIT, LABEL_KIT_VERSION
from harness.containers.engine import build_from_files as _build_from_files
from harness.containers.engine import first_line as _first_line
from harness.containers.engine import image_or_none as _image_or_none
from harness.containers.pins import (
    LOCK_PATH,
    NO_REGISTRY_REASON,
    PINS_PATH,
    REPO_ROOT,
    ImageLock,
    Pins,
    RegistryProbe,
    load_pins,
    read_lock,
    registry_reachable,
)
from harness.errors import BadInputError, DockerError
from harness.progress import Progress, quiet

CONTEXT_DIR = REPO_ROOT / "docker" / "context"
HARNESS_REPOSITORY = "chimeraforge/harness"
OLLAMA_REPOSITORY = "chimeraforge/ollama"


# ---------------------------------------------------------------------------------------------------- builds


@dataclass(frozen=True)
class PlannedImage:
    """One image of a build: what it is built from, or why it is skipped."""

    name: str
    dockerfile: str
    base_image: str
    repository: str
    skip_reason: str | None = None


@dataclass(frozen=True)
class BuildPlan:
    """What ``invoke build`` will do, decided before anything runs (so it can be shown first)."""

    offline: bool
    reason: str
    base_tag: str
    images: tuple[PlannedImage, ...]

    def describe(self, needed: frozenset[str] | None = None) -> list[str]:
        """One calm line on the path taken, then the images ``needed`` (default: all). Offline is the kit's normal
        path (no registry here, or an air-gapped host), so the registry's own error text is not shown."""
        first = (
            "offline: building from the local base image (no image registry answered)"
            if self.offline
            else f"online build: {self.reason}"
        )
        lines = [first, f"base: {self.base_tag}"]
        for img in self.images:
            if needed is not None and img.name not in needed:
                continue
            what = f"skipped: {img.skip_reason}" if img.skip_reason else f"from {img.base_image}"
            lines.append(f"{img.name} ({img.dockerfile}): {what}")
        return lines


def plan_build(pins: Pins, lock: ImageLock | None, *, registry: RegistryProbe) -> BuildPlan:
    """Pick the offline path when no registry answers; the harness image always builds from the offline base."""
    base = pins.debian.tag
    ollama_lock = lock.images.get("ollama") if lock else None
    ollama_ref = ollama_lock.pinned_reference if ollama_lock else pins.images["ollama"].reference
    harness = PlannedImage("harness", "harness.Dockerfile", base, HARNESS_REPOSITORY)
    if registry.reachable:
        unpinned = "" if ollama_lock and ollama_lock.digest else " (unpinned: run `invoke images.lock`)"
        ollama = PlannedImage("ollama", "ollama.Dockerfile", ollama_ref, OLLAMA_REPOSITORY)
        builder_lock = lock.images.get("rust_builder") if lock else None
        builder = builder_lock.pinned_reference if builder_lock else pins.images["rust_builder"].reference
        rust = PlannedImage("rust-agent", "rust-agent.Dockerfile", builder, RUST_REPOSITORY)
        reason = registry.detail + unpinned
        return BuildPlan(False, reason, base, (harness, ollama, rust))
    ollama = PlannedImage(
        "ollama",
        "ollama.Dockerfile",
        ollama_ref,
        OLLAMA_REPOSITORY,
        skip_reason=f"{NO_REGISTRY_REASON}: {ollama_ref} cannot be pulled; rehearse with --backend sim",
    )
    rust = PlannedImage("rust-agent", "rust-agent-offline.Dockerfile", "host cargo, vendored crates", RUST_REPOSITORY)
    return BuildPlan(True, registry.detail, base, (harness, ollama, rust))


@dataclass(frozen=True)
class ImageBuildResult:
    """A built (or already present) image, or a skipped one with its reason."""

    name: str
    tag: str | None
    image_id: str | None
    built: bool
    duration_s: float
    context_sha256: str | None = None
    skip_reason: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)


def _iter_tree(root: Path, rel: str) -> Iterator[tuple[str, Path]]:
    base = root / rel
    for path in sorted(base.rglob("*")):
        parts = path.relative_to(root).parts
        if path.is_dir() or "__pycache__" in parts or path.suffix in {".pyc", ".pyo"}:
            continue
        if parts[:2] == ("harness", "rust"):  # the Rust agents have their own image
            continue
        yield "/".join(parts), path


def _walk(root: Path, *, skip: set[str]) -> Iterator[tuple[str, Path]]:
    """Files under ``root`` (relative POSIX paths, sorted), not descending into top-level folders in ``skip``."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if d not in skip]
        dirnames.sort()
        for name in sorted(filenames):
            yield (here / name).relative_to(root).as_posix(), here / name


def harness_context_files(repo_root: Path, wheelhouse: Path) -> dict[str, Path]:
    """Exactly what the harness image is built from (path in the context → file on disk)."""
    files: dict[str, Path] = {
        "Dockerfile": repo_root / "docker" / "harness.Dockerfile",
        "requirements.lock": repo_root / "requirements.lock",
    }
    for rel in ("harness", "experiments"):
        files.update(dict(_iter_tree(repo_root, rel)))
    for wheel in sorted(wheelhouse.glob("*.whl")):
        files[f"wheels/{wheel.name}"] = wheel
    return files


def _require_base(client: docker.DockerClient, base_tag: str) -> Image:
    base = _image_or_none(client, base_tag)
    if base is None:
        raise DockerError(f"base image {base_tag} is missing", hint="build it first with `invoke images.base`")
    return base


def _image_labels(role: str, kit_version: str, ctx_sha: str, base_tag: str, base_id: str) -> dict[str, str]:
    """The labels on every image the kit builds: whose it is, from what inputs, on which base."""
    return {
        LABEL_KIT: "1",
        LABEL_KIT_VERSION: kit_version,
        LABEL_IMAGE_ROLE: role,
        LABEL_CONTEXT_SHA: ctx_sha,
        "io.chimeraforge.base_image": f"{base_tag}@{base_id}",
    }


def _context_sha256(files: Mapping[str, Path | bytes], buildargs: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        item = files[name]
        data = item if isinstance(item, bytes) else item.read_bytes()
        h.update(name.encode() + b"\0" + hashlib.sha256(data).hexdigest().encode() + b"\n")
    h.update(json.dumps(dict(sorted(buildargs.items()))).encode())
    return h.hexdigest()


def build_harness_image(
    client: docker.DockerClient,
    *,
    base_tag: str,
    wheelhouse: Path,
    kit_version: str,
    repo_root: Path = REPO_ROOT,
    force: bool = False,
    progress: Progress = quiet,
) -> ImageBuildResult:
    """The Python image (agents, controller, simulator): tagged by a hash of its exact inputs, skipped if present.

    Tags: ``chimeraforge/harness:<kit_version>-<context hash>`` plus the moving ``:<kit_version>``.
    """
    start = time.monotonic()
    base = _require_base(client, base_tag)
    files = harness_context_files(repo_root, wheelhouse)
    if not any(name.startswith("wheels/") for name in files):
        raise DockerError(f"the wheelhouse {wheelhouse} is empty", hint="run build_wheelhouse first")
    buildargs = {"BASE_IMAGE": base_tag, "BASE_IMAGE_ID": str(base.id), "KIT_VERSION": kit_version}
    ctx_sha = _context_sha256(files, buildargs)
    tag = f"{HARNESS_REPOSITORY}:{kit_version}-{ctx_sha[:12]}"
    moving = f"{HARNESS_REPOSITORY}:{kit_version}"
    existing = None if force else _image_or_none(client, tag)
    if existing is not None:
        existing.tag(HARNESS_REPOSITORY, kit_version)
        return ImageBuildResult(
            "harness", tag, str(existing.id), False, time.monotonic() - start, ctx_sha, None, (moving,)
        )
    progress(f"building {tag} from {base_tag} ({len(files)} context files)")
    labels = _image_labels("harness", kit_version, ctx_sha, base_tag, str(base.id))
    image = _build_from_files(client, files, tag=tag, labels=labels, buildargs=buildargs, dockerfile="Dockerfile")
    image.tag(HARNESS_REPOSITORY, kit_version)
    # The venv stage's image stays (untagged): it is the build cache that turns a change under harness/ into a
    # rebuild of the last layers only. One per requirements.lock.
    return ImageBuildResult("harness", tag, str(image.id), True, time.monotonic() - start, ctx_sha, None, (moving,))


RUST_REPOSITORY = "chimeraforge/rust-agent"
RUST_DIR = REPO_ROOT / "harness" / "rust"
RUST_BINARIES = ("chimeraforge-agent", "chimeraforge-multi")


def vendor_crates(rust_dir: Path, dest: Path, *, progress: Progress = quiet) -> Path:
    """``cargo vendor`` the locked dependencies (skipped when Cargo.lock is unchanged): the offline source."""
    lock_sha = hashlib.sha256((rust_dir / "Cargo.lock").read_bytes()).hexdigest()
    stamp = dest / ".cargo-lock.sha256"
    if stamp.is_file() and stamp.read_text().strip() == lock_sha:
        return dest
    progress(f"vendoring the Rust crates of {rust_dir / 'Cargo.lock'} into {dest}")
    _cargo(["vendor", "--locked", "--versioned-dirs", str(dest)], rust_dir)
    stamp.write_text(lock_sha + "\n")
    return dest


def build_rust_binaries(rust_dir: Path, vendor_dir: Path, *, progress: Progress = quiet) -> dict[str, Path]:
    """Release binaries built with ``--locked --offline`` from the vendored crates.

    They are compiled on the host because the offline Debian base carries no Rust toolchain (Debian's rustc is
    older than the crates need); host and base are both Debian bookworm, so the binaries' glibc matches.
    """
    progress("building the Rust agents (cargo build --release --locked --offline, vendored crates)")
    _cargo(
        [
            "build", "--release", "--locked", "--offline", "--bins",
            "--config", 'source.crates-io.replace-with="vendored"',
            "--config", f'source.vendored.directory="{vendor_dir.resolve()}"',
        ],
        rust_dir,
    )  # fmt: skip
    return {name: rust_dir / "target" / "release" / name for name in RUST_BINARIES}


def _cargo(args: list[str], cwd: Path) -> None:
    try:
        done = subprocess.run(["cargo", *args], cwd=cwd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise DockerError(
            "cargo is not installed", hint="install the Rust toolchain (rustup) to build the agents"
        ) from None
    except subprocess.TimeoutExpired:
        raise DockerError(f"cargo {args[0]} took longer than 30 minutes") from None
    if done.returncode != 0:
        raise DockerError(
            f"cargo {args[0]} failed:\n{done.stderr.strip()[-2000:]}", hint="run it by hand in harness/rust"
        )


def rust_context_files(
    repo_root: Path, context_dir: Path, *, builder_image: str | None, progress: Progress = quiet
) -> dict[str, Path | bytes]:
    """The Rust image's build context: sources and vendored crates (registry path) or host-built binaries."""
    rust_dir = repo_root / "harness" / "rust"
    vendor = vendor_crates(rust_dir, context_dir / "rust-vendor", progress=progress)
    files: dict[str, Path | bytes] = dict(_iter_tree(repo_root, "experiments"))
    if builder_image:
        files["Dockerfile"] = repo_root / "docker" / "rust-agent.Dockerfile"
        files.update({f"rust/{rel}": path for rel, path in _walk(rust_dir, skip={"target"})})
        files.update({f"rust-vendor/{rel}": path for rel, path in _walk(vendor, skip=set())})
        return files
    binaries = build_rust_binaries(rust_dir, vendor, progress=progress)
    files["Dockerfile"] = repo_root / "docker" / "rust-agent-offline.Dockerfile"
    files.update({f"bin/{name}": path for name, path in binaries.items()})
    return files


def build_rust_agent_image(
    client: docker.DockerClient,
    *,
    base_tag: str,
    kit_version: str,
    builder_image: str | None = None,
    repo_root: Path = REPO_ROOT,
    context_dir: Path = CONTEXT_DIR,
    force: bool = False,
    progress: Progress = quiet,
) -> ImageBuildResult:
    """The Rust agents' image: the two binaries, the prompts and the corpus on the offline base, non-root.

    With ``builder_image`` (a registry answers) the binaries are compiled in that pinned Rust image
    (docker/rust-agent.Dockerfile); without, on the host (docker/rust-agent-offline.Dockerfile). Both compile
    the vendored crates with --locked --offline.
    """
    start = time.monotonic()
    base = _require_base(client, base_tag)
    files = rust_context_files(repo_root, context_dir, builder_image=builder_image, progress=progress)
    buildargs = {"BASE_IMAGE": base_tag, "BASE_IMAGE_ID": str(base.id), "KIT_VERSION": kit_version}
    if builder_image:
        buildargs["BUILDER_IMAGE"] = builder_image
    ctx_sha = _context_sha256(files, buildargs)
    tag = f"{RUST_REPOSITORY}:{kit_version}-{ctx_sha[:12]}"
    existing = None if force else _image_or_none(client, tag)
    if existing is not None:
        return ImageBuildResult("rust-agent", tag, str(existing.id), False, time.monotonic() - start, ctx_sha)
    progress(f"building {tag} from {base_tag}" + (f" with the {builder_image} builder" if builder_image else ""))
    labels = _image_labels("rust-agent", kit_version, ctx_sha, base_tag, str(base.id))
    image = _build_from_files(client, files, tag=tag, labels=labels, buildargs=buildargs, dockerfile="Dockerfile")
    image.tag(RUST_REPOSITORY, kit_version)
    return ImageBuildResult("rust-agent", tag, str(image.id), True, time.monotonic() - start, ctx_sha)


def build_ollama_image(
    client: docker.DockerClient,
    planned: PlannedImage,
    *,
    pins: Pins,
    kit_version: str,
    repo_root: Path = REPO_ROOT,
    progress: Progress = quiet,
) -> ImageBuildResult:
    """The real Ollama server image (``ollama/ollama`` plus a non-root user and a healthcheck).

    Returns a skipped result with the plan's reason when no registry can provide the upstream image.
    """
    start = time.monotonic()
    if planned.skip_reason:
        local = local_ollama_image(client, pins)
        if local is not None:
            progress(f"ollama: no registry, using the local {local.tags[0] if local.tags else local.id}")
            return ImageBuildResult("ollama", str(local.id), str(local.id), False, 0.0)
        return ImageBuildResult("ollama", None, None, False, 0.0, skip_reason=planned.skip_reason)
    files: dict[str, Path | bytes] = {"Dockerfile": repo_root / "docker" / "ollama.Dockerfile"}
    buildargs = {"BASE_IMAGE": planned.base_image, "KIT_VERSION": kit_version}
    ctx_sha = _context_sha256(files, buildargs)
    tag = f"{OLLAMA_REPOSITORY}:{pins.ollama_version}-{ctx_sha[:12]}"
    progress(f"building {tag} from {planned.base_image}")
    labels = {
        LABEL_KIT: "1",
        LABEL_KIT_VERSION: kit_version,
        LABEL_IMAGE_ROLE: "ollama",
        LABEL_CONTEXT_SHA: ctx_sha,
        "io.chimeraforge.ollama_version": pins.ollama_version,
    }
    try:
        client.images.pull(planned.base_image)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        reason = f"{NO_REGISTRY_REASON}: pulling {planned.base_image} failed ({_first_line(exc)})"
        return ImageBuildResult("ollama", None, None, False, time.monotonic() - start, skip_reason=reason)
    image = _build_from_files(client, files, tag=tag, labels=labels, buildargs=buildargs, dockerfile="Dockerfile")
    image.tag(OLLAMA_REPOSITORY, pins.ollama_version)
    moving = f"{OLLAMA_REPOSITORY}:{pins.ollama_version}"
    return ImageBuildResult("ollama", tag, str(image.id), True, time.monotonic() - start, ctx_sha, None, (moving,))


def local_ollama_image(client: docker.DockerClient, pins: Pins) -> Image | None:
    """The kit's Ollama image of the pinned version when the engine already has it (built earlier, or loaded
    from a bundle): the offline path can run the real backend with it."""
    return _image_or_none(client, f"{OLLAMA_REPOSITORY}:{pins.ollama_version}")


def ollama_unavailable(client: docker.DockerClient, pins: Pins) -> str | None:
    """Why the real backend cannot get its server image here (None when it can: local image or a registry)."""
    if local_ollama_image(client, pins) is not None:
        return None
    probe = registry_reachable(client, pins.images["ollama"].reference)
    return None if probe.reachable else probe.detail


@dataclass(frozen=True)
class BuildReport:
    """Everything ``invoke build`` did, in order."""

    plan: BuildPlan
    base: BaseImageResult
    wheelhouse: WheelhouseResult
    images: tuple[ImageBuildResult, ...]


def build_all(
    client: docker.DockerClient,
    *,
    kit_version: str,
    python_exe: str,
    pins_path: Path = PINS_PATH,
    lock_path: Path = LOCK_PATH,
    repo_root: Path = REPO_ROOT,
    context_dir: Path = CONTEXT_DIR,
    rust: bool = True,
    ollama: bool = True,
    install_debootstrap: bool = False,
    progress: Progress = quiet,
) -> BuildReport:
    """``invoke build``: plan (offline when no registry answers, and say so), base, wheelhouse, images.

    ``rust=False`` skips the Rust agent image (a Python-only report does not need it), ``ollama=False`` the
    Ollama image (a rehearsal does not run it); neither is mentioned then. ``install_debootstrap`` lets the
    base image step install debootstrap with apt-get (a change to the host: only when asked).
    """
    pins = load_pins(pins_path)
    plan = plan_build(pins, read_lock(lock_path), registry=registry_reachable(client))
    needed = frozenset({"harness"} | ({"rust-agent"} if rust else set()) | ({"ollama"} if ollama else set()))
    for line in plan.describe(needed):
        progress(line)
    base = ensure_base_image(
        client, pins, kit_version=kit_version, install_debootstrap=install_debootstrap, progress=progress
    )
    wheels = build_wheelhouse(
        repo_root / "requirements.lock", context_dir / "wheels", python_exe=python_exe, progress=progress
    )
    results: list[ImageBuildResult] = []
    for planned in plan.images:
        if planned.name == "harness":
            results.append(
                build_harness_image(
                    client,
                    base_tag=base.tag,
                    wheelhouse=wheels.directory,
                    kit_version=kit_version,
                    repo_root=repo_root,
                    progress=progress,
                )
            )
        elif planned.name == "ollama" and ollama:
            results.append(
                build_ollama_image(
                    client, planned, pins=pins, kit_version=kit_version, repo_root=repo_root, progress=progress
                )
            )
    rust_plan = next(p for p in plan.images if p.name == "rust-agent")
    if rust:
        results.append(
            build_rust_agent_image(
                client, base_tag=base.tag, kit_version=kit_version, repo_root=repo_root, context_dir=context_dir,
                builder_image=None if plan.offline else rust_plan.base_image, progress=progress,
            )
        )  # fmt: skip
    return BuildReport(plan, base, wheels, tuple(results))


# ---------------------------------------------------------------------------------------------------- save/load


@dataclass(frozen=True)
class LocalImage:
    """An image on this engine: its ID and the repo tags that name it now."""

    image_id: str
    tags: tuple[str, ...]


def local_image(client: docker.DockerClient, ref: str) -> LocalImage | None:
    """The image ``ref`` (a tag or an ID) names on this engine, or None."""
    image = _image_or_none(client, ref)
    return None if image is None else LocalImage(str(image.id), tuple(image.tags))


def save_images(
    client: docker.DockerClient,
    image_ids: Iterable[str],
    write: Callable[[bytes], object],
    *,
    chunk_bytes: int = 1 << 20,
) -> int:
    """``docker save`` of exact image IDs, as one archive (shared layers once), streamed chunk by chunk to ``write``.

    Saved by ID, not by tag, so the archive names no tag: loading it moves no tag, and the tags are restored
    explicitly from the bundle's record. Returns the bytes written.
    """
    ids = list(image_ids)
    missing = [i for i in ids if _image_or_none(client, i) is None]
    if missing:
        raise BadInputError(
            f"image(s) {', '.join(missing)} are not on this engine",
            hint="bundle on the machine that ran the sweep, before its images are removed",
        )
    # The SDK saves one name per call; the engine's endpoint takes several (and writes shared layers once).
    url = f"{client.api.base_url}/v{client.api.api_version}/images/get"
    written = 0
    try:
        with client.api.get(url, params={"names": ids}, stream=True, timeout=None) as resp:
            if resp.status_code != 200:
                raise DockerError(f"docker save of {', '.join(ids)} failed: {resp.text.strip()[:400]}")
            for chunk in resp.iter_content(chunk_bytes):
                write(chunk)
                written += len(chunk)
    except requests.exceptions.RequestException as exc:
        raise DockerError(
            f"docker save of {', '.join(ids)} failed: {_first_line(exc)}", hint="is the engine up?"
        ) from None
    return written


def load_images(client: docker.DockerClient, chunks: Iterable[bytes]) -> list[str]:
    """``docker load`` from a stream of archive bytes; the IDs the engine reports it loaded."""
    try:
        loaded = client.images.load(chunks)  # type: ignore[arg-type]  # any body requests can send
    except docker.errors.ImageLoadError as exc:
        raise DockerError(f"docker load failed: {_first_line(exc)}", hint="is the archive complete?") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerError(f"docker load failed: {_first_line(exc)}", hint="is the engine up?") from None
    return [str(image.id) for image in loaded]


def tag_image(client: docker.DockerClient, image_id: str, reference: str) -> None:
    """Name ``image_id`` ``reference`` (``repo:tag``)."""
    repository, _, tag = reference.rpartition(":") if ":" in reference.split("/")[-1] else (reference, "", "latest")
    try:
        client.images.get(image_id).tag(repository, tag)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerError(f"cannot tag {image_id} as {reference}: {_first_line(exc)}") from None
