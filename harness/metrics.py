"""Derived figures from raw records: pure functions, no I/O.

Two families live here. The per-call and per-agent figures (TTFT, server- and client-side throughput) follow
the originals' definitions (docs/analysis.md lists them). The multi-agent figures come twice: the originals'
formula (sum of the agents' in-run durations over the concurrent wall time, halved), kept under its original
name so published numbers can be recomputed, and a true parallel efficiency against isolated single-agent runs
of the same config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

from harness.records import AgentRunRecord, CallRecord, MultiRunRecord

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
CONTENTION_SPEEDUP = 1.5
"""Every original dataset marks a run as contended exactly when its speedup is below 1.5."""


def ttft_ms(call: CallRecord) -> float | None:
    """Client time from sending the request to the first chunk with non-empty text."""
    if call.first_chunk_ns is None:
        return None
    return (call.first_chunk_ns - call.start_ns) / NS_PER_MS


def server_tps(call: CallRecord) -> float | None:
    """Ollama's own decode rate, ``eval_count / eval_duration``: what the reports called throughput."""
    if not call.eval_count or not call.eval_duration_ns:
        return None
    return call.eval_count / (call.eval_duration_ns / NS_PER_S)


def client_tps(call: CallRecord) -> float | None:
    """Chunks after the first per second between the first and the last chunk, as the client saw them.

    The first chunk is excluded because its arrival time includes queueing, load and prompt eval.
    """
    if call.chunk_count < 2:
        return None
    if call.chunk_offsets_ns:
        span_ns = call.chunk_offsets_ns[-1] - call.chunk_offsets_ns[0]
    elif call.first_chunk_ns is not None:
        span_ns = call.end_ns - call.first_chunk_ns
    else:
        return None
    if span_ns <= 0:
        return None
    return (call.chunk_count - 1) / (span_ns / NS_PER_S)


@dataclass(frozen=True)
class AgentFigures:
    """One agent run, reduced the way the reports reduced it (unweighted means over its calls)."""

    role: str
    exec_s: float
    calls_ok: int
    calls_failed: int
    tokens: int
    tps_mean: float | None
    client_tps_mean: float | None
    ttft_ms_mean: float | None
    load_ms_sum: float
    prompt_eval_ms_sum: float
    eval_ms_sum: float
    files_ingested: int


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None


def agent_figures(run: AgentRunRecord, calls: Sequence[CallRecord]) -> AgentFigures:
    """Reduce one agent run and its calls; failed calls count as failures and add no rate."""
    ok = [c for c in calls if c.ok]
    return AgentFigures(
        role=run.role,
        exec_s=(run.end_ns - run.start_ns) / NS_PER_S,
        calls_ok=len(ok),
        calls_failed=len(calls) - len(ok),
        tokens=sum(c.eval_count or 0 for c in ok),
        tps_mean=_mean([server_tps(c) for c in ok]),
        client_tps_mean=_mean([client_tps(c) for c in ok]),
        ttft_ms_mean=_mean([ttft_ms(c) for c in ok]),
        load_ms_sum=sum(c.load_duration_ns or 0 for c in ok) / NS_PER_MS,
        prompt_eval_ms_sum=sum(c.prompt_eval_duration_ns or 0 for c in ok) / NS_PER_MS,
        eval_ms_sum=sum(c.eval_duration_ns or 0 for c in ok) / NS_PER_MS,
        files_ingested=run.files_ingested,
    )


@dataclass(frozen=True)
class OriginalEfficiency:
    """The originals' multi-agent figures, computed exactly as the reports did."""

    sequential_estimate_s: float
    speedup: float
    efficiency_pct: float
    contention: bool


def original_efficiency(exec_a_s: float, exec_b_s: float, concurrent_wall_s: float) -> OriginalEfficiency:
    """``(exec_A + exec_B) / wall / 2``: with wall ≈ max(exec), this measures balance, not a speed-up."""
    if concurrent_wall_s <= 0:
        raise ValueError("concurrent wall time must be positive")
    sequential = exec_a_s + exec_b_s
    speedup = sequential / concurrent_wall_s
    return OriginalEfficiency(
        sequential_estimate_s=sequential,
        speedup=speedup,
        efficiency_pct=speedup / 2 * 100,
        contention=speedup < CONTENTION_SPEEDUP,
    )


def true_efficiency_pct(isolated_a_s: float, isolated_b_s: float, concurrent_wall_s: float) -> float:
    """Parallel efficiency against isolated runs: ``(iso_A + iso_B) / (2 · wall) · 100``.

    ``iso`` is the duration of the same agent with the same options measured alone. Two agents that time-slice
    one GPU finish no sooner than one after the other and score ≤ 50 %; perfect overlap of equal jobs scores 100 %.
    """
    if concurrent_wall_s <= 0:
        raise ValueError("concurrent wall time must be positive")
    return (isolated_a_s + isolated_b_s) / (2 * concurrent_wall_s) * 100


@dataclass(frozen=True)
class MultiFigures:
    concurrent_wall_s: float
    original: OriginalEfficiency
    throughput_delta_tps: float | None
    ttft_delta_ms: float | None
    aggregate_tps: float
    true_efficiency_pct: float | None


def multi_figures(
    multi: MultiRunRecord,
    collector: AgentFigures,
    insight: AgentFigures,
    *,
    isolated_collector_s: float | None = None,
    isolated_insight_s: float | None = None,
) -> MultiFigures:
    """Per multi-agent run: the originals' figures, the deltas, aggregate tokens per wall second and, when
    isolated baselines of the same config exist, the true efficiency."""
    wall_s = (multi.end_ns - multi.start_ns) / NS_PER_S
    tps_delta = (
        insight.tps_mean - collector.tps_mean
        if insight.tps_mean is not None and collector.tps_mean is not None
        else None
    )
    ttft_delta = (
        collector.ttft_ms_mean - insight.ttft_ms_mean
        if insight.ttft_ms_mean is not None and collector.ttft_ms_mean is not None
        else None
    )
    true_eff = (
        true_efficiency_pct(isolated_collector_s, isolated_insight_s, wall_s)
        if isolated_collector_s is not None and isolated_insight_s is not None
        else None
    )
    return MultiFigures(
        concurrent_wall_s=wall_s,
        original=original_efficiency(collector.exec_s, insight.exec_s, wall_s),
        throughput_delta_tps=tps_delta,
        ttft_delta_ms=ttft_delta,
        aggregate_tps=(collector.tokens + insight.tokens) / wall_s,
        true_efficiency_pct=true_eff,
    )


def pct_change(new: float, old: float) -> float:
    """``(new - old) / old · 100``: the reports' throughput improvement."""
    if old == 0:
        raise ValueError("baseline value is zero")
    return (new - old) / old * 100


def pct_reduction(new: float, old: float) -> float:
    """``(old - new) / old · 100``: the reports' TTFT reduction (positive = faster)."""
    return -pct_change(new, old)
