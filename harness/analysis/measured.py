"""The kit's artifact folders (sweep.json, runs/*/run.json + records.jsonl) as the tidy table.

Reads files only. True efficiency pairs each protocol run with the isolated runs of the same config, runtime and
language; the timeline of one multi-agent run shows where the two agents overlapped. The folder's provenance.json
is the report's to read, as its model (:func:`harness.analysis.report.read_provenance`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import metrics
from harness.analysis import stats
from harness.analysis.tidy import (
    MIB,
    add_improvements,
    nan_if_none,
    options_of,
    opts_label,
    original_labels,
    pair_label,
    to_frame,
)
from harness.artifacts import ArtifactDir, RunResult, Sweep, load_run_result, load_sweep
from harness.errors import ArtifactError
from harness.protocol.spec import Spec, load_spec
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord

# ------------------------------------------------------------------------------------- the kit's artifacts


@dataclass
class KitData:
    """Everything the consumers need from one artifact folder."""

    root: Path
    frame: pd.DataFrame
    sweep: Sweep | None
    timeline: pd.DataFrame
    """Cumulative tokens over time for one multi-agent run: run_id, role, t_s, cum_tokens (empty if none)."""
    failed_runs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def simulated(self) -> bool:
        if self.sweep is not None:
            return self.sweep.simulated
        return bool(self.frame["simulated"].eq(True).any()) if not self.frame.empty else False


Record = CallRecord | AgentRunRecord | MultiRunRecord
_Agents = dict[tuple[str, int], tuple[AgentRunRecord, list[CallRecord]]]
_PerRun = tuple[RunResult, _Agents, list[Record]]


def load_artifacts(root: Path, spec: Spec | None = None) -> KitData:
    """Read an artifact folder (sweep.json, runs/*/run.json + records.jsonl) into a KitData.

    True efficiency uses the mean duration of the ``isolated`` runs of the same config, runtime and language,
    per side; without them it is NaN (and the report says so). ``spec`` (default: the folder's spec.toml, if
    any) gives each runtime the label the original report used.
    """
    if not root.is_dir():
        raise ArtifactError(f"no artifact folder at {root}", hint="run `invoke reproduce` or pass an artifacts/<id>")
    runs = ArtifactDir(root).load_runs()
    if not runs:
        raise ArtifactError(
            f"{root} holds no runs (runs/*/run.json)",
            hint="run `invoke reproduce` first, or resume the sweep",
        )
    notes: list[str] = []
    sweep: Sweep | None = None
    if (root / "sweep.json").exists():
        sweep = load_sweep(root)
    else:
        notes.append("sweep.json is missing: backend unknown; simulation inferred from the records")
    if spec is None and (root / "spec.toml").exists():
        spec = load_spec(root / "spec.toml")
    originals = original_labels(spec)
    sim_backend = bool(sweep.simulated) if sweep is not None else False
    rep, version = (sweep.report, "") if sweep is not None else (runs[0][0].run.report, "")

    per_run = [(result, _agent_runs(records), records) for result, records in runs]
    isolated = _isolated_durations(per_run)

    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    timeline_run: tuple[MultiRunRecord, list[CallRecord], str] | None = None
    for result, agents, records in per_run:
        run = result.run
        if result.status != "ok":
            failed.append(run.run_id)
        simulated = sim_backend or any(isinstance(r, CallRecord) and r.server_simulated for r in records)
        a_opts = options_of(run.agents[0].wire_options()) if run.agents else (math.nan,) * 3
        b_opts = options_of(run.agents[1].wire_options()) if len(run.agents) > 1 else a_opts
        label = pair_label(opts_label(*a_opts), opts_label(*b_opts))
        ident = {
            "origin": "kit",
            "report": rep,
            "report_version": version,
            "run_id": run.run_id,
            "run_kind": run.kind,
            "simulated": simulated,
            "config_id": run.config_id,
            "config_label": label,
            "scenario": run.scenario,
            "phase": "",
            "runtime": run.runtime,
            "runtime_original": originals.get(run.runtime, run.runtime),
            "language": run.language,
            "run_index": run.repetition,
        }
        run_rows, figures = _agent_rows(ident, result, agents, records)
        add_improvements(run_rows)
        multi = next((r for r in records if isinstance(r, MultiRunRecord)), None)
        if multi is not None and "collector" in figures and "insight" in figures:
            key = (run.config_id, run.runtime, run.language)
            iso_a, iso_b = isolated.get((*key, "a")), isolated.get((*key, "b"))
            mf = metrics.multi_figures(
                multi,
                figures["collector"],
                figures["insight"],
                isolated_collector_s=stats.mean(iso_a) if iso_a else None,
                isolated_insight_s=stats.mean(iso_b) if iso_b else None,
            )
            ok = result.status == "ok" and multi.ok and all(r["ok"] for r in run_rows if r["level"] == "agent")
            run_rows.append({**ident, **_multi_row(mf, figures, iso_a, iso_b), "ok": ok})
            if timeline_run is None and ok and run.kind == "protocol":
                timeline_run = (multi, [r for r in records if isinstance(r, CallRecord)], run.run_id)
        elif multi is not None:
            notes.append(f"run {run.run_id}: multi-agent record without both agents' records; no efficiency")
        rows.extend(run_rows)
    frame = to_frame(rows)
    timeline = timeline_frame(*timeline_run) if timeline_run else _empty_timeline()
    return KitData(root, frame, sweep, timeline, failed, notes)


