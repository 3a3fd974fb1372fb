"""The offline Debian base image and the Python wheelhouse every kit image is built from.

Every image the kit builds itself starts from a base bootstrapped with debootstrap from the Debian mirror in the
pins and ``docker import``-ed (:func:`ensure_base_image`), so CI (no registry) and NVIDIA hosts run the same
userland and no build needs a registry. Python dependencies come from a wheelhouse downloaded on the host against
``requirements.lock`` with hashes (:func:`build_wheelhouse`); the image installs them with
``--no-index --require-hashes``. Subprocess and Docker SDK failures are translated here.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from harness.containers.engine import LABEL_IMAGE_ROLE, LABEL_KIT, LABEL_KIT_VERSION
from harness.containers.engine import build_from_files as _build_from_files
from harness.containers.engine import first_line as _first_line
from harness.containers.engine import image_or_none as _image_or_none
from harness.containers.pins import Pins
from harness.errors import DockerError
from harness.progress import Progress, quiet

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


def _ensure_debootstrap(progress: Progress, *, install: bool) -> str:
    """debootstrap, once, for the offline base image. Installing it changes the host: only when asked."""
    found = shutil.which("debootstrap")
    if found:
        return found
    if not install:
        raise DockerError(
            "the offline base image is bootstrapped with debootstrap, which is not installed",
            hint="install it (apt-get install debootstrap) and re-run, "
            "or let the kit do it: `./kit build --install-debootstrap`",
        )
    progress("debootstrap missing: installing it with apt-get (asked with --install-debootstrap)")
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
    install_debootstrap: bool = False,
    progress: Progress = quiet,
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
    debootstrap = _ensure_debootstrap(progress, install=install_debootstrap)
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
    progress: Progress = quiet,
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
