"""The artifact directory: one folder per reproduction, one sub-folder per run, written once.

Layout (every JSON file carries ``schema_version``)::

    <artifacts_dir>/<artifact_id>/
        sweep.json           what was asked: report, backend, simulated?, time scale, kit version, spec sha256
        spec.toml            the spec as it was read
        plan.json            every planned run (harness.protocol.plan.Run)
        runs/<run_id>/run.json       outcome of one run (RunResult), written when the run finishes
        runs/<run_id>/records.jsonl  the agents' JSON Lines records (harness.records)
        runs/<run_id>/*.log          server and agent logs
        provenance.json, manifest.json (written last), report/

A run folder appears only complete: files are written to a temporary folder and renamed into place, so a crash
never leaves a half-written run that resume would mistake for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.atomic import write_text_atomic
from harness.errors import ArtifactError, SchemaVersionError
from harness.protocol.plan import Plan, Run
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord, dump_record, read_records
from harness.schemas import ARTIFACT_SCHEMA_VERSION, canonical_json

RUNS_DIR = "runs"
LOCK_FILE = ".sweep.lock"
"""The folder's writer lock (harness.run.folder_lock): not an artifact, never hashed or bundled."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = 1


class ModelFacts(_Doc):
    """The model as the server holds it after the pull that precedes a sweep (the simulator's digest is synthetic)."""

    name: str
    digest: str = Field(description="digest from /api/tags, hex as Ollama lists it (synthetic when simulated)")
    size_bytes: int | None = None
    server_version: str = Field(description="/api/version of the server that pulled it")
    simulated: bool
    pull_duration_s: float = Field(ge=0)


class SweepSettings(_Doc):
    """What, beyond spec, backend, time scale, images and model, makes two sweeps the same one."""

    executor: str = Field(description="docker, local or ray: where the runs executed")
    sim_seed: int | None = Field(description="the simulator's seed (None on a real backend)")
    interleave_seed: int | None = None
    runs_per_config: int | None = Field(description="--runs (None: the spec's)")
    config_ids: list[str] | None = Field(description="--configs selection, sorted (None: every config)")
    include_isolated: bool


class SweepExtension(_Doc):
    """One explicit growth of a sweep (``--extend``): when, by which command, from which settings to which."""

    at: str
    command: list[str]
    planned_runs_before: int = Field(ge=0)
    planned_runs_after: int = Field(ge=0)
    settings_before: SweepSettings | None
    settings_after: SweepSettings


class Sweep(_Doc):
    """What the user asked for, written before the first run."""

    artifact_id: str
    report: str
    backend: Literal["ollama", "sim", "llamacpp"]
    simulated: bool
    time_scale: float
    kit_version: str
    spec_sha256: str
    command: list[str]
    started_at: str
    planned_runs: int
    images: dict[str, str] = Field(
        default_factory=dict, description="role (harness, rust-agent, ollama) → image ID the runs used"
    )
    model: ModelFacts | None = Field(default=None, description="the model pulled before the first run")
    settings: SweepSettings | None = Field(
        default=None, description="the rest of what defines the sweep (None: written by a kit that did not record it)"
    )
    extensions: list[SweepExtension] = Field(default_factory=list, description="every `--extend`, in order")


class ContainerStats(_Doc):
    """What the engine measured of one agent container (start-up and memory, which the originals estimated)."""

    name: str
    memory_peak_bytes: int | None = None
    exit_code: int | None = None


class RunNode(_Doc):
    """The cluster node that made a run (``--executor ray``): its Ray node id and environment fingerprint."""

    node_id: str
    hostname: str
    fingerprint_sha256: str = Field(description="sha256 over the node's GPU, engine, image and host facts")


class LostAttempt(_Doc):
    """An attempt that never finished because its node died or left: retried elsewhere, never counted as failed."""

    node_id: str
    reason: str
    at: str


class Attempt(_Doc):
    """One try of a run: its window, outcome and, when it failed, the cause and the failing containers' last lines."""

    number: int = Field(ge=1)
    started_at: str
    ended_at: str
    outcome: Literal["ok", "failed"]
    cause: str | None = None
    log_tail: dict[str, list[str]] = Field(
        default_factory=dict, description="container (agent, ollama, ollama2) → its last log lines, on failure"
    )


