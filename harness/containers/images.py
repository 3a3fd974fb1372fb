"""Image pins, the offline Debian base, the wheelhouse, the kit's image builds, and ``docker save``/``load``.

An adapter (layer 3, beside ``harness.containers.stack``) and the only other module allowed to import ``docker``:
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

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.images import Image

from harness.errors import BadInputError, DockerError

REPO_ROOT = Path(__file__).resolve().parents[2]
PINS_PATH = REPO_ROOT / "docker" / "pins.toml"
LOCK_PATH = REPO_ROOT / "docker" / "images.lock.json"
CONTEXT_DIR = REPO_ROOT / "docker" / "context"
LOCK_SCHEMA_VERSION = 1
NO_REGISTRY_REASON = "no registry answered"
HARNESS_REPOSITORY = "chimeraforge/harness"
OLLAMA_REPOSITORY = "chimeraforge/ollama"

LABEL_KIT = "io.chimeraforge.kit"
LABEL_KIT_VERSION = "io.chimeraforge.kit_version"
LABEL_IMAGE_ROLE = "io.chimeraforge.image"
LABEL_CONTEXT_SHA = "io.chimeraforge.context_sha256"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# ---------------------------------------------------------------------------------------------------- pins


@dataclass(frozen=True)
class ImagePin:
    """One external image reference and what uses it."""

    key: str
    reference: str
    used_by: str


@dataclass(frozen=True)
class DebianPin:
    """How the offline base is bootstrapped."""

    suite: str
    mirror: str
    variant: str
    packages: tuple[str, ...]
    repository: str

    def config_sha256(self) -> str:
        """Hash of everything that shapes the rootfs; names the base tag so a pin change gives a new image."""
        doc = {"suite": self.suite, "mirror": self.mirror, "variant": self.variant, "packages": self.packages}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.suite}-{self.config_sha256()[:12]}"


@dataclass(frozen=True)
class Pins:
    """``docker/pins.toml`` parsed."""

    ollama_version: str
    model: str
    debian: DebianPin
    images: Mapping[str, ImagePin]
    sha256: str


def load_pins(path: Path = PINS_PATH) -> Pins:
    """Read the pins file; a malformed file is bad input naming the key."""
    try:
        raw = path.read_bytes()
        doc = tomllib.loads(raw.decode())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read pins file {path}: {exc}", hint="fix docker/pins.toml") from None
    try:
        deb = doc["debian"]
        images = {
            key: ImagePin(key=key, reference=str(v["reference"]), used_by=str(v.get("used_by", "")))
            for key, v in doc["images"].items()
        }
        return Pins(
            ollama_version=str(doc["ollama"]["version"]),
            model=str(doc["ollama"]["model"]),
            debian=DebianPin(
                suite=str(deb["suite"]),
                mirror=str(deb["mirror"]),
                variant=str(deb.get("variant", "minbase")),
                packages=tuple(str(p) for p in deb["packages"]),
                repository=str(deb["repository"]),
            ),
            images=images,
            sha256=hashlib.sha256(raw).hexdigest(),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(f"pins file {path} lacks or mistypes {exc}", hint="fix docker/pins.toml") from None


# ---------------------------------------------------------------------------------------------------- lock


@dataclass(frozen=True)
class LockedImage:
    """A pin's resolution: a digest the registry gave, or ``None`` and why not."""

    reference: str
    digest: str | None
    reason: str | None = None
    detail: str | None = None

    @property
    def pinned_reference(self) -> str:
        """``name:tag@sha256:…`` when locked, else the bare reference (a build then says it is unpinned)."""
        return f"{self.reference}@{self.digest}" if self.digest else self.reference


@dataclass(frozen=True)
class ImageLock:
    """``docker/images.lock.json``."""

    schema_version: int
    pins_sha256: str
    images: Mapping[str, LockedImage]

    @property
    def any_resolved(self) -> bool:
        return any(img.digest for img in self.images.values())

    def to_json(self) -> str:
        doc = {
            "schema_version": self.schema_version,
            "pins_sha256": self.pins_sha256,
            "images": {
                k: {"reference": v.reference, "digest": v.digest, "reason": v.reason, "detail": v.detail}
                for k, v in sorted(self.images.items())
            },
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def read_lock(path: Path = LOCK_PATH) -> ImageLock | None:
    """The lock file, or ``None`` when it was never written; unknown schema versions are refused."""
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"cannot read {path}: {exc}", hint="re-create it with `invoke images.lock`") from None
    if doc.get("schema_version") != LOCK_SCHEMA_VERSION:
        raise BadInputError(
            f"{path} has schema_version {doc.get('schema_version')!r}, this kit reads {LOCK_SCHEMA_VERSION}",
            hint="re-create it with `invoke images.lock`",
        )
    images = {
        k: LockedImage(reference=v["reference"], digest=v.get("digest"), reason=v.get("reason"), detail=v.get("detail"))
        for k, v in doc.get("images", {}).items()
    }
    return ImageLock(schema_version=LOCK_SCHEMA_VERSION, pins_sha256=doc.get("pins_sha256", ""), images=images)