def _isolated_durations(per_run: list[_PerRun]) -> dict[tuple[str, str, str, str], list[float]]:
    """Durations of the successful isolated agent runs, keyed by (config, runtime, language, side)."""
    isolated: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for result, agents, _records in per_run:
        run = result.run
        if run.kind == "isolated" and result.status == "ok" and run.isolated_side:
            for ar, _calls in agents.values():
                if ar.ok:
                    isolated[(run.config_id, run.runtime, run.language, run.isolated_side)].append(
                        (ar.end_ns - ar.start_ns) / metrics.NS_PER_S
                    )
    return isolated


def _agent_rows(
    ident: dict[str, Any], result: RunResult, agents: _Agents, records: list[Record]
) -> tuple[list[dict[str, Any]], dict[str, metrics.AgentFigures]]:
    """One agent row per agent run and one call row per call (calls outside an agent run included)."""
    memory = {c.name: c.memory_peak_bytes for c in result.containers if c.memory_peak_bytes is not None}
    figures: dict[str, metrics.AgentFigures] = {}
    run_rows: list[dict[str, Any]] = []
    for (role, _idx), (ar, calls) in sorted(agents.items()):
        fig = metrics.agent_figures(ar, calls)
        figures[role] = fig
        side = {"collector": "a", "insight": "b"}.get(role, "")
        g, c, t = options_of(ar.options)
        peak = ar.peak_rss_bytes or next((v for k, v in memory.items() if role in k), None)
        startup = ar.process_start_to_first_request_ns
        run_rows.append(
            {
                **ident,
                "level": "agent",
                "role": role,
                "side": side,
                "ok": result.status == "ok" and ar.ok,
                "num_gpu": g,
                "num_ctx": c,
                "temperature": t,
                "exec_s": fig.exec_s,
                "tps": nan_if_none(fig.tps_mean),
                "client_tps": nan_if_none(fig.client_tps_mean),
                "ttft_ms": nan_if_none(fig.ttft_ms_mean),
                "tokens": float(fig.tokens),
                "load_ms": fig.load_ms_sum,
                "prompt_eval_ms": fig.prompt_eval_ms_sum,
                "eval_ms": fig.eval_ms_sum,
                "files_ingested": float(fig.files_ingested),
                "calls_ok": float(fig.calls_ok),
                "calls_failed": float(fig.calls_failed),
                "peak_memory_mb": peak / MIB if peak else math.nan,
                "startup_s": startup / metrics.NS_PER_S if startup is not None else math.nan,
            }
        )
        for call in calls:
            run_rows.append({**ident, **_call_row(call), "side": side, "num_gpu": g, "num_ctx": c, "temperature": t})
    for rec in records:
        if isinstance(rec, CallRecord) and not any(rec in calls for _ar, calls in agents.values()):
            g, c, t = options_of(rec.options)
            run_rows.append({**ident, **_call_row(rec), "side": "", "num_gpu": g, "num_ctx": c, "temperature": t})
    return run_rows, figures


def _multi_row(
    mf: metrics.MultiFigures,
    figures: dict[str, metrics.AgentFigures],
    iso_a: list[float] | None,
    iso_b: list[float] | None,
) -> dict[str, Any]:
    """The figures of one concurrent run: the originals' efficiency, true efficiency, aggregate rate."""
    ca, ci = figures["collector"], figures["insight"]
    return {
        "level": "multi",
        "role": "pair",
        "side": "",
        "concurrent_wall_s": mf.concurrent_wall_s,
        "a_exec_s": ca.exec_s,
        "b_exec_s": ci.exec_s,
        "sequential_estimate_s": mf.original.sequential_estimate_s,
        "speedup": mf.original.speedup,
        "efficiency_pct": mf.original.efficiency_pct,
        "contention": mf.original.contention,
        "isolated_a_s": stats.mean(iso_a) if iso_a else math.nan,
        "isolated_b_s": stats.mean(iso_b) if iso_b else math.nan,
        "true_efficiency_pct": nan_if_none(mf.true_efficiency_pct),
        "aggregate_tps": mf.aggregate_tps,
        "a_tps": nan_if_none(ca.tps_mean),
        "b_tps": nan_if_none(ci.tps_mean),
        "a_ttft_ms": nan_if_none(ca.ttft_ms_mean),
        "b_ttft_ms": nan_if_none(ci.ttft_ms_mean),
        "a_tokens": float(ca.tokens),
        "b_tokens": float(ci.tokens),
        "throughput_delta_tps": nan_if_none(mf.throughput_delta_tps),
        "ttft_delta_ms": nan_if_none(mf.ttft_delta_ms),
    }


