"""The reviewer's bundle: one tar with the exact images, the locks, the compose files, the inputs and the manifest.

Layout (member names, in this order)::

    bundle.json              the hash list: every other member with sha256 and size, the images by ID with tags
    artifact/manifest.json   the artifact's manifest, sweep.json, plan.json, spec.toml and provenance.json (if any)
    kit/docker/pins.toml, kit/docker/images.lock.json, kit/requirements.lock, kit/requirements-dev.lock,
    kit/harness/rust/Cargo.lock, kit/compose/*.yml, kit/experiments/corpus/**, kit/experiments/prompts/**
    images/images.tar        ``docker save`` of the image IDs sweep.json records (absent when it records none)

Compression follows the file name: ``.tar`` is plain, ``.tar.gz``/``.tgz`` is gzip level 1. Measured on the
harness image (610 MB saved): level 1 gives 216 MB in 8 s, level 6 192 MB in 38 s; reading it back costs 3 s
instead of 0.5 s. The saved images are spooled once to a temporary file beside the output (a tar header holds the
member's size, so it must be known before its data) and are never held in memory.

Reading verifies every member against bundle.json, and bundle.json against the bundled manifest and sweep,
before anything is extracted or loaded: a tampered bundle is refused with no side effect. bundle.json is not
signed; the sha256 of the whole file that ``bundle`` prints is what a reviewer compares with the sender's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness import __version__
from harness.artifacts import ARTIFACT_SCHEMA_VERSION, Sweep, load_sweep
from harness.containers import images, pins
from harness.digests import sha256_file
from harness.errors import ArtifactError, BadInputError, DockerError
from harness.evidence.manifest import (
    MANIFEST_NAME,
    PROVENANCE_NAME,
    Statement,
    check_files,
    load_manifest,
    parse_manifest,
)
from harness.progress import Progress, quiet
from harness.protocol.plan import Plan

BUNDLE_SCHEMA_VERSION = 1
INDEX_NAME = "bundle.json"
IMAGES_MEMBER = "images/images.tar"
ARTIFACT_DIR = "artifact"
KIT_DIR = "kit"
ARTIFACT_FILES = (MANIFEST_NAME, "sweep.json", "plan.json", "spec.toml", PROVENANCE_NAME)
OPTIONAL_ARTIFACT_FILES = frozenset({PROVENANCE_NAME})
KIT_FILES = (
    "docker/pins.toml",
    "docker/images.lock.json",
    "requirements.lock",
    "requirements-dev.lock",
    "harness/rust/Cargo.lock",
)
KIT_TREES = ("compose", "experiments/corpus", "experiments/prompts")
GZIP_SUFFIXES = (".tar.gz", ".tgz")
GZIP_LEVEL = 1
_INDEX_MAX_BYTES = 16 << 20
_CHUNK = 1 << 20
TAMPERED_HINT = (
    "the bundle was changed or damaged after it was made: get a fresh copy and compare its sha256 with the one "
    "`harness bundle` printed"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Member(_Model):
    """One file of the bundle."""

    name: str
    sha256: str
    size_bytes: int = Field(ge=0)


class BundledImage(_Model):
    """An image in images/images.tar: the ID the runs used and the tags that named it when it was bundled."""

    role: str
    image_id: str
    tags: list[str]


class BundleIndex(_Model):
    """bundle.json: what the bundle holds and the hash of every member."""

    schema_version: Literal[1] = 1
    kit_version: str
    created_at: str
    artifact_id: str
    report: str
    backend: Literal["ollama", "sim", "llamacpp"]
    simulated: bool
    time_scale: float
    images: list[BundledImage]
    members: list[Member]


# ------------------------------------------------------------------------------------------------- create


@dataclass(frozen=True)
class BundleResult:
    path: Path
    sha256: str
    size_bytes: int
    index: BundleIndex


def default_bundle_path(artifact_root: Path) -> Path:
    """``<folder>.bundle.tar.gz`` beside the artifact folder."""
    return artifact_root.parent / f"{artifact_root.name}.bundle.tar.gz"


def _compressed(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(GZIP_SUFFIXES):
        return True
    if name.endswith(".tar"):
        return False
    raise BadInputError(f"{path}: a bundle is a .tar (plain) or .tar.gz/.tgz (gzip) file", hint="rename --out")


def _sources(artifact_root: Path, repo_root: Path) -> list[tuple[str, Path]]:
    """(member name, file) of everything but the images, in bundle order."""
    out = []
    for name in ARTIFACT_FILES:
        path = artifact_root / name
        if path.is_file():
            out.append((f"{ARTIFACT_DIR}/{name}", path))
        elif name not in OPTIONAL_ARTIFACT_FILES:
            raise BadInputError(f"{artifact_root} has no {name}", hint="bundle an artifact folder of `reproduce`")
    missing = [rel for rel in KIT_FILES if not (repo_root / rel).is_file()]
    if missing:
        raise ArtifactError(
            f"the kit checkout {repo_root} lacks {', '.join(missing)}", hint="bundle from a full checkout"
        )
    out += [(f"{KIT_DIR}/{rel}", repo_root / rel) for rel in KIT_FILES]
    for tree in KIT_TREES:
        for path in sorted((repo_root / tree).rglob("*")):
            rel = path.relative_to(repo_root)
            if path.is_file() and not path.is_symlink() and "__pycache__" not in rel.parts:
                out.append((f"{KIT_DIR}/{rel.as_posix()}", path))
    return out


def create_bundle(
    artifact_root: Path,
    out: Path,
    *,
    connect: Callable[[], Any],
    repo_root: Path = pins.REPO_ROOT,
    progress: Progress = quiet,
) -> BundleResult:
    """Write the bundle of a verified artifact folder; ``connect`` gives a Docker client, asked only for images.

    Refused (bad input, nothing written) when the folder has no manifest, does not verify against it, or ``out``
    exists. The bundle is written beside ``out`` under a temporary name and renamed when complete.
    """
    statement = load_manifest(artifact_root)
    check = check_files(artifact_root, statement)
    if not check.ok:
        raise BadInputError(
            f"{artifact_root} does not verify against its manifest: {len(check.changed)} changed, "
            f"{len(check.missing)} missing, {len(check.extra)} extra file(s)",
            hint=f"see `harness verify {artifact_root}`; only a folder that verifies can be bundled",
        )
    if out.exists():
        raise BadInputError(f"{out} exists", hint="pass another --out or remove it")
    if not out.parent.is_dir():
        raise BadInputError(f"no folder {out.parent} to write the bundle in", hint="create it or pass another --out")
    compressed = _compressed(out)
    sweep = load_sweep(artifact_root)
    sources = _sources(artifact_root, repo_root)
    members = [Member(name=name, sha256=sha256_file(path), size_bytes=path.stat().st_size) for name, path in sources]
    bundled: list[BundledImage] = []
    client = connect() if sweep.images else None
    with tempfile.TemporaryDirectory(prefix=".cfk-bundle-", dir=out.parent) as tmp:
        spool = Path(tmp) / "images.tar"
        if client is not None:
            for role, image_id in sorted(sweep.images.items()):
                local = images.local_image(client, image_id)
                bundled.append(BundledImage(role=role, image_id=image_id, tags=sorted(local.tags) if local else []))
            ids = sorted({b.image_id for b in bundled})
            progress(f"saving {len(ids)} image(s) by ID: {', '.join(i[:19] for i in ids)}")
            digest = hashlib.sha256()
            with spool.open("wb") as fh:

                def write(chunk: bytes) -> None:
                    digest.update(chunk)
                    fh.write(chunk)

                size = images.save_images(client, ids, write)
            members.append(Member(name=IMAGES_MEMBER, sha256=digest.hexdigest(), size_bytes=size))
            sources.append((IMAGES_MEMBER, spool))
        index = BundleIndex(
            kit_version=__version__,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            artifact_id=sweep.artifact_id,
            report=sweep.report,
            backend=sweep.backend,
            simulated=sweep.simulated,
            time_scale=sweep.time_scale,
            images=bundled,
            members=members,
        )
        progress(f"writing {out} ({'gzip level 1' if compressed else 'plain tar'}, {len(members)} members)")
        partial = Path(tmp) / "bundle.partial"
        _write_tar(partial, index, sources, compressed=compressed)
        os.replace(partial, out)
    return BundleResult(out, sha256_file(out), out.stat().st_size, index)


def _write_tar(path: Path, index: BundleIndex, sources: list[tuple[str, Path]], *, compressed: bool) -> None:
    mtime = int(dt.datetime.fromisoformat(index.created_at).timestamp())
    options: dict[str, Any] = {"compresslevel": GZIP_LEVEL} if compressed else {}
    with tarfile.open(path, mode="w:gz" if compressed else "w", format=tarfile.PAX_FORMAT, **options) as tar:
        body = (json.dumps(index.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()
        tar.addfile(_info(INDEX_NAME, len(body), mtime), _BytesReader(body))
        expected = {m.name: m.size_bytes for m in index.members}
        for name, source in sources:
            with source.open("rb") as fh:
                tar.addfile(_info(name, expected[name], mtime), fh)


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, mtime
    return info


class _BytesReader:
    """The smallest file-like object tarfile copies from."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk, self._pos = self._data[self._pos : end], min(end, len(self._data))
        return chunk


