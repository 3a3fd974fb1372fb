"""The auditor's check of an artifact folder: hashes against the manifest, schema versions, environment drift.

Reads artifacts only (no Docker, no network), so a folder can be audited anywhere. The outcome is data
(:class:`Verification`, :class:`Drift`); :func:`describe_verification` and :func:`describe_drift` turn it into the
plain lines ``harness verify`` prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.artifacts import ARTIFACT_SCHEMA_VERSION
from harness.errors import BadInputError
from harness.evidence.manifest import (
    PROVENANCE_NAME,
    Environment,
    FileCheck,
    Fingerprint,
    Statement,
    check_files,
    load_manifest,
    read_environment,
    walk,
)
from harness.records import RECORD_SCHEMA_VERSION
from harness.schemas import PROVENANCE_SCHEMA_VERSION, REPORT_SCHEMA_VERSION, VERDICTS_SCHEMA_VERSION

RECORDS_NAME = "records.jsonl"
_VALUE_WIDTH = 72
_NOT_JSON = object()
"""Stands for "no JSON object to read a version from" in :class:`SchemaProblem`."""


@dataclass(frozen=True)
class SchemaProblem:
    """A JSON artifact or record line whose ``schema_version`` this kit does not read."""

    where: str
    found: object
    supported: int

    def describe(self) -> str:
        if self.found is _NOT_JSON:
            return f"{self.where}: not a JSON object"
        return f"{self.where}: schema_version {self.found!r} (this kit reads {self.supported})"


def supported_version(name: str) -> int:
    """The schema_version this kit reads for the JSON file ``name`` (relative to the folder)."""
    if name == PROVENANCE_NAME:
        return PROVENANCE_SCHEMA_VERSION
    if name == "report/verdicts.json":
        return VERDICTS_SCHEMA_VERSION
    if name.startswith("report/"):
        return REPORT_SCHEMA_VERSION
    return ARTIFACT_SCHEMA_VERSION


def schema_problems(root: Path) -> list[SchemaProblem]:
    """Every ``*.json`` (but the manifest, checked when loaded) and every line of every ``records.jsonl``."""
    problems: list[SchemaProblem] = []
    for entry in walk(root):
        if not entry.regular:
            continue
        if entry.name.endswith(".json"):
            found = _json_version(entry.path)
            wanted = supported_version(entry.name)
            if found != wanted:
                problems.append(SchemaProblem(entry.name, found, wanted))
        elif entry.path.name == RECORDS_NAME:
            problems += _record_problems(entry.path, entry.name)
    return problems


def _json_version(path: Path) -> object:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return _NOT_JSON
    return body.get("schema_version") if isinstance(body, dict) else _NOT_JSON


def _record_problems(path: Path, name: str) -> Iterator[SchemaProblem]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                body = json.loads(line)
            except json.JSONDecodeError:
                yield SchemaProblem(f"{name}:{number}", _NOT_JSON, RECORD_SCHEMA_VERSION)
                continue
            found = body.get("schema_version") if isinstance(body, dict) else _NOT_JSON
            if found != RECORD_SCHEMA_VERSION:
                yield SchemaProblem(f"{name}:{number}", found, RECORD_SCHEMA_VERSION)


@dataclass(frozen=True)
class Verification:
    """An artifact folder against its manifest."""

    root: Path
    statement: Statement
    files: FileCheck
    schema: list[SchemaProblem]

    @property
    def ok(self) -> bool:
        return self.files.ok and not self.schema


def verify_folder(root: Path) -> Verification:
    """Re-hash every file against manifest.json and check every schema_version (bad input without a manifest)."""
    if not root.is_dir():
        raise BadInputError(f"no artifact folder {root}", hint="pass artifacts/<id>")
    statement = load_manifest(root)
    return Verification(root, statement, check_files(root, statement), schema_problems(root))


def describe_fingerprint(fingerprint: Fingerprint, absent_reason: str | None = None) -> str:
    where = f"from {fingerprint.source}, {len(fingerprint.keys)} keys"
    if fingerprint.source != PROVENANCE_NAME and absent_reason:
        where += f"; provenance absent: {absent_reason}"
    return f"environment fingerprint {fingerprint.sha256} ({where})"


def describe_verification(result: Verification) -> list[str]:
    """Problems first, one per line, then the fingerprint, then the verdict line."""
    lines = [f"changed  {n}" for n in result.files.changed]
    lines += [f"missing  {n}" for n in result.files.missing]
    lines += [f"extra    {n}" for n in result.files.extra]
    lines += [f"schema   {p.describe()}" for p in result.schema]
    predicate = result.statement.predicate
    absent = None if predicate.provenance.get("present", True) else str(predicate.provenance.get("reason", ""))
    lines.append(describe_fingerprint(predicate.fingerprint, absent))
    listed = len(result.statement.subject)
    if result.ok:
        lines.append(f"verified {listed} files")
    else:
        counts = [
            f"{len(result.files.changed)} changed",
            f"{len(result.files.missing)} missing",
            f"{len(result.files.extra)} extra",
            f"{len(result.schema)} unknown schema version(s)",
        ]
        lines.append(f"FAILED: {', '.join(counts)} ({listed} files in the manifest)")
    return lines


# ------------------------------------------------------------------------------------------------- drift


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects and lists as dotted keys (``gpu.clocks.sm_mhz``, ``gpu.processes.0.pid``) → leaf values."""
    if isinstance(node, Mapping):
        items: Iterator[tuple[str, Any]] = ((str(k), v) for k, v in node.items())
    elif isinstance(node, list):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {prefix: node}
    out: dict[str, Any] = {}
    empty = True
    for key, value in items:
        empty = False
        out.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    if empty and prefix:
        out[prefix] = node
    return out


