"""Per-metric distributions in the shape AIPerf users already read: unit, avg, std, min, p1 … p99, max, count.

Means alone hide what a user of an agent feels (a slow tail of first tokens), and tools such as AIPerf, vLLM's
bench and GuideLLM report percentiles. The blocks are computed from the tidy frame (``runs.csv``), so
``summary.json``, the per-config companion CSV and the report's tables all say the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PERCENTILES: tuple[int, ...] = (1, 5, 10, 25, 50, 75, 90, 95, 99)
"""The percentiles of every block (AIPerf's set)."""


@dataclass(frozen=True)
class MetricSource:
    """Where a metric's samples live in the tidy frame: one row level, one column, one unit."""

    tag: str
    header: str
    unit: str
    level: str
    column: str


METRICS: tuple[MetricSource, ...] = (
    MetricSource("time_to_first_token", "Time to first token", "ms", "call", "ttft_ms"),
    MetricSource("inter_token_latency", "Inter-token latency", "ms", "call", "itl_ms"),
    MetricSource("request_latency", "End-to-end call latency", "ms", "call", "latency_ms"),
    MetricSource("output_token_throughput_per_user", "Client tokens per second", "tokens/sec", "call", "client_tps"),
    MetricSource(
        "server_decode_throughput", "Server decode rate (eval_count/eval_duration)", "tokens/sec", "call", "tps"
    ),
    MetricSource("load_time", "Model load time (load_duration)", "ms", "call", "load_ms"),
    MetricSource("prompt_eval_time", "Prompt evaluation time", "ms", "call", "prompt_eval_ms"),
    MetricSource("efficiency_original", "Efficiency, the originals' formula", "%", "multi", "efficiency_pct"),
    MetricSource("efficiency_true", "True parallel efficiency vs isolated runs", "%", "multi", "true_efficiency_pct"),
)


def block(values: Any, unit: str) -> dict[str, Any]:
    """One metric's block from its samples; NaN samples are dropped and ``count`` says how many remained.

    With no sample every statistic is ``None`` (JSON null), never 0, so a reader cannot mistake it for a value.
    ``std`` is the sample standard deviation (ddof 1) and ``None`` below two samples.
    """
    data = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    data = data[np.isfinite(data)]
    out: dict[str, Any] = {"unit": unit, "count": int(data.size)}
    if not data.size:
        return out | {k: None for k in ("avg", "std", "min", *(f"p{p}" for p in PERCENTILES), "max")}
    out["avg"] = float(data.mean())
    out["std"] = float(data.std(ddof=1)) if data.size >= 2 else None
    out["min"] = float(data.min())
    for p, v in zip(PERCENTILES, np.percentile(data, PERCENTILES), strict=True):
        out[f"p{p}"] = float(v)
    out["max"] = float(data.max())
    return out


def sample_rows(frame: pd.DataFrame, source: MetricSource) -> pd.DataFrame:
    """Successful protocol rows of the metric's level (isolated baselines and diagnostics are not the protocol)."""
    if frame.empty or source.column not in frame.columns:
        return frame.iloc[0:0]
    rows = frame[(frame["level"] == source.level) & frame["ok"].eq(True)]
    if "run_kind" in rows.columns:
        rows = rows[rows["run_kind"].isna() | (rows["run_kind"] == "protocol")]
    return rows


def metric_blocks(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Every metric of :data:`METRICS` over the whole frame, keyed by its tag; metrics without samples are left
    out (a single-agent report has no efficiency), so a present block always has ``count`` ≥ 1."""
    out: dict[str, dict[str, Any]] = {}
    for source in METRICS:
        b = block(sample_rows(frame, source)[source.column] if source.column in frame.columns else [], source.unit)
        if b["count"]:
            out[source.tag] = {"header": source.header, **b}
    return out


def per_config(frame: pd.DataFrame, by: tuple[str, ...] = ("config_id", "runtime")) -> pd.DataFrame:
    """One row per (group, metric) with the block's columns: the ``runs.csv`` companion for other tools."""
    keys = [k for k in by if k in frame.columns]
    records: list[dict[str, Any]] = []
    for source in METRICS:
        rows = sample_rows(frame, source)
        if rows.empty or not keys:
            continue
        for key, grp in rows.groupby(keys, sort=True, dropna=False):
            b = block(grp[source.column], source.unit)
            if not b["count"]:
                continue
            ident = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
            records.append({**ident, "metric": source.tag, **b})
    columns = [*keys, "metric", "unit", "count", "avg", "std", "min", *(f"p{p}" for p in PERCENTILES), "max"]
    return pd.DataFrame.from_records(records, columns=columns)


def fmt(value: float | None, digits: int = 2) -> str:
    """A block value for a table cell: '—' for absent, never 'nan'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def summary_document(
    frame: pd.DataFrame,
    *,
    headline: dict[str, Any],
    report: str,
    origin: str,
    simulated: bool,
    backend: str | None,
    time_scale: float | None,
    kit_version: str | None,
    kit_commit: str | None,
    schema_version: int,
    engine_device: str | None = None,
) -> dict[str, Any]:
    """``summary.json``: the headline figures plus a block per metric, and on top what a tool must know before it
    trusts a number: was it SIMULATED, on which backend (for another engine, on which device), at which time
    scale, by which kit."""
    device = {"engine_device": engine_device} if engine_device is not None else {}
    return {
        "schema_version": schema_version,
        "report": report,
        "origin": origin,
        "simulated": simulated,
        "backend": backend,
        **device,
        "time_scale": time_scale,
        "kit_version": kit_version,
        "kit_commit": kit_commit,
        "metrics": metric_blocks(frame),
        **headline,
    }