# --------------------------------------------------------------------------------------------------- read


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose every member matched bundle.json, and bundle.json the bundled manifest and sweep."""

    path: Path
    sha256: str
    index: BundleIndex
    sweep: Sweep
    statement: Statement
    plan: Plan

    @property
    def image_ids(self) -> dict[str, str]:
        return {i.role: i.image_id for i in self.index.images}


def _tampered(path: Path, why: str) -> BadInputError:
    return BadInputError(f"refusing bundle {path}: {why}", hint=TAMPERED_HINT)


def _safe_name(name: str) -> bool:
    pure = PurePosixPath(name)
    return (
        bool(name)
        and not pure.is_absolute()
        and "\\" not in name
        and all(part not in ("", ".", "..") for part in name.split("/"))
        and (name == IMAGES_MEMBER or pure.parts[0] in (ARTIFACT_DIR, KIT_DIR))
    )


def _parse_index(path: Path, data: bytes) -> BundleIndex:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _tampered(path, f"{INDEX_NAME} is not JSON ({exc})") from None
    if not isinstance(body, dict) or body.get("schema_version") != BUNDLE_SCHEMA_VERSION:
        found = body.get("schema_version") if isinstance(body, dict) else None
        raise BadInputError(
            f"{path}: {INDEX_NAME} schema_version {found!r} is not supported (this kit reads {BUNDLE_SCHEMA_VERSION})",
            hint="open it with the kit version that made it (bundle.json kit_version)",
        )
    try:
        index = BundleIndex.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _tampered(path, f"{INDEX_NAME} field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    names = [m.name for m in index.members]
    bad = [n for n in names if not _safe_name(n)]
    if bad or len(set(names)) != len(names):
        raise _tampered(path, f"{INDEX_NAME} lists unsafe or repeated member names {bad[:3]}")
    return index


def _digest(fh: IO[bytes], keep: bool) -> tuple[str, bytes]:
    digest, kept = hashlib.sha256(), bytearray()
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
        if keep:
            kept += chunk
    return digest.hexdigest(), bytes(kept)


def verify_bundle(path: Path) -> VerifiedBundle:
    """Read the whole bundle once and check every member against bundle.json; touches nothing else.

    Refused (bad input) when a member is changed, missing, extra, repeated or not a plain file, when the archive
    is damaged, or when bundle.json disagrees with the bundled manifest and sweep.
    """
    if not path.is_file():
        raise BadInputError(f"no bundle at {path}", hint="pass the file `harness bundle` wrote")
    docs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            first = tar.next()
            if first is None or first.name != INDEX_NAME or not first.isfile() or first.size > _INDEX_MAX_BYTES:
                raise _tampered(path, f"its first member is not {INDEX_NAME}")
            index = _parse_index(path, _read_member(tar, first))
            expected = {m.name: m for m in index.members}
            seen: set[str] = set()
            while (member := tar.next()) is not None:
                name = member.name
                if name in seen or name == INDEX_NAME:
                    raise _tampered(path, f"{name} appears twice")
                if name not in expected:
                    raise _tampered(path, f"{name} is not listed in {INDEX_NAME}")
                if not member.isfile():
                    raise _tampered(path, f"{name} is not a regular file")
                seen.add(name)
                fh = tar.extractfile(member)
                if fh is None:
                    raise _tampered(path, f"{name} cannot be read")
                sha, data = _digest(fh, keep=name.startswith(f"{ARTIFACT_DIR}/"))
                if sha != expected[name].sha256 or member.size != expected[name].size_bytes:
                    raise _tampered(path, f"{name} does not match its sha256 in {INDEX_NAME}")
                if data:
                    docs[name.removeprefix(f"{ARTIFACT_DIR}/")] = data
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _tampered(path, f"it is not a readable tar archive ({exc})") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise _tampered(path, f"member(s) {', '.join(missing[:5])} listed in {INDEX_NAME} are missing")
    sweep, statement, plan = _consistent(path, index, docs)
    return VerifiedBundle(path, sha256_file(path), index, sweep, statement, plan)


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    return fh.read() if fh is not None else b""


def _artifact_doc(path: Path, docs: dict[str, bytes], name: str) -> dict[str, Any]:
    try:
        body = json.loads(docs[name])
    except KeyError:
        raise _tampered(path, f"it holds no {ARTIFACT_DIR}/{name}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _tampered(path, f"{ARTIFACT_DIR}/{name} is not JSON ({exc})") from None
    if not isinstance(body, dict) or body.get("schema_version") != ARTIFACT_SCHEMA_VERSION:
        raise BadInputError(
            f"{path}: {ARTIFACT_DIR}/{name} has a schema_version this kit does not read",
            hint="re-run it with the kit version that made it (bundle.json kit_version)",
        )
    return body


def _consistent(path: Path, index: BundleIndex, docs: dict[str, bytes]) -> tuple[Sweep, Statement, Plan]:
    """bundle.json, the manifest and the sweep must tell the same story."""
    if MANIFEST_NAME not in docs:
        raise _tampered(path, f"it holds no {ARTIFACT_DIR}/{MANIFEST_NAME}")
    statement = parse_manifest(docs[MANIFEST_NAME], where=f"{path}:{ARTIFACT_DIR}/{MANIFEST_NAME}")
    try:
        sweep = Sweep.model_validate(_artifact_doc(path, docs, "sweep.json"))
        body = _artifact_doc(path, docs, "plan.json")
        plan = Plan.model_validate({k: v for k, v in body.items() if k != "schema_version"})
    except ValidationError as exc:
        raise _tampered(path, f"a bundled artifact document is malformed ({exc.errors()[0]['msg']})") from None
    if "spec.toml" not in docs:
        raise _tampered(path, f"it holds no {ARTIFACT_DIR}/spec.toml")
    listed = statement.digests()
    for name, data in docs.items():
        if name != MANIFEST_NAME and listed.get(name) != hashlib.sha256(data).hexdigest():
            raise _tampered(path, f"{ARTIFACT_DIR}/{name} is not the file its manifest vouches for")
    recorded = {i.role: i.image_id for i in index.images}
    if recorded != sweep.images:
        raise _tampered(path, f"{INDEX_NAME} lists other images than sweep.json records")
    has_images = any(m.name == IMAGES_MEMBER for m in index.members)
    if has_images != bool(recorded):
        raise _tampered(path, f"{IMAGES_MEMBER} and the image list of {INDEX_NAME} disagree")
    same = (index.artifact_id, index.report, index.backend, index.time_scale) == (
        sweep.artifact_id,
        sweep.report,
        sweep.backend,
        sweep.time_scale,
    )
    if not same or plan.report != sweep.report:
        raise _tampered(path, f"{INDEX_NAME}, sweep.json and plan.json describe different sweeps")
    return sweep, statement, plan


# ------------------------------------------------------------------------------------------------- unpack


@dataclass(frozen=True)
class Unpacked:
    """A verified bundle's files on disk (the images, if loaded, are on the engine)."""

    root: Path
    loaded_image_ids: tuple[str, ...] | None

    @property
    def artifact_dir(self) -> Path:
        return self.root / ARTIFACT_DIR

    @property
    def spec_path(self) -> Path:
        return self.artifact_dir / "spec.toml"

    @property
    def compose_dir(self) -> Path:
        return self.root / KIT_DIR / "compose"

    @property
    def experiments_dir(self) -> Path:
        return self.root / KIT_DIR / "experiments"


