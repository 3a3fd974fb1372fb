"""The run manifest: an in-toto Statement v1 over every file of an artifact folder, written last by ``reproduce``.

An in-toto Statement is a plain, widely read envelope: ``subject`` names the files it vouches for (each with its
sha256), ``predicateType`` says which schema the ``predicate`` follows. The kit's predicate is versioned in its
URI and carries ``schema_version`` like every other artifact::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "plan.json", "digest": {"sha256": "…"}}, …],   every file but manifest.json, by name
     "predicateType": "https://chimeraforge.dev/kit/run-manifest/v1",
     "predicate": {"schema_version": 1, "kit_version", "artifact_id", "report", "backend", "simulated",
                   "command", "settings", "provenance", "fingerprint", "timings", "origin"}}

``provenance`` is the content of ``provenance.json`` when the folder has one, else ``{"present": false,
"reason": …}``. ``fingerprint`` is the environment fingerprint: provenance's own when present, else a sha256
over what ``sweep.json`` records of the environment (kit version, backend, image IDs, spec and model digests),
with ``source`` saying which. Files are hashed in chunks, never read whole: records and logs can be large.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness import __version__
from harness.artifacts import LOCK_FILE, ArtifactDir, canonical_json, load_run_result, load_sweep
from harness.digests import sha256_file
from harness.errors import ArtifactError, BadInputError, SchemaVersionError
from harness.schemas import PROVENANCE_SCHEMA_VERSION
from harness.settings import Settings

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://chimeraforge.dev/kit/run-manifest/v1"
PREDICATE_PREFIX = "https://chimeraforge.dev/kit/run-manifest/"
MANIFEST_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
PROVENANCE_NAME = "provenance.json"
SWEEP_FINGERPRINT_KEYS = ("kit_version", "backend", "simulated", "images", "spec_sha256", "model_digest")
"""What the fallback fingerprint covers when there is no provenance.json: the sweep's record of its environment."""
_CHUNK = 1 << 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subject(_Model):
    """One file: its path relative to the folder (POSIX) and its digest."""

    name: str
    digest: dict[str, str]


class Fingerprint(_Model):
    """The environment fingerprint and where it came from."""

    sha256: str
    source: Literal["provenance.json", "sweep.json"]
    keys: list[str] = Field(description="dotted paths the fingerprint covers")


class RunDurations(_Model):
    """Summary of the runs' wall times (``run.json`` ``duration_s``); the per-run values stay in the runs."""

    count: int
    ok: int
    failed: int
    total_s: float
    min_s: float | None
    median_s: float | None
    max_s: float | None


class Timings(_Model):
    sweep_started_at: str
    sweep_ended_at: str | None = Field(description="when the last run ended; None before any run")
    manifest_written_at: str
    runs: RunDurations


class Predicate(_Model):
    """The kit's run-manifest predicate (``predicateType`` :data:`PREDICATE_TYPE`)."""

    schema_version: Literal[1]
    kit_version: str
    artifact_id: str
    report: str
    backend: str
    simulated: bool
    command: list[str] = Field(description="the invocation that completed the folder and wrote this manifest")
    settings: dict[str, Any] = Field(description="harness.settings.Settings in force")
    provenance: dict[str, Any] = Field(description='provenance.json, or {"present": false, "reason": ...}')
    fingerprint: Fingerprint
    timings: Timings
    origin: dict[str, Any] | None = Field(default=None, description="where the inputs came from (a bundle)")