def _split_reference(reference: str) -> tuple[str, str, str]:
    """``(registry host, repository, tag)`` for a Docker Hub style reference."""
    name, _, tag = reference.rpartition(":") if ":" in reference.split("/")[-1] else (reference, "", "latest")
    first = name.split("/")[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        host, _, repo = name.partition("/")
    else:
        host, repo = "registry-1.docker.io", name if "/" in name else f"library/{name}"
    return host, repo, tag or "latest"


_MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


def _digest_over_https(reference: str, timeout_s: float) -> str:
    """Ask the registry's HTTP API directly (anonymous token) for the manifest digest of ``reference``."""
    host, repo, tag = _split_reference(reference)
    headers = {"Accept": _MANIFEST_TYPES}
    if host == "registry-1.docker.io":
        token_url = f"https://auth.docker.io/token?service=registry.docker.io&scope=repository:{repo}:pull"
        with urllib.request.urlopen(token_url, timeout=timeout_s) as resp:
            headers["Authorization"] = f"Bearer {json.load(resp)['token']}"
    req = urllib.request.Request(f"https://{host}/v2/{repo}/manifests/{tag}", headers=headers, method="HEAD")
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        digest = resp.headers.get("Docker-Content-Digest")
    if not digest or not digest.startswith("sha256:"):
        raise ValueError(f"registry answered without a Docker-Content-Digest for {reference}")
    return str(digest)


def _resolve_one(client: docker.DockerClient | None, reference: str, timeout_s: float) -> LockedImage:
    errors: list[str] = []
    if client is not None:
        try:
            data = client.images.get_registry_data(reference)
            if data.id and str(data.id).startswith("sha256:"):
                return LockedImage(reference=reference, digest=str(data.id))
            errors.append("engine: no digest in the answer")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            errors.append(f"engine: {_first_line(exc)}")
    try:
        return LockedImage(reference=reference, digest=_digest_over_https(reference, timeout_s))
    except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
        errors.append(f"https: {_first_line(exc)}")
    return LockedImage(reference=reference, digest=None, reason=NO_REGISTRY_REASON, detail="; ".join(errors))


def resolve_pins(
    pins: Pins,
    *,
    client: docker.DockerClient | None,
    lock_path: Path | None = LOCK_PATH,
    timeout_s: float = 10.0,
) -> ImageLock:
    """Ask the registry (through the engine, then over HTTPS) for each pinned image's digest; write the lock.

    The only writer of ``images.lock.json``: a digest comes from a registry's answer or not at all.
    """
    images = {key: _resolve_one(client, pin.reference, timeout_s) for key, pin in sorted(pins.images.items())}
    lock = ImageLock(schema_version=LOCK_SCHEMA_VERSION, pins_sha256=pins.sha256, images=images)
    if lock_path is not None:
        lock_path.write_text(lock.to_json())
    return lock


@dataclass(frozen=True)
class RegistryProbe:
    """Whether an image registry answers the engine, and what it said."""

    reachable: bool
    detail: str


def registry_reachable(client: docker.DockerClient, reference: str = "debian:bookworm-slim") -> RegistryProbe:
    """The engine's own view (it is the engine that pulls ``FROM`` images): a registry-data lookup."""
    try:
        client.images.get_registry_data(reference)
        return RegistryProbe(True, f"registry answered for {reference}")
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        return RegistryProbe(False, f"{NO_REGISTRY_REASON} for {reference}: {_first_line(exc)}")


# ---------------------------------------------------------------------------------------------------- helpers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:400]


def _image_or_none(client: docker.DockerClient, ref: str) -> Image | None:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerError(f"cannot inspect image {ref}: {_first_line(exc)}", hint="is the engine up?") from None


# ---------------------------------------------------------------------------------------------------- base


@dataclass(frozen=True)
class BaseImageResult:
    """The offline base: its tag and image id, and whether this call built it."""

    tag: str
    image_id: str
    built: bool
    duration_s: float
    packages_sha256: str | None = None


_TRIM_PATHS = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/apt/archives",
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "var/lib/apt/lists",
    "var/log",
    "debootstrap",
)