def unpack(
    bundle: VerifiedBundle, dest: Path, *, load: Callable[[Iterable[bytes]], list[str]] | None = None
) -> Unpacked:
    """Extract every member but the images into ``dest``; stream the images into ``load`` when given.

    Every member is hashed again on the way: a file changed since :func:`verify_bundle` stops the extraction.
    """
    expected = {m.name: m.sha256 for m in bundle.index.members}
    loaded: list[str] | None = None
    try:
        with tarfile.open(bundle.path, mode="r|*") as tar:
            for member in tar:
                if member.name == INDEX_NAME:
                    continue
                if member.name not in expected or not member.isfile():
                    raise _tampered(bundle.path, f"{member.name} appeared after verification")
                fh = tar.extractfile(member)
                if fh is None:
                    raise _tampered(bundle.path, f"{member.name} cannot be read")
                if member.name == IMAGES_MEMBER:
                    if load is None:
                        continue
                    digest = hashlib.sha256()
                    chunks = _hashed_chunks(fh, digest)
                    loaded = load(chunks)
                    for _ in chunks:  # whatever the engine left unread still counts for the hash
                        pass
                    sha = digest.hexdigest()
                else:
                    target = dest / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    digest = hashlib.sha256()
                    with target.open("wb") as out:
                        for chunk in _hashed_chunks(fh, digest):
                            out.write(chunk)
                    sha = digest.hexdigest()
                if sha != expected[member.name]:
                    raise _tampered(bundle.path, f"{member.name} changed since it was verified")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _tampered(bundle.path, f"it could not be read back ({exc})") from None
    return Unpacked(dest, tuple(loaded) if loaded is not None else None)


