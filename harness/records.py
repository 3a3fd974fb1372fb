"""JSON Lines records written by every agent, Python or Rust, and read back by one loader.

Records hold raw observations only: client monotonic timestamps in ns and Ollama's own timings as the server
reported them. Everything derived (TTFT, rates, efficiencies) is computed later by ``harness.metrics``.
A line whose ``schema_version`` this kit does not know is refused with a message that says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from harness.errors import ArtifactError, SchemaVersionError
from harness.schemas import RECORD_SCHEMA_VERSION

Role = Literal["baseline", "chimera", "collector", "insight", "inference"]
Language = Literal["python", "rust"]
Stage = Literal["analysis", "report", "single"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    run_id: str | None = Field(default=None, description="plan run id; None for a direct `harness agent` call")
    role: Role
    agent_run_index: int = Field(default=1, ge=1, description="1-based repetition inside one agent process")
    language: Language
    runtime: str = Field(description="async runtime that drove the agent: asyncio, tokio, smol, ...")


class CallRecord(_Record):
    """One request to Ollama as the client saw it, plus the server's final timings."""

    kind: Literal["call"] = "call"
    call_index: int = Field(ge=1)
    stage: Stage
    endpoint: str
    base_url: str
    model: str
    options: dict[str, float | int] | None = Field(description="options sent; None when the body had none")
    streaming: bool
    request_sha256: str = Field(description="sha256 of the exact request body bytes (parity with Rust)")
    start_ns: int = Field(description="client monotonic clock just before the request was sent")
    first_chunk_ns: int | None = Field(description="first chunk with a non-empty response; None if none came")
    end_ns: int = Field(description="client monotonic clock when the final chunk or the error arrived")
    start_unix_ns: int = Field(description="wall clock at start_ns, for aligning timelines across hosts")
    chunk_count: int = Field(ge=0, description="chunks with non-empty text")
    chunk_offsets_ns: list[int] = Field(default_factory=list, description="arrival of each such chunk - start_ns")
    response_chars: int = Field(ge=0)
    ok: bool
    error: str | None = None
    http_status: int | None = None
    done_reason: str | None = None
    total_duration_ns: int | None = None
    load_duration_ns: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration_ns: int | None = None
    eval_count: int | None = None
    eval_duration_ns: int | None = None
    server_simulated: bool = Field(default=False, description="the server marked itself as the simulator")
    engine: Literal["ollama", "llamacpp"] = Field(
        default="ollama", description="the server API spoken: Ollama's /api/generate or llama.cpp's /v1/completions"
    )
    max_tokens: int | None = Field(
        default=None, description="explicit token budget the call sent (llama.cpp: a random-weight model never ends)"
    )


class AgentRunRecord(_Record):
    """One pass of an agent's workflow (ingest, analysis call, report call)."""

    kind: Literal["agent_run"] = "agent_run"
    base_url: str
    model: str
    options: dict[str, float | int] | None
    files_ingested: int = Field(ge=0)
    corpus_sha256: str | None
    start_ns: int
    end_ns: int
    ingest_duration_ns: int = Field(ge=0)
    analysis_duration_ns: int | None = None
    report_duration_ns: int | None = None
    calls_ok: int = Field(ge=0)
    calls_failed: int = Field(ge=0)
    process_start_to_first_request_ns: int | None = Field(
        default=None, description="agent process start to its first request: the measured start-up cost"
    )
    peak_rss_bytes: int | None = Field(default=None, description="the agent process's own peak RSS")
    ok: bool
    error: str | None = None


class MultiRunRecord(_Record):
    """The concurrent join of the collector and insight agents (the originals' `concurrent_wall`)."""

    kind: Literal["multi_run"] = "multi_run"
    role: Role = "collector"
    scenario: Literal["baseline_vs_chimera", "chimera_hetero", "chimera_homo"]
    collector_url: str
    insight_url: str
    start_ns: int
    end_ns: int
    ok: bool
    error: str | None = None


Record = Annotated[CallRecord | AgentRunRecord | MultiRunRecord, Field(discriminator="kind")]
_RECORD = TypeAdapter(Record)


def dump_record(record: CallRecord | AgentRunRecord | MultiRunRecord) -> str:
    """One JSON line (no newline) with keys in a stable order."""
    return json.dumps(record.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def parse_record(line: str | dict[str, Any], *, where: str = "record") -> CallRecord | AgentRunRecord | MultiRunRecord:
    """Parse one record, refusing unknown schema versions with a message that says what to do."""
    try:
        data = json.loads(line) if isinstance(line, str) else line
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{where}: expected a JSON object")
    version = data.get("schema_version")
    if version != RECORD_SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where}: record schema_version {version!r} is not supported (this kit reads {RECORD_SCHEMA_VERSION})",
            hint="re-run with the kit version that wrote it, or upgrade the kit",
        )
    try:
        return _RECORD.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ArtifactError(f"{where}: field {loc}: {first['msg']}") from None


def read_records(path: Path) -> list[CallRecord | AgentRunRecord | MultiRunRecord]:
    """Every record of a JSON Lines file; blank lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ArtifactError(f"cannot read records {path}: {exc.strerror}") from None
    return [parse_record(line, where=f"{path}:{n}") for n, line in enumerate(lines, 1) if line.strip()]


def iter_lines(records: Iterable[CallRecord | AgentRunRecord | MultiRunRecord]) -> Iterator[str]:
    for record in records:
        yield dump_record(record) + "\n"
