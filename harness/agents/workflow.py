"""One agent's workload: ingest the corpus, call Ollama for an analysis, then for a report.

This mirrors the "new" two-call agent of TR111_v2/TR114_v2/TR115_v2 (and, with ``one_call``, the older agent
of TR113). Each call becomes a :class:`CallRecord`; the pass becomes an :class:`AgentRunRecord`. A failed call
ends the pass but is still recorded, so nothing is silently dropped.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.engines.llamacpp import LlamaCppClient
from harness.engines.ollama import CallObservation, OllamaClient
from harness.errors import AgentError
from harness.protocol import corpus
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord, Role, Stage

Workflow = Literal["single_call", "one_call", "two_call"]
Engine = Literal["ollama", "llamacpp"]
RecordSink = Callable[[CallRecord | AgentRunRecord | MultiRunRecord], None]


@dataclass(frozen=True)
class Workload:
    """What an agent does, identical for every agent of a run; loaded once per process."""

    model: str
    workflow: Workflow
    streaming: bool
    analysis_template: str
    report_template: str
    single_prompt: str
    corpus_dir: Path | None
    engine: Engine = "ollama"
    max_tokens: int | None = None
    """Explicit per-call token budget; the llama.cpp backend always sets one (docs/engines.md)."""

    @classmethod
    def load(
        cls,
        *,
        model: str,
        workflow: Workflow,
        streaming: bool,
        prompts_dir: Path,
        corpus_dir: Path | None,
        engine: Engine = "ollama",
        max_tokens: int | None = None,
    ) -> Workload:
        try:
            analysis = (prompts_dir / "analysis.txt").read_text(encoding="utf-8")
            report = (prompts_dir / "report.txt").read_text(encoding="utf-8")
            single = (prompts_dir / "tr108" / "prompt1.txt").read_text(encoding="utf-8")
        except OSError as exc:
            raise AgentError(
                f"cannot read prompts in {prompts_dir}: {exc.strerror}",
                hint="pass --prompts experiments/prompts",
            ) from None
        if workflow != "single_call" and (corpus_dir is None or not corpus_dir.is_dir()):
            raise AgentError(f"corpus folder {corpus_dir} not found", hint="pass --corpus experiments/corpus")
        if max_tokens is not None and max_tokens < 1:
            raise AgentError(f"token budget {max_tokens} is not positive", hint="pass --max-tokens 1 or more")
        return cls(model, workflow, streaming, analysis, report, single, corpus_dir, engine, max_tokens)


def make_client(
    engine: Engine, base_url: str, *, read_timeout_s: float, connect_timeout_s: float, call_deadline_s: float | None
) -> OllamaClient:
    """The client of the engine a run talks to (both stream with the same stamped transport and timeouts)."""
    cls = LlamaCppClient if engine == "llamacpp" else OllamaClient
    return cls(
        base_url, read_timeout_s=read_timeout_s, connect_timeout_s=connect_timeout_s, call_deadline_s=call_deadline_s
    )


@dataclass(frozen=True)
class Identity:
    """Who this agent is in the records."""

    role: Role
    language: Literal["python"] = "python"
    runtime: str = "asyncio"
    run_id: str | None = None


def ingest(corpus_dir: Path) -> tuple[list[corpus.CorpusFile], str]:
    """Read every file under the corpus folder; returns the entries (path order) and the corpus hash."""
    files = {
        path.relative_to(corpus_dir).as_posix(): path.read_bytes()
        for path in corpus_dir.rglob("*")
        if path.is_file() and not path.name.startswith(".")
    }
    return corpus.describe(files), corpus.corpus_sha256(files)


def process_start_monotonic_ns() -> int | None:
    """When this process started, on the monotonic clock (Linux: /proc start time against CLOCK_BOOTTIME)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fields = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])
    except (OSError, IndexError, ValueError):
        return None
    age_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - start_ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return time.monotonic_ns() - age_ns


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _call_record(
    obs: CallObservation,
    *,
    who: Identity,
    index: int,
    call_index: int,
    stage: Stage,
    client: OllamaClient,
    model: str,
    options: dict[str, float | int] | None,
    streaming: bool,
    max_tokens: int | None,
) -> CallRecord:
    final = obs.final
    return CallRecord(
        run_id=who.run_id,
        role=who.role,
        agent_run_index=index,
        language=who.language,
        runtime=who.runtime,
        call_index=call_index,
        stage=stage,
        endpoint=obs.endpoint,
        base_url=client.base_url,
        model=model,
        options=options,
        streaming=streaming,
        request_sha256=obs.request_sha256,
        start_ns=obs.start_ns,
        first_chunk_ns=obs.first_chunk_ns,
        end_ns=obs.end_ns,
        start_unix_ns=obs.start_unix_ns,
        chunk_count=len(obs.chunk_offsets_ns),
        chunk_offsets_ns=obs.chunk_offsets_ns,
        response_chars=len(obs.text),
        ok=obs.ok,
        error=obs.error,
        http_status=obs.http_status,
        done_reason=final.get("done_reason"),
        total_duration_ns=final.get("total_duration"),
        load_duration_ns=final.get("load_duration"),
        prompt_eval_count=final.get("prompt_eval_count"),
        prompt_eval_duration_ns=final.get("prompt_eval_duration"),
        eval_count=final.get("eval_count"),
        eval_duration_ns=final.get("eval_duration"),
        server_simulated=obs.simulated,
        engine="llamacpp" if client.engine == "llamacpp" else "ollama",
        max_tokens=max_tokens,
    )