def _run(cmd: list[str], *, what: str, hint: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DockerError(f"{what}: cannot run {cmd[0]} ({exc})", hint=hint) from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise DockerError(f"{what} failed (exit {proc.returncode}):\n{tail}", hint=hint)
    return proc.stdout


def _ensure_debootstrap(progress: Progress) -> str:
    found = shutil.which("debootstrap")
    if found:
        return found
    progress("debootstrap missing: installing it with apt-get")
    hint = "install debootstrap yourself (apt-get install debootstrap) and run as root"
    _run(["apt-get", "update", "-qq"], what="apt-get update", hint=hint)
    _run(["apt-get", "install", "-y", "-qq", "debootstrap"], what="apt-get install debootstrap", hint=hint)
    found = shutil.which("debootstrap")
    if not found:
        raise DockerError("debootstrap is still missing after apt-get install", hint=hint)
    return found


def ensure_base_image(
    client: docker.DockerClient,
    pins: Pins,
    *,
    kit_version: str,
    force: bool = False,
    workdir: Path | None = None,
    progress: Progress = _quiet,
) -> BaseImageResult:
    """Bootstrap the minimal Debian rootfs of the pins and ``docker import`` it; skip when the tag exists.

    Needs root (debootstrap chroots and creates device nodes) and the Debian mirror; no image registry.
    The installed package list is written into the image (``/etc/chimeraforge/base-packages.txt``) and its
    sha256 into a label, so provenance can show exactly what the base holds.
    """
    deb = pins.debian
    start = time.monotonic()
    existing = None if force else _image_or_none(client, deb.tag)
    if existing is not None:
        return BaseImageResult(deb.tag, str(existing.id), False, time.monotonic() - start)
    debootstrap = _ensure_debootstrap(progress)
    with tempfile.TemporaryDirectory(prefix="cfk-rootfs-", dir=workdir) as tmp:
        rootfs = Path(tmp) / "rootfs"
        progress(f"debootstrap {deb.suite} ({deb.variant}, {len(deb.packages)} extra packages) from {deb.mirror}")
        _run(
            [
                debootstrap,
                f"--variant={deb.variant}",
                f"--include={','.join(deb.packages)}",
                deb.suite,
                str(rootfs),
                deb.mirror,
            ],
            what="debootstrap",
            hint="debootstrap needs root and the Debian mirror in docker/pins.toml",
        )
        packages = _run(
            ["chroot", str(rootfs), "dpkg-query", "-W", "-f=${Package} ${Version} ${Architecture}\\n"],
            what="listing the base's packages",
            hint="the rootfs is broken; re-run with force",
        )
        for rel in _TRIM_PATHS:
            target = rootfs / rel
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        meta = rootfs / "etc" / "chimeraforge"
        meta.mkdir(parents=True, exist_ok=True)
        (meta / "base-packages.txt").write_text(packages)
        packages_sha = hashlib.sha256(packages.encode()).hexdigest()
        tar_path = Path(tmp) / "rootfs.tar"
        progress("packing and importing the rootfs")
        _run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tar_path), "."],
            what="packing the rootfs",
            hint="check free disk space",
        )
        repository, _, tag = deb.tag.partition(":")
        try:
            client.api.import_image_from_file(
                str(tar_path),
                repository=repository,
                tag=f"{tag}-raw",
                changes=[
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "ENV LANG=C.UTF-8",
                    'CMD ["/bin/bash"]',
                ],
            )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerError(f"docker import failed: {_first_line(exc)}", hint="check the engine's disk") from None
    # `docker import` cannot set labels; a one-line build adds them (metadata only, no new layer).
    labels = {
        LABEL_KIT: "1",
        LABEL_KIT_VERSION: kit_version,
        LABEL_IMAGE_ROLE: "base",
        "io.chimeraforge.debian.suite": deb.suite,
        "io.chimeraforge.debian.mirror": deb.mirror,
        "io.chimeraforge.debian.config_sha256": deb.config_sha256(),
        "io.chimeraforge.debian.packages_sha256": packages_sha,
    }
    raw_ref = f"{deb.tag}-raw"
    dockerfile = f"FROM {raw_ref}\n"
    image = _build_from_files(
        client, {"Dockerfile": dockerfile.encode()}, tag=deb.tag, labels=labels, buildargs={}, dockerfile="Dockerfile"
    )
    _remove_image_quietly(client, raw_ref)
    return BaseImageResult(deb.tag, str(image.id), True, time.monotonic() - start, packages_sha)