class Statement(_Model):
    """An in-toto Statement v1 whose predicate is the kit's."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["https://in-toto.io/Statement/v1"] = Field(default="https://in-toto.io/Statement/v1", alias="_type")
    subject: list[Subject]
    predicateType: str = PREDICATE_TYPE  # in-toto's own field name
    predicate: Predicate

    def digests(self) -> dict[str, str]:
        """Subject name → sha256."""
        return {s.name: s.digest.get("sha256", "") for s in self.subject}


# ---------------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class Entry:
    """A path under the folder; ``regular`` is False for links and special files (never vouched for)."""

    name: str
    path: Path
    regular: bool


def walk(root: Path) -> Iterator[Entry]:
    """Every entry under ``root`` except the manifest itself, without following links, sorted by name."""
    entries: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in [d for d in dirnames if (here / d).is_symlink()] + filenames:
            path = here / name
            rel = path.relative_to(root).as_posix()
            if rel in (MANIFEST_NAME, f".{MANIFEST_NAME}.tmp", LOCK_FILE):
                continue
            entries.append(Entry(rel, path, path.is_file() and not path.is_symlink()))
    yield from sorted(entries, key=lambda e: e.name)


def subjects(root: Path) -> list[Subject]:
    """One subject per regular file; a link or special file is refused (it cannot be vouched for by content)."""
    out = []
    for entry in walk(root):
        if not entry.regular:
            raise ArtifactError(
                f"{entry.path} is not a regular file", hint="artifact folders hold plain files only: remove it"
            )
        out.append(Subject(name=entry.name, digest={"sha256": sha256_file(entry.path)}))
    return out


@dataclass(frozen=True)
class FileCheck:
    """The folder against its manifest."""

    verified: tuple[str, ...]
    changed: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)


def check_files(root: Path, statement: Statement) -> FileCheck:
    """Re-hash every file: changed (digest differs), missing (listed, gone), extra (present, not listed)."""
    expected = statement.digests()
    seen: set[str] = set()
    verified, changed, extra = [], [], []
    for entry in walk(root):
        seen.add(entry.name)
        if entry.name not in expected:
            extra.append(entry.name)
        elif not entry.regular:
            changed.append(entry.name)  # a vouched-for file replaced by a link or a special file
        elif sha256_file(entry.path) == expected[entry.name]:
            verified.append(entry.name)
        else:
            changed.append(entry.name)
    missing = sorted(set(expected) - seen)
    return FileCheck(tuple(verified), tuple(changed), tuple(missing), tuple(extra))


# ---------------------------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class Environment:
    """What a folder says about the environment it was made in."""

    provenance: dict[str, Any] | None
    absent_reason: str | None
    fingerprint: Fingerprint

    def provenance_or_absent(self) -> dict[str, Any]:
        return self.provenance if self.provenance is not None else {"present": False, "reason": self.absent_reason}


def read_environment(root: Path) -> Environment:
    """provenance.json and its fingerprint, or (absent or unreadable) the sweep's record of the environment."""
    path = root / PROVENANCE_NAME
    if not path.exists():
        reason = f"no {PROVENANCE_NAME} in the artifact folder (it was not captured for this sweep)"
        return Environment(None, reason, sweep_fingerprint(root))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Environment(None, f"{PROVENANCE_NAME} is unreadable: {exc}", sweep_fingerprint(root))
    fingerprint, reason = _provenance_fingerprint(doc)
    if fingerprint is None:
        return Environment(None, reason, sweep_fingerprint(root))
    return Environment(doc, None, fingerprint)


def _provenance_fingerprint(doc: Any) -> tuple[Fingerprint | None, str]:
    if not isinstance(doc, dict):
        return None, f"{PROVENANCE_NAME} is not a JSON object"
    version = doc.get("schema_version")
    if version != PROVENANCE_SCHEMA_VERSION:
        return None, f"{PROVENANCE_NAME} has schema_version {version!r}, this kit reads {PROVENANCE_SCHEMA_VERSION}"
    sha, keys = doc.get("fingerprint_sha256"), doc.get("fingerprint_keys")
    if not isinstance(sha, str) or not isinstance(keys, list):
        return None, f"{PROVENANCE_NAME} lacks fingerprint_sha256 or fingerprint_keys"
    return Fingerprint(sha256=sha, source="provenance.json", keys=[str(k) for k in keys]), ""