def _agent_runs(records: Iterable[Record]) -> dict[tuple[str, int], tuple[AgentRunRecord, list[CallRecord]]]:
    """Agent runs keyed by (role, agent_run_index), each with its calls in call order."""
    calls: dict[tuple[str, int], list[CallRecord]] = defaultdict(list)
    runs: dict[tuple[str, int], AgentRunRecord] = {}
    for rec in records:
        if isinstance(rec, CallRecord):
            calls[(rec.role, rec.agent_run_index)].append(rec)
        elif isinstance(rec, AgentRunRecord):
            runs[(rec.role, rec.agent_run_index)] = rec
    return {k: (ar, sorted(calls.get(k, []), key=lambda c: c.call_index)) for k, ar in runs.items()}


def _call_row(call: CallRecord) -> dict[str, Any]:
    offsets = call.chunk_offsets_ns
    span_s = (offsets[-1] - offsets[0]) / metrics.NS_PER_S if len(offsets) >= 2 else math.nan
    eval_s = call.eval_duration_ns / metrics.NS_PER_S if call.eval_duration_ns else math.nan
    return {
        "level": "call",
        "role": call.role,
        "stage": call.stage,
        "call_index": call.call_index,
        "ok": call.ok,
        "tps": nan_if_none(metrics.server_tps(call)),
        "client_tps": nan_if_none(metrics.client_tps(call)),
        "ttft_ms": nan_if_none(metrics.ttft_ms(call)),
        "itl_ms": nan_if_none(metrics.itl_ms(call)),
        "latency_ms": nan_if_none(metrics.latency_ms(call)),
        "tokens": nan_if_none(call.eval_count),
        "load_ms": nan_if_none(call.load_duration_ns) / metrics.NS_PER_MS,
        "prompt_eval_ms": nan_if_none(call.prompt_eval_duration_ns) / metrics.NS_PER_MS,
        "eval_ms": nan_if_none(call.eval_duration_ns) / metrics.NS_PER_MS,
        "chunk_count": float(call.chunk_count),
        "token_gap": call.eval_count - call.chunk_count if call.eval_count is not None else math.nan,
        "client_decode_s": span_s,
        "eval_s": eval_s,
        "decode_span_ratio": span_s / eval_s if eval_s and not math.isnan(span_s) else math.nan,
    }


def _empty_timeline() -> pd.DataFrame:
    return pd.DataFrame({"run_id": [], "role": [], "t_s": [], "cum_tokens": []})


def timeline_frame(multi: MultiRunRecord, calls: list[CallRecord], run_id: str) -> pd.DataFrame:
    """Cumulative streamed chunks (≈ tokens) per agent against seconds since the concurrent run started:
    where both curves rise together the agents overlapped; where one is flat it waited."""
    parts = []
    for role in sorted({c.role for c in calls}):
        times = sorted(
            (c.start_ns + off - multi.start_ns) / metrics.NS_PER_S
            for c in calls
            if c.role == role
            for off in c.chunk_offsets_ns
        )
        if times:
            parts.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "role": role,
                        "t_s": [0.0, *times],
                        "cum_tokens": [0, *range(1, len(times) + 1)],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True) if parts else _empty_timeline()


def attempts_table(root: Path) -> pd.DataFrame:
    """Every attempt of every run that did not succeed at its first try (retried, failed, or lost with a node):
    the run, the attempt, its outcome and cause, and the last log line of each failing container."""
    rows: list[dict[str, Any]] = []
    runs_dir = ArtifactDir(root).runs_dir
    for path in sorted(runs_dir.glob("*/run.json")) if runs_dir.is_dir() else []:
        result = load_run_result(path)
        run = result.run
        ident = {"run_id": run.run_id, "kind": run.kind, "config_id": run.config_id, "runtime": run.runtime}
        history = result.attempt_history
        if len(history) > 1 or result.status == "failed":
            for a in history:
                last = "; ".join(f"{name}: {lines[-1]}" for name, lines in a.log_tail.items() if lines)
                rows.append(
                    {**ident, "attempt": a.number, "outcome": a.outcome, "cause": a.cause or "", "last log lines": last}
                )
        for lost in result.lost_attempts:
            rows.append(
                {
                    **ident,
                    "attempt": 0,
                    "outcome": "lost",
                    "cause": f"node {lost.node_id}: {lost.reason}",
                    "last log lines": "",
                }
            )
    return pd.DataFrame.from_records(
        rows, columns=["run_id", "kind", "config_id", "runtime", "attempt", "outcome", "cause", "last log lines"]
    )