def _with_budget(options: dict[str, float | int] | None, max_tokens: int | None) -> dict[str, float | int] | None:
    """The options sent: the run's token budget as ``num_predict`` (→ llama.cpp ``max_tokens``), if any."""
    if max_tokens is None:
        return options
    return {**(options or {}), "num_predict": max_tokens}


async def run_agent(
    client: OllamaClient,
    workload: Workload,
    who: Identity,
    options: dict[str, float | int] | None,
    *,
    index: int = 1,
    process_start_ns: int | None = None,
    sink: RecordSink | None = None,
) -> AgentRunRecord:
    """One pass of the workflow. Records go to ``sink`` as they are made (a crash keeps completed calls)."""
    emit: RecordSink = sink or (lambda _record: None)
    start_ns = time.monotonic_ns()
    entries: list[corpus.CorpusFile] = []
    corpus_hash: str | None = None
    if workload.workflow != "single_call" and workload.corpus_dir is not None:
        entries, corpus_hash = ingest(workload.corpus_dir)
    ingest_ns = time.monotonic_ns() - start_ns
    values = corpus.summarize(entries)

    if workload.workflow == "single_call":
        steps: list[tuple[Stage, str]] = [("single", workload.single_prompt)]
    else:
        steps = [("analysis", corpus.render(workload.analysis_template, values))]
        if workload.workflow == "two_call":
            steps.append(("report", workload.report_template))

    durations: dict[str, int] = {}
    calls_ok = calls_failed = 0
    first_request_ns: int | None = None
    error: str | None = None
    analysis_text = ""
    for call_index, (stage, template) in enumerate(steps, 1):
        prompt = corpus.render(template, {**values, "analysis": analysis_text}) if stage == "report" else template
        if first_request_ns is None:
            first_request_ns = time.monotonic_ns()
        sent = _with_budget(options, workload.max_tokens)
        obs = await client.generate(workload.model, prompt, options=sent, stream=workload.streaming)
        durations[stage] = obs.end_ns - obs.start_ns
        emit(
            _call_record(
                obs,
                who=who,
                index=index,
                call_index=call_index,
                stage=stage,
                client=client,
                model=workload.model,
                options=options,
                streaming=workload.streaming,
                max_tokens=workload.max_tokens,
            )
        )
        if not obs.ok:
            calls_failed += 1
            error = f"{stage} call failed: {obs.error}"
            break
        calls_ok += 1
        analysis_text = obs.text
    end_ns = time.monotonic_ns()

    startup = (
        first_request_ns - process_start_ns if process_start_ns is not None and first_request_ns is not None else None
    )
    record = AgentRunRecord(
        run_id=who.run_id,
        role=who.role,
        agent_run_index=index,
        language=who.language,
        runtime=who.runtime,
        base_url=client.base_url,
        model=workload.model,
        options=options,
        files_ingested=len(entries),
        corpus_sha256=corpus_hash,
        start_ns=start_ns,
        end_ns=end_ns,
        ingest_duration_ns=ingest_ns,
        analysis_duration_ns=durations.get("analysis", durations.get("single")),
        report_duration_ns=durations.get("report"),
        calls_ok=calls_ok,
        calls_failed=calls_failed,
        process_start_to_first_request_ns=startup,
        peak_rss_bytes=peak_rss_bytes(),
        ok=error is None,
        error=error,
    )
    emit(record)
    return record
