"""Image pins and the lock: ``docker/pins.toml`` names every external reference; :func:`resolve_pins` asks a
registry for digests and is the only writer of ``docker/images.lock.json``. A digest is never typed or guessed:
an unanswered lookup is recorded as ``null`` with its reason.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from harness.containers.engine import first_line as _first_line
from harness.errors import BadInputError

REPO_ROOT = Path(__file__).resolve().parents[2]
PINS_PATH = REPO_ROOT / "docker" / "pins.toml"
LOCK_PATH = REPO_ROOT / "docker" / "images.lock.json"
LOCK_SCHEMA_VERSION = 1
NO_REGISTRY_REASON = "no registry answered"

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
