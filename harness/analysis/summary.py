"""The reports' headline figures recomputed from the tidy table, and the tables beyond the originals.

Descriptive only: judging a published number is :mod:`harness.analysis.verdicts`' job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis import stats
from harness.analysis.originals import import_original
from harness.analysis.tidy import group_table, ok_rows
from harness.protocol.spec import Spec


@dataclass
class OriginalSummary:
    """The published figures recomputed: named headline values and the tables behind them."""

    report: str
    headline: dict[str, float | int | str]
    tables: dict[str, pd.DataFrame]


def summarize(frame: pd.DataFrame, report: str | None = None) -> OriginalSummary:
    """The reports' figures from a tidy table (imported or measured): multi-agent (per-config means, σ, peak
    run, best config mean, min, contention counts, per-runtime rows) and single-agent (baseline rate and TTFT,
    per-config improvement, share of configs beating the baseline, best config)."""
    rep = report or (str(frame["report"].iloc[0]) if not frame.empty else "")
    headline: dict[str, float | int | str] = {}
    tables: dict[str, pd.DataFrame] = {}
    multi = ok_rows(frame, "multi")
    if not multi.empty:
        eff = multi["efficiency_pct"].astype(float)
        contended = multi["contention"].eq(True)
        per_config = group_table(multi, "efficiency_pct", ["config_id"])
        labels = multi.groupby("config_id")["config_label"].first()
        per_config["config_label"] = per_config["config_id"].map(labels)
        best = per_config.sort_values("mean", ascending=False).iloc[0]
        peak = multi.iloc[int(np.nanargmax(eff.to_numpy(dtype=float)))]
        headline.update(
            {
                "runs": len(multi),
                "efficiency_mean_pct": stats.mean(eff),
                "efficiency_std_pct": stats.sample_std(eff),
                "efficiency_median_pct": stats.median(eff),
                "efficiency_p5_pct": stats.percentile(eff, 5),
                "efficiency_min_pct": float(eff.min()),
                "peak_run_efficiency_pct": float(eff.max()),
                "peak_run": f"{peak['config_id']} run {peak['run_index']}",
                "best_config": f"{best['config_id']} ({best['config_label']})",
                "best_config_mean_pct": float(best["mean"]),
                "contention_runs": int(contended.sum()),
                "efficiency_mean_without_contention_pct": stats.mean(eff[~contended]),
                "aggregate_tps_mean": stats.mean(multi["aggregate_tps"].astype(float)),
            }
        )
        true_eff = multi["true_efficiency_pct"].astype(float)
        if true_eff.notna().any():
            headline["true_efficiency_mean_pct"] = stats.mean(true_eff)
        tables["efficiency_per_config"] = per_config
        if multi["runtime"].nunique() > 1:
            per_rt = group_table(multi, "efficiency_pct", ["runtime"])
            per_rt["contention_runs"] = per_rt["runtime"].map(multi.groupby("runtime")["contention"].sum())
            tables["efficiency_per_runtime"] = per_rt
            for row in per_rt.itertuples():
                for stat in ("mean", "std", "max", "min"):
                    headline[f"{row.runtime}_efficiency_{stat}_pct"] = float(getattr(row, stat))
    agents = ok_rows(frame, "agent")
    singles = agents[agents["role"].isin(["baseline", "chimera"])]
    if not singles.empty:
        base = singles[singles["role"] == "baseline"]
        base_cfg = base[base["config_id"] == "baseline_default"]
        ref = base_cfg if not base_cfg.empty else base
        headline.update(
            {
                "baseline_runs": len(ref),
                "baseline_tps_mean": stats.mean(ref["tps"].astype(float)),
                "baseline_ttft_ms_mean": stats.mean(ref["ttft_ms"].astype(float)),
            }
        )
        calls = ok_rows(frame, "call")
        base_calls = calls[(calls["role"] == "baseline") & calls["config_id"].isin(ref["config_id"].unique())]
        if not base_calls.empty:
            headline["baseline_tps_cv_pct_over_calls"] = stats.cv_pct(base_calls["tps"].astype(float))
        chim = singles[singles["role"] == "chimera"]
        if not chim.empty:
            per_config = group_table(chim, "tps", ["config_id"])
            impr = chim.groupby("config_id")["tps_improvement_pct"].mean()
            per_config["tps_improvement_pct"] = per_config["config_id"].map(impr)
            per_config["ttft_reduction_pct"] = per_config["config_id"].map(
                chim.groupby("config_id")["ttft_reduction_pct"].mean()
            )
            tables["chimera_per_config"] = per_config
            valid = per_config["tps_improvement_pct"].dropna()
            if not valid.empty:
                best = per_config.iloc[int(np.nanargmax(per_config["tps_improvement_pct"].to_numpy(dtype=float)))]
                headline.update(
                    {
                        "configs": int(valid.size),
                        "configs_beating_baseline_pct": float((valid > 0).mean() * 100),
                        "best_improvement_pct": float(best["tps_improvement_pct"]),
                        "best_improvement_config": str(best["config_id"]),
                    }
                )
            headline["chimera_best_config_mean_tps"] = float(per_config["mean"].max())
            headline["chimera_max_run_tps"] = float(chim["tps"].astype(float).max())
    return OriginalSummary(report=rep, headline=headline, tables=tables)


def import_and_summarize(csv_path: Path, report: str | None = None, *, spec: Spec | None = None) -> OriginalSummary:
    """`invoke analyze --import FILE --report trNNN`: import records, recompute the published figures."""
    return summarize(import_original(csv_path, report, spec=spec), report)


def format_summary(summary: OriginalSummary) -> str:
    """Plain text for the terminal: one headline figure per line, rounded like the reports (2 decimals)."""
    lines = [f"{summary.report}: figures recomputed from the records"]
    width = max((len(k) for k in summary.headline), default=0)
    for key, value in summary.headline.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"  {key:<{width}}  {shown}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- beyond the originals


def roofline_tps(model_bytes: float | None, bandwidth_gbps: float | None) -> float | None:
    """Upper bound of batch-1 decode: every token reads the weights once, so tok/s ≤ bandwidth / bytes.
    ``None`` when either input is absent: never guessed."""
    if not model_bytes or not bandwidth_gbps or model_bytes <= 0 or bandwidth_gbps <= 0:
        return None
    return bandwidth_gbps * 1e9 / model_bytes


def roofline_table(frame: pd.DataFrame, model_bytes: float | None, bandwidth_gbps: float | None) -> pd.DataFrame:
    """Mean per-agent, per-call and aggregate throughput per config as a % of the bandwidth roofline."""
    bound = roofline_tps(model_bytes, bandwidth_gbps)
    parts = []
    agents = ok_rows(frame, "agent")
    if not agents.empty:
        t = group_table(agents, "tps", ["config_id", "role"])
        t["figure"] = "tps"
        parts.append(t)
    multi = ok_rows(frame, "multi")
    if not multi.empty:
        t = group_table(multi, "aggregate_tps", ["config_id"])
        t["role"] = "pair"
        t["figure"] = "aggregate_tps"
        parts.append(t)
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)[["config_id", "role", "figure", "n", "mean"]]
    out["roofline_tps"] = bound if bound is not None else math.nan
    out["pct_of_roofline"] = out["mean"] / bound * 100 if bound is not None else math.nan
    return out


def reconciliation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Client vs server per role: chunks vs eval_count, client decode span vs eval_duration, client vs server
    rate. Only the kit's own calls have the client-side columns; imports give an empty table."""
    calls = ok_rows(frame, "call", run_kind=None)
    calls = calls[calls["chunk_count"].notna() & calls["eval_s"].notna()]
    if calls.empty:
        return pd.DataFrame()
    out = []
    for role, grp in calls.groupby("role", sort=True):
        out.append(
            {
                "role": role,
                "calls": len(grp),
                "chunks_sum": float(grp["chunk_count"].sum()),
                "eval_count_sum": float(grp["tokens"].sum()),
                "token_gap_mean": stats.mean(grp["token_gap"].astype(float)),
                "decode_span_ratio_mean": stats.mean(grp["decode_span_ratio"].astype(float)),
                "client_tps_mean": stats.mean(grp["client_tps"].astype(float)),
                "server_tps_mean": stats.mean(grp["tps"].astype(float)),
            }
        )
    return pd.DataFrame(out)


def efficiency_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Per config: the originals' efficiency beside the true efficiency and aggregate tokens per wall s."""
    multi = ok_rows(frame, "multi")
    if multi.empty:
        return pd.DataFrame()
    g = multi.groupby("config_id", sort=True)
    return pd.DataFrame(
        {
            "config_label": g["config_label"].first(),
            "n": g.size(),
            "efficiency_pct": g["efficiency_pct"].mean(),
            "true_efficiency_pct": g["true_efficiency_pct"].mean(),
            "aggregate_tps": g["aggregate_tps"].mean(),
            "a_tps": g["a_tps"].mean(),
            "b_tps": g["b_tps"].mean(),
        }
    ).reset_index()