class RunResult(_Doc):
    """One run's outcome; ``status`` failed runs keep their cause and whatever records they produced.

    ``error`` is the last attempt's cause; ``attempt_history`` keeps every attempt's, so a run that succeeded on
    its second try still says why the first one failed (empty in folders written before it was recorded).
    """

    run: Run
    status: Literal["ok", "failed"]
    attempts: int = Field(ge=1)
    error: str | None = None
    started_at: str
    ended_at: str
    duration_s: float = Field(ge=0)
    containers: list[ContainerStats] = Field(default_factory=list)
    node: RunNode | None = Field(default=None, description="where it ran (cluster executors only)")
    lost_attempts: list[LostAttempt] = Field(default_factory=list, description="attempts lost with their node")
    attempt_history: list[Attempt] = Field(default_factory=list)


class ArtifactDir:
    """Reads and writes one artifact folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def write_json(self, name: str, doc: BaseModel | Mapping[str, Any]) -> Path:
        body = doc.model_dump(mode="json") if isinstance(doc, BaseModel) else dict(doc)
        path = self.root / name
        _atomic_write(path, canonical_json(body) + "\n")
        return path

    def write_plan(self, plan: Plan) -> Path:
        return self.write_json("plan.json", {"schema_version": ARTIFACT_SCHEMA_VERSION, **plan.model_dump(mode="json")})

    def completed_run_ids(self) -> set[str]:
        """Runs whose folder holds an ok run.json: resume skips exactly these."""
        done = set()
        if self.runs_dir.is_dir():
            for path in self.runs_dir.glob("*/run.json"):
                try:
                    if load_run_result(path).status == "ok":
                        done.add(path.parent.name)
                except ArtifactError:
                    continue
        return done

    def save_run(
        self,
        result: RunResult,
        records: list[CallRecord | AgentRunRecord | MultiRunRecord],
        extra_files: Mapping[str, bytes] | None = None,
    ) -> Path:
        """Write a run's folder in one rename; an earlier failed attempt's folder is replaced."""
        final = self.run_dir(result.run.run_id)
        if final.exists() and (final / "run.json").exists() and load_run_result(final / "run.json").status == "ok":
            raise ArtifactError(f"run {result.run.run_id} is already complete in {final}; artifacts are write-once")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{result.run.run_id}.", dir=self.runs_dir))
        try:
            (staging / "records.jsonl").write_text("".join(dump_record(r) + "\n" for r in records), encoding="utf-8")
            for name, data in (extra_files or {}).items():
                (staging / name).write_bytes(data)
            (staging / "run.json").write_text(canonical_json(result.model_dump(mode="json")) + "\n", encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ArtifactError(f"cannot write run {result.run.run_id} under {self.runs_dir}: {exc.strerror}") from None
        return final

    def load_runs(self) -> list[tuple[RunResult, list[CallRecord | AgentRunRecord | MultiRunRecord]]]:
        out = []
        for path in sorted(self.runs_dir.glob("*/run.json")):
            records_path = path.parent / "records.jsonl"
            records = read_records(records_path) if records_path.exists() else []
            out.append((load_run_result(path), records))
        return out


def load_json_doc(path: Path) -> dict[str, Any]:
    """A JSON artifact, refusing unknown schema versions with a message that says what to do."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"missing artifact file {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from None
    if not isinstance(body, dict) or body.get("schema_version") != ARTIFACT_SCHEMA_VERSION:
        found = body.get("schema_version") if isinstance(body, dict) else None
        raise SchemaVersionError(
            f"{path}: schema_version {found!r} is not supported (this kit reads {ARTIFACT_SCHEMA_VERSION})",
            hint="open it with the kit version that wrote it (see sweep.json kit_version)",
        )
    return body


def load_run_result(path: Path) -> RunResult:
    body = load_json_doc(path)
    try:
        return RunResult.model_validate(body)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: {exc.errors()[0]['msg']}") from None


def load_sweep(root: Path) -> Sweep:
    body = load_json_doc(root / "sweep.json")
    try:
        return Sweep.model_validate(body)
    except ValidationError as exc:
        raise ArtifactError(f"{root / 'sweep.json'}: {exc.errors()[0]['msg']}") from None


def load_plan(root: Path) -> Plan:
    """plan.json of an artifact folder (its ``schema_version`` checked like every artifact's)."""
    body = load_json_doc(root / "plan.json")
    body.pop("schema_version", None)
    try:
        return Plan.model_validate(body)
    except ValidationError as exc:
        raise ArtifactError(f"{root / 'plan.json'}: {exc.errors()[0]['msg']}") from None


def _atomic_write(path: Path, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ArtifactError(
            f"cannot write {path}: {exc.strerror or exc}", hint="free space or fix the folder's permissions"
        ) from None