def _remove_image_quietly(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
        client.images.remove(ref, noprune=True)


# ---------------------------------------------------------------------------------------------------- wheels


@dataclass(frozen=True)
class WheelhouseResult:
    """Where the wheels are and which lock they satisfy."""

    directory: Path
    lock_sha256: str
    wheel_count: int
    total_bytes: int
    built: bool
    duration_s: float


_STAMP = ".requirements.sha256"


def build_wheelhouse(
    requirements: Path,
    dest: Path,
    *,
    python_exe: str,
    python_version: str = "3.11",
    glibc: tuple[int, int] = (2, 36),
    arch: str = "x86_64",
    progress: Progress = _quiet,
) -> WheelhouseResult:
    """Download every wheel ``requirements`` pins (hash-checked) for the image's Python; skip when current.

    ``glibc`` is the image's (bookworm: 2.36): every manylinux tag up to it is passed, since pip does not widen a
    given ``--platform`` itself. Only wheels: an sdist would need a compiler in the image.
    """
    start = time.monotonic()
    lock_sha = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = dest / _STAMP
    stamp_text = f"{lock_sha} {python_version} glibc{glibc[0]}.{glibc[1]} {arch}"
    if stamp.exists() and stamp.read_text().strip() == stamp_text:
        wheels = sorted(dest.glob("*.whl"))
        return WheelhouseResult(
            dest, lock_sha, len(wheels), sum(w.stat().st_size for w in wheels), False, time.monotonic() - start
        )
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    progress(f"downloading wheels for {requirements.name} ({stamp_text.split(' ', 1)[1]})")
    abi = "cp" + python_version.replace(".", "")
    # --no-deps is safe: a pip-compile lock lists the whole closure, and the image's install re-checks it.
    cmd = [python_exe, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps", "--require-hashes"]
    cmd += ["--only-binary=:all:", "--python-version", python_version]
    for tag in _manylinux_tags(glibc, arch):
        cmd += ["--platform", tag]
    cmd += ["--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]
    cmd += ["-d", str(dest), "-r", str(requirements)]
    _run(cmd, what="pip download", hint="check that PyPI is reachable and requirements.lock is current")
    stamp.write_text(stamp_text + "\n")
    wheels = sorted(dest.glob("*.whl"))
    return WheelhouseResult(
        dest, lock_sha, len(wheels), sum(w.stat().st_size for w in wheels), True, time.monotonic() - start
    )


def _manylinux_tags(glibc: tuple[int, int], arch: str) -> list[str]:
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{arch}" for m, name in legacy.items() if m <= minor and major == 2]
    return tags


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

    def describe(self) -> list[str]:
        lines = [f"{'offline' if self.offline else 'online'} build: {self.reason}", f"base: {self.base_tag}"]
        for img in self.images:
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


def _build_from_files(
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
            raise DockerError(f"building {tag} failed: {_first_line(exc)}", hint="is the engine up?") from None
    return image


def _build_log_tail(log: Iterable[Mapping[str, Any]], lines: int = 20) -> str:
    text = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in log)
    return "\n".join(text.strip().splitlines()[-lines:])


def build_harness_image(
    client: docker.DockerClient,
    *,
    base_tag: str,
    wheelhouse: Path,
    kit_version: str,
    repo_root: Path = REPO_ROOT,
    force: bool = False,
    progress: Progress = _quiet,
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


def vendor_crates(rust_dir: Path, dest: Path, *, progress: Progress = _quiet) -> Path:
    """``cargo vendor`` the locked dependencies (skipped when Cargo.lock is unchanged): the offline source."""
    lock_sha = hashlib.sha256((rust_dir / "Cargo.lock").read_bytes()).hexdigest()
    stamp = dest / ".cargo-lock.sha256"
    if stamp.is_file() and stamp.read_text().strip() == lock_sha:
        return dest
    progress(f"vendoring the Rust crates of {rust_dir / 'Cargo.lock'} into {dest}")
    _cargo(["vendor", "--locked", "--versioned-dirs", str(dest)], rust_dir)
    stamp.write_text(lock_sha + "\n")
    return dest


def build_rust_binaries(rust_dir: Path, vendor_dir: Path, *, progress: Progress = _quiet) -> dict[str, Path]:
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
    repo_root: Path, context_dir: Path, *, builder_image: str | None, progress: Progress = _quiet
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
    progress: Progress = _quiet,
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
    progress: Progress = _quiet,
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
    progress: Progress = _quiet,
) -> BuildReport:
    """``invoke build``: plan (offline when no registry answers, and say so), base, wheelhouse, images.

    ``rust=False`` skips the Rust agent image (a Python-only report does not need it).
    """
    pins = load_pins(pins_path)
    plan = plan_build(pins, read_lock(lock_path), registry=registry_reachable(client))
    for line in plan.describe():
        progress(line)
    base = ensure_base_image(client, pins, kit_version=kit_version, progress=progress)
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
        elif planned.name == "ollama":
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
