"""One tidy table from either source: the kit's artifact folders or the originals' per-run CSV records.

Reads files only (no Docker, no HTTP), so a report can be rebuilt on a laptop from an artifact folder.

The table (:func:`harness.analysis.measured.load_artifacts`, :func:`harness.analysis.originals.import_original`)
has one row per *observation unit*, named by
``level``:

- ``call``  one request to Ollama (TTFT, server and client rate, token/timing reconciliation);
- ``agent`` one agent run: unweighted means over its calls, as the reports reduced them;
- ``multi`` one concurrent run of two agents: the originals' efficiency *and* the true efficiency.

A multi-agent run therefore gives one ``multi`` row, two ``agent`` rows (collector = side a, insight = side b)
and one ``call`` row per request; a single-agent run gives one ``agent`` row per agent (baseline, chimera).
Columns that do not apply to a level are NaN. Units are in the names: ``_s`` seconds, ``_ms`` milliseconds,
``_tps`` / ``tps`` tokens per second, ``_pct`` percent, ``_mb`` MiB. Values the originals stored are kept as
``*_recorded`` beside the recomputed ones; see :data:`COLUMNS` (and docs/analysis.md) for every column.

Metrics come from :mod:`harness.metrics` (the formulas live there, not here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from harness import metrics
from harness.analysis import stats
from harness.protocol.spec import Spec

MIB = 1024 * 1024

COLUMNS: dict[str, str] = {
    # identity
    "level": "call | agent | multi: the unit a row describes",
    "origin": "kit (measured by this kit) | original (imported from the reports' records)",
    "report": "report id, lower case (tr115)",
    "report_version": "report version (v2) or empty",
    "run_id": "kit run id; for imports <config_id>#<run_index>",
    "run_kind": "protocol | isolated | diagnostic (imports: protocol)",
    "simulated": "bool: the run talked to the simulated Ollama (a rehearsal, never a measurement)",
    "config_id": "config id (spec id or the original's label)",
    "config_label": "num_gpu/num_ctx/temperature; 'default' when none is sent; 'A vs B' when sides differ",
    "scenario": "baseline_vs_chimera | chimera_hetero | chimera_homo | single_agent | single_inference",
    "phase": "original test phase (TR110) or empty",
    "runtime": "async runtime (kit name; originals' labels mapped through the spec when given)",
    "runtime_original": "the runtime's label in the original report (claims' runtime filters match either)",
    "language": "python | rust",
    "run_index": "repetition, 1-based",
    "role": "baseline | chimera | collector | insight | inference; 'pair' on multi rows",
    "side": "a (collector) | b (insight) | empty",
    "stage": "call rows: analysis | report | single",
    "call_index": "call rows: 1-based index inside the agent run",
    "ok": "bool: the run / agent / call completed",
    "num_gpu": "option sent (NaN = not sent)",
    "num_ctx": "option sent (NaN = not sent)",
    "temperature": "option sent (NaN = not sent)",
    # agent and call figures
    "exec_s": "agent rows: agent run duration (s); multi-agent: measured during the concurrent run",
    "tps": "server-side decode rate eval_count / eval_duration (tok/s); agent rows: mean over calls",
    "client_tps": "client-side rate: chunks after the first / first-to-last chunk span (tok/s)",
    "ttft_ms": "client time to the first non-empty chunk (ms); agent rows: mean over calls",
    "itl_ms": "call rows: mean gap between consecutive non-empty chunks after the first (ms)",
    "latency_ms": "call rows: request sent to final chunk or error (ms)",
    "tokens": "eval_count (agent rows: summed over ok calls)",
    "load_ms": "Ollama load_duration (ms; agent rows: sum)",
    "prompt_eval_ms": "Ollama prompt_eval_duration (ms; agent rows: sum)",
    "eval_ms": "Ollama eval_duration (ms; agent rows: sum)",
    "files_ingested": "corpus files the agent read",
    "calls_ok": "agent rows: successful calls",
    "calls_failed": "agent rows: failed calls",
    "peak_memory_mb": "agent rows: peak memory of the agent (process RSS or container cgroup peak, MiB)",
    "startup_s": "agent rows: process start to first request (s)",
    "tps_improvement_pct": "chimera rows: (tps_chimera − tps_baseline) / tps_baseline · 100, same run",
    "ttft_reduction_pct": "chimera rows: (ttft_baseline − ttft_chimera) / ttft_baseline · 100, same run",
    # call reconciliation
    "chunk_count": "call rows: chunks with non-empty text the client received",
    "token_gap": "call rows: eval_count − chunk_count (server tokens the client did not see as chunks)",
    "client_decode_s": "call rows: first-to-last chunk span at the client (s)",
    "eval_s": "call rows: Ollama eval_duration (s)",
    "decode_span_ratio": "call rows: client_decode_s / eval_s (1 = client and server agree)",
    # multi-agent figures
    "concurrent_wall_s": "multi rows: wall time around the concurrent join (s)",
    "a_exec_s": "multi rows: collector duration during the concurrent run (s)",
    "b_exec_s": "multi rows: insight duration during the concurrent run (s)",
    "sequential_estimate_s": "multi rows: a_exec_s + b_exec_s, the originals' 'sequential' time (s)",
    "speedup": "multi rows: sequential_estimate_s / concurrent_wall_s",
    "efficiency_pct": "multi rows: the originals' efficiency, speedup / 2 · 100 (measures balance)",
    "contention": "multi rows: bool, speedup < 1.5 (the originals' rule)",
    "isolated_a_s": "multi rows: mean duration of side a's isolated runs of the same config (s)",
    "isolated_b_s": "multi rows: mean duration of side b's isolated runs of the same config (s)",
    "true_efficiency_pct": "multi rows: (isolated_a_s + isolated_b_s) / (2 · wall) · 100",
    "aggregate_tps": "multi rows: (a_tokens + b_tokens) / concurrent_wall_s (tok/s)",
    "a_tps": "multi rows: collector mean server-side rate (tok/s)",
    "b_tps": "multi rows: insight mean server-side rate (tok/s)",
    "a_ttft_ms": "multi rows: collector mean TTFT (ms)",
    "b_ttft_ms": "multi rows: insight mean TTFT (ms)",
    "a_tokens": "multi rows: collector tokens",
    "b_tokens": "multi rows: insight tokens",
    "throughput_delta_tps": "multi rows: b_tps − a_tps",
    "ttft_delta_ms": "multi rows: a_ttft_ms − b_ttft_ms",
    # the originals' stored values (imports only)
    "sequential_estimate_s_recorded": "as stored by the original",
    "speedup_recorded": "as stored by the original",
    "efficiency_pct_recorded": "as stored by the original (TR110 left it empty)",
    "config_efficiency_pct_recorded": "TR110: the config's mean efficiency as stored",
    "contention_recorded": "as stored by the original",
    "throughput_delta_tps_recorded": "as stored by the original",
    "ttft_delta_ms_recorded": "as stored by the original",
    "tps_improvement_pct_recorded": "as stored by the original",
    "ttft_reduction_pct_recorded": "as stored by the original",
    "config_tps_recorded": "TR111: the config-and-agent mean rate as stored",
    "config_ttft_ms_recorded": "TR111: the config-and-agent mean TTFT as stored",
}

_BOOL_COLUMNS = ("simulated", "ok", "contention", "contention_recorded")
TWO_CALL_STAGES = {1: "analysis", 2: "report"}


# --------------------------------------------------------------------------------------------------- helpers


def num(value: Any) -> float:
    """A float, NaN for missing or unparsable values (CSV cells, None)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def flag(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def nan_if_none(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


def opts_label(num_gpu: float, num_ctx: float, temperature: float) -> str:
    if all(math.isnan(v) for v in (num_gpu, num_ctx, temperature)):
        return "default"

    def show(v: float, *, decimal: bool = False) -> str:
        if math.isnan(v):
            return "-"
        text = f"{v:g}"
        return f"{v:.1f}" if decimal and "." not in text else text

    return f"{show(num_gpu)}/{show(num_ctx)}/{show(temperature, decimal=True)}"


def pair_label(a: str, b: str) -> str:
    return a if a == b else f"{a} vs {b}"


def split_report(label: str) -> tuple[str, str]:
    """'TR115_v2' → ('tr115', 'v2')."""
    head, _, version = label.strip().lower().partition("_")
    return head, version


def options_of(options: Mapping[str, float | int] | None) -> tuple[float, float, float]:
    opts = options or {}
    return num(opts.get("num_gpu")), num(opts.get("num_ctx")), num(opts.get("temperature"))


def runtime_names(spec: Spec | None) -> dict[str, str]:
    """Original label → kit runtime name; where several share a label the first listed (protocol) wins."""
    if spec is None or spec.agent is None:
        return {}
    return {rt.original: rt.name for rt in reversed(spec.agent.runtimes) if rt.original}


def original_labels(spec: Spec | None) -> dict[str, str]:
    """Kit runtime name → the label the original report used for it."""
    if spec is None or spec.agent is None:
        return {}
    return {rt.name: rt.original or rt.name for rt in spec.agent.runtimes}


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows → the documented columns in their documented order (absent ones NaN)."""
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    for col in _BOOL_COLUMNS:
        frame[col] = frame[col].astype(object)
    return frame


def add_improvements(rows: list[dict[str, Any]]) -> None:
    """Chimera rows get their improvement over the baseline agent of the same run (the reports' pairing)."""
    base: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        if row["level"] == "agent" and row["role"] == "baseline":
            base[(row["config_id"], row["run_index"])] = row
    for row in rows:
        if row["level"] != "agent" or row["role"] != "chimera":
            continue
        ref = base.get((row["config_id"], row["run_index"]))
        if ref is None:
            continue
        if ref["tps"] and not math.isnan(ref["tps"]) and not math.isnan(row["tps"]):
            row["tps_improvement_pct"] = metrics.pct_change(row["tps"], ref["tps"])
        if ref["ttft_ms"] and not math.isnan(ref["ttft_ms"]) and not math.isnan(row["ttft_ms"]):
            row["ttft_reduction_pct"] = metrics.pct_reduction(row["ttft_ms"], ref["ttft_ms"])


# ------------------------------------------------------------------------------------------------ summaries


def ok_rows(frame: pd.DataFrame, level: str, *, run_kind: str | None = "protocol") -> pd.DataFrame:
    """Successful rows of one level (protocol runs by default)."""
    rows = frame[(frame["level"] == level) & frame["ok"].eq(True)]
    if run_kind is not None:
        rows = rows[rows["run_kind"] == run_kind]
    return rows


def group_table(rows: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Per group: n, mean, sample σ, CV %, min, median, max of ``metric`` (NaN values ignored)."""
    out = []
    for key, grp in rows.groupby(by, sort=True, dropna=False):
        s = stats.summarize(pd.to_numeric(grp[metric], errors="coerce").to_numpy(dtype=float))
        keys = key if isinstance(key, tuple) else (key,)
        out.append(
            {
                **dict(zip(by, keys, strict=True)),
                "n": s.n,
                "mean": s.mean,
                "std": s.std,
                "cv_pct": s.cv_pct,
                "min": s.min,
                "median": s.median,
                "max": s.max,
            }
        )
    return pd.DataFrame(out)