def _hashed_chunks(fh: IO[bytes], digest: Any) -> Iterator[bytes]:
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
        yield chunk


# ------------------------------------------------------------------------------------------------- images


def missing_images(client: Any, bundle: VerifiedBundle) -> list[str]:
    """The bundle's image IDs this engine does not have (an ID is a content hash: present means identical)."""
    return [i.image_id for i in bundle.index.images if images.local_image(client, i.image_id) is None]


def restore_images(client: Any, bundle: VerifiedBundle, loaded: Iterable[str] | None) -> list[str]:
    """Check the loaded IDs are exactly the recorded ones and give back the tags that named them; notes to show.

    A tag that names another image on this engine is left alone: the re-run uses the images by ID.
    """
    recorded = {i.image_id for i in bundle.index.images}
    if loaded is not None and set(loaded) != recorded:
        raise DockerError(
            f"docker load gave {sorted(set(loaded))}, the bundle records {sorted(recorded)}",
            hint="the engine rewrote the images (another image store?): they are not the bundled bytes",
        )
    notes = []
    for image in bundle.index.images:
        if images.local_image(client, image.image_id) is None:
            raise DockerError(f"image {image.image_id} ({image.role}) is not on the engine after loading the bundle")
        for tag in image.tags:
            current = images.local_image(client, tag)
            if current is None:
                images.tag_image(client, image.image_id, tag)
                notes.append(f"tagged {image.image_id[:19]} as {tag}")
            elif current.image_id != image.image_id:
                notes.append(f"{tag} names another image here ({current.image_id[:19]}); left as it is")
    return notes