_META_KEYS = ("fingerprint_sha256", "fingerprint_keys")


@dataclass(frozen=True)
class Drift:
    """Two environments compared key by key (provenance.json flattened)."""

    left: Environment
    right: Environment
    changed: list[tuple[str, Any, Any]] = field(default_factory=list)
    only_left: list[tuple[str, Any]] = field(default_factory=list)
    only_right: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def comparable(self) -> bool:
        """Both fingerprints come from the same kind of source (provenance vs provenance, sweep vs sweep)."""
        return self.left.fingerprint.source == self.right.fingerprint.source

    @property
    def fingerprints_match(self) -> bool:
        return self.comparable and self.left.fingerprint.sha256 == self.right.fingerprint.sha256

    def in_fingerprint(self, key: str) -> bool:
        keys = set(self.left.fingerprint.keys) | set(self.right.fingerprint.keys)
        return any(key == k or key.startswith(f"{k}.") for k in keys)


def environment_drift(left_root: Path, right_root: Path) -> Drift:
    """Compare the environments two artifact folders record (provenance.json when both have one)."""
    for root in (left_root, right_root):
        if not (root / "sweep.json").is_file():
            raise BadInputError(f"{root} is not an artifact folder (no sweep.json)", hint="pass artifacts/<id>")
    left, right = read_environment(left_root), read_environment(right_root)
    a = _flat_provenance(left)
    b = _flat_provenance(right)
    changed = [(k, a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    only_left = [(k, a[k]) for k in sorted(set(a) - set(b))]
    only_right = [(k, b[k]) for k in sorted(set(b) - set(a))]
    return Drift(left, right, changed, only_left, only_right)


def _flat_provenance(env: Environment) -> dict[str, Any]:
    if env.provenance is None:
        return {}
    return {k: v for k, v in flatten(env.provenance).items() if k.split(".")[0] not in _META_KEYS}


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


def describe_drift(drift: Drift, left_name: str, right_name: str) -> list[str]:
    """The drift as plain lines; keys covered by a fingerprint are marked ``*``."""
    lines = [f"environment drift: {left_name} vs {right_name}"]
    left, right = drift.left.fingerprint, drift.right.fingerprint
    if not drift.comparable:
        lines.append(
            f"  fingerprints are not comparable: {left.source} here, {right.source} there "
            f"({left.sha256[:16]}… vs {right.sha256[:16]}…)"
        )
    elif drift.fingerprints_match:
        lines.append(f"  fingerprints match ({left.source}: {left.sha256})")
    else:
        lines.append(f"  fingerprints differ ({left.source}): {left.sha256[:16]}… vs {right.sha256[:16]}…")
    for env, name in ((drift.left, left_name), (drift.right, right_name)):
        if env.provenance is None:
            lines.append(f"  {name}: no provenance to compare key by key ({env.absent_reason})")
    if drift.left.provenance is None or drift.right.provenance is None:
        return lines

    def mark(key: str) -> str:
        return "*" if drift.in_fingerprint(key) else " "

    lines.append(
        f"  {len(drift.changed)} key(s) differ, {len(drift.only_left)} only here, {len(drift.only_right)} only there"
    )
    lines += [f"  {mark(k)} {k}: {_show(a)} → {_show(b)}" for k, a, b in drift.changed]
    lines += [f"  {mark(k)} {k}: {_show(a)} (only in {left_name})" for k, a in drift.only_left]
    lines += [f"  {mark(k)} {k}: {_show(b)} (only in {right_name})" for k, b in drift.only_right]
    if drift.changed or drift.only_left or drift.only_right:
        lines.append("  (* = part of the environment fingerprint)")
    return lines