def sweep_fingerprint(root: Path) -> Fingerprint:
    """sha256 of the canonical JSON of what sweep.json records about the environment."""
    sweep = load_sweep(root)
    body = {
        "kit_version": sweep.kit_version,
        "backend": sweep.backend,
        "simulated": sweep.simulated,
        "images": dict(sweep.images),
        "spec_sha256": sweep.spec_sha256,
        "model_digest": sweep.model.digest if sweep.model else None,
    }
    sha = hashlib.sha256(canonical_json(body).encode()).hexdigest()
    return Fingerprint(sha256=sha, source="sweep.json", keys=list(SWEEP_FINGERPRINT_KEYS))


# ------------------------------------------------------------------------------------------------- manifest


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _timings(root: Path, started_at: str) -> Timings:
    results = [load_run_result(p) for p in sorted(ArtifactDir(root).runs_dir.glob("*/run.json"))]
    durations = sorted(r.duration_s for r in results)
    runs = RunDurations(
        count=len(results),
        ok=sum(r.status == "ok" for r in results),
        failed=sum(r.status == "failed" for r in results),
        total_s=round(sum(durations), 3),
        min_s=durations[0] if durations else None,
        median_s=statistics.median(durations) if durations else None,
        max_s=durations[-1] if durations else None,
    )
    ended = max((r.ended_at for r in results), default=None)
    return Timings(sweep_started_at=started_at, sweep_ended_at=ended, manifest_written_at=_now(), runs=runs)


def build_statement(
    root: Path, *, command: list[str], settings: Settings, origin: Mapping[str, Any] | None = None
) -> Statement:
    """The manifest of ``root`` as it is now (every file hashed)."""
    sweep = load_sweep(root)
    env = read_environment(root)
    predicate = Predicate(
        schema_version=MANIFEST_SCHEMA_VERSION,
        kit_version=__version__,
        artifact_id=sweep.artifact_id,
        report=sweep.report,
        backend=sweep.backend,
        simulated=sweep.simulated,
        command=list(command),
        settings=settings.model_dump(mode="json"),
        provenance=env.provenance_or_absent(),
        fingerprint=env.fingerprint,
        timings=_timings(root, sweep.started_at),
        origin=dict(origin) if origin is not None else None,
    )
    return Statement(subject=subjects(root), predicate=predicate)


def write_manifest(
    root: Path, *, command: list[str], settings: Settings, origin: Mapping[str, Any] | None = None
) -> Path:
    """Hash the folder and write ``manifest.json`` (replacing an earlier one): the last file of a reproduction."""
    statement = build_statement(root, command=command, settings=settings, origin=origin)
    return ArtifactDir(root).write_json(MANIFEST_NAME, statement.model_dump(mode="json", by_alias=True))


def load_manifest(root: Path) -> Statement:
    """The folder's manifest; a folder without one is bad input, an unknown predicate version is refused."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BadInputError(
            f"{root} has no {MANIFEST_NAME}",
            hint="it is written at the end of `harness reproduce`; re-run the same reproduce command on this "
            "folder (it resumes, rebuilds the report and writes the manifest)",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    return parse_manifest(data, where=str(path))


def parse_manifest(data: bytes, *, where: str) -> Statement:
    """A manifest from its bytes: an in-toto Statement v1 with the kit's predicate of a version this kit reads."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{where} is not readable JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
        found = body.get("_type") if isinstance(body, dict) else None
        raise ArtifactError(f"{where} is not an in-toto Statement v1 (_type {found!r})")
    predicate_type = str(body.get("predicateType", ""))
    predicate = body.get("predicate")
    version = predicate.get("schema_version") if isinstance(predicate, dict) else None
    if predicate_type != PREDICATE_TYPE or version != MANIFEST_SCHEMA_VERSION:
        if predicate_type.startswith(PREDICATE_PREFIX):
            raise SchemaVersionError(
                f"{where}: predicate {predicate_type} schema_version {version!r} is not supported "
                f"(this kit reads {PREDICATE_TYPE} schema_version {MANIFEST_SCHEMA_VERSION})",
                hint="verify it with the kit version that wrote it",
            )
        raise ArtifactError(f"{where}: predicateType {predicate_type!r} is not the kit's run manifest")
    try:
        return Statement.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ArtifactError(f"{where}: field {loc}: {first['msg']}") from None
