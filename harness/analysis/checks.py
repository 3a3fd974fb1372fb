"""Verdicts: every published claim beside the value the tidy table gives, with an interval and a reason.

A claim is ``reproduced`` when the published value lies inside the confidence interval of the measured
statistic, or within the tolerance (the claim's own, else the noise threshold of :mod:`harness.analysis.stats`, plus
half a unit of the published value's last digit: the reports rounded). It is ``not_comparable`` when the spec
says so, when it is hardware-bound (absolute tok/s, ms, MB) and the GPU is not the originals' one, or when no
successful run matches its filter. Runs against the simulator are still judged, but every verdict is flagged
as a rehearsal: the simulator never stands in for a measurement.

Works on the table of :mod:`harness.analysis.frames` (passed in as a DataFrame, so this module reads no files).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from harness.analysis import stats
from harness.protocol.spec import Claim
from harness.schemas import VERDICTS_SCHEMA_VERSION

ORIGINAL_GPU = "RTX 4080 Laptop GPU"
"""The originals' GPU; NVML calls it "NVIDIA GeForce RTX 4080 Laptop GPU", so names are matched by inclusion."""

Verdict = Literal["reproduced", "not_reproduced", "not_comparable"]

MULTI_METRICS = frozenset({"efficiency_pct", "true_efficiency_pct", "speedup", "contention", "aggregate_tps"})
"""Metrics that live on the ``multi`` rows; every other metric is judged on ``agent`` rows by default."""
LOWER_IS_BETTER = frozenset({"ttft_ms", "peak_memory_mb", "startup_s"})
"""For these the best config is the one with the smallest mean."""
_FILTER_ONLY = {"level", "run_kind", "kind"}


class ClaimVerdict(BaseModel):
    """One claim judged; ``measured`` is shown even when the verdict is not_comparable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_id: str
    statement: str
    metric: str
    statistic: str
    where: dict[str, str]
    unit: str
    source: str
    comparability: str
    published: float
    measured: float | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    ci_method: str
    difference: float | None
    threshold: float | None
    n: int
    verdict: Verdict
    reason: str
    rehearsal: bool


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _matches(series: pd.Series, wanted: str) -> pd.Series:
    """Column equality with the filter's string: booleans and numbers compare by value (``80`` = ``80.0``)."""
    text = wanted.strip()
    if text.lower() in ("true", "false"):
        want = text.lower() == "true"
        return series.map(lambda v: isinstance(v, bool | np.bool_) and bool(v) == want).astype(bool)
    as_text = series.astype(str) == text
    try:
        number = float(text)
    except ValueError:
        return as_text
    return as_text | (pd.to_numeric(series, errors="coerce") == number)


def claim_level(claim: Claim) -> str:
    return claim.where.get("level") or ("multi" if claim.metric in MULTI_METRICS else "agent")


def claim_rows(frame: pd.DataFrame, claim: Claim) -> tuple[pd.DataFrame, str | None]:
    """The successful rows a claim is about, or a reason why none can be selected."""
    if frame.empty:
        return frame, "no runs in the table"
    if claim.metric not in frame.columns:
        return frame.iloc[0:0], f"metric {claim.metric!r} is not a column of the table"
    run_kind = claim.where.get("run_kind", claim.where.get("kind", "protocol"))
    mask = (frame["level"] == claim_level(claim)) & frame["ok"].eq(True) & (frame["run_kind"] == run_kind)
    for column, wanted in claim.where.items():
        if column in _FILTER_ONLY:
            continue
        if column not in frame.columns:
            return frame.iloc[0:0], f"filter on unknown column {column!r}"
        hit = _matches(frame[column], wanted)
        if f"{column}_original" in frame.columns:
            hit |= _matches(frame[f"{column}_original"], wanted)
        mask &= hit
    rows = frame[mask]
    rows = rows[rows[claim.metric].notna()]
    if rows.empty:
        flt = ", ".join(f"{k}={v}" for k, v in claim.where.items()) or "no filter"
        return rows, f"no successful {claim_level(claim)} row with a {claim.metric} value matches ({flt})"
    return rows, None


def _values(rows: pd.DataFrame, metric: str) -> np.ndarray:
    return np.asarray([float(v) for v in rows[metric]], dtype=float)


def _is_percent(unit: str) -> bool:
    return unit.strip().lower() in ("%", "pct", "percent")


def measure(
    rows: pd.DataFrame, claim: Claim, *, level: float = stats.DEFAULT_LEVEL, seed: int = stats.DEFAULT_SEED
) -> tuple[float, stats.Interval]:
    """The claim's statistic over ``rows`` and its interval (t for means, seeded bootstrap otherwise, exact
    for counts)."""
    values = _values(rows, claim.metric)
    stat = claim.statistic

    def boot(fn: Callable[[list[np.ndarray]], float], groups: Sequence[np.ndarray] | None = None) -> stats.Interval:
        return stats.bootstrap_interval(groups or [values], fn, level=level, seed=seed)

    if stat == "mean":
        return stats.mean(values), stats.t_interval(values, level)
    if stat == "median":
        return stats.median(values), boot(lambda g: stats.median(g[0]))
    if stat == "std":
        return stats.sample_std(values), boot(lambda g: stats.sample_std(g[0]))
    if stat == "cv_pct":
        return stats.cv_pct(values), boot(lambda g: stats.cv_pct(g[0]))
    if stat == "p5":
        return stats.percentile(values, 5), boot(lambda g: stats.percentile(g[0], 5))
    if stat == "max":
        return float(values.max()), boot(lambda g: float(g[0].max()))
    if stat == "min":
        return float(values.min()), boot(lambda g: float(g[0].min()))
    if stat == "count":
        count = float((values != 0).sum()) if rows[claim.metric].map(_is_bool).all() else float(values.size)
        return count, stats.Interval(count, count, level, "exact")
    scale = 100.0 if _is_percent(claim.unit) else 1.0
    if stat == "fraction":
        if rows[claim.metric].map(_is_bool).all():
            return float(values.mean()) * scale, boot(lambda g: float(g[0].mean()) * scale)
        groups = _config_groups(rows, claim.metric)
        means = np.asarray([g.mean() for g in groups])
        return float((means > 0).mean()) * scale, boot(
            lambda gs: float(np.mean([g.mean() > 0 for g in gs])) * scale, groups
        )
    if stat == "best_config_mean":
        groups = _config_groups(rows, claim.metric)
        pick: Callable[[list[float]], float] = min if claim.metric in LOWER_IS_BETTER else max
        return pick([float(g.mean()) for g in groups]), boot(lambda gs: pick([float(g.mean()) for g in gs]), groups)
    raise ValueError(f"unknown statistic {stat!r}")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _config_groups(rows: pd.DataFrame, metric: str) -> list[np.ndarray]:
    return [_values(grp, metric) for _key, grp in rows.groupby("config_id", sort=True)]


def rounding_allowance(published: float) -> float:
    """Half a unit of the published value's last decimal (98.72 → 0.005): the reports rounded."""
    text = repr(float(published))
    if "e" in text:
        return 0.0
    decimals = len(text.partition(".")[2].rstrip("0"))
    return 0.5 * 10.0**-decimals


def same_gpu(gpu_name: str | None) -> bool:
    return gpu_name is not None and ORIGINAL_GPU.lower() in gpu_name.lower()


def judge_claim(
    claim: Claim,
    frame: pd.DataFrame,
    *,
    gpu_name: str | None,
    simulated: bool,
    level: float = stats.DEFAULT_LEVEL,
    seed: int = stats.DEFAULT_SEED,
    rel_floor_pct: float = stats.REL_NOISE_FLOOR_PCT,
) -> ClaimVerdict:
    """Judge one claim against the table; see the module docstring for the rules."""
    base: dict[str, Any] = {
        "claim_id": claim.id,
        "statement": claim.statement,
        "metric": claim.metric,
        "statistic": claim.statistic,
        "where": dict(claim.where),
        "unit": claim.unit,
        "source": claim.source,
        "comparability": claim.comparability,
        "published": claim.value,
        "ci_level": level,
        "rehearsal": simulated,
    }
    prefix = "SIMULATED rehearsal, not a measurement: " if simulated else ""
    rows, problem = claim_rows(frame, claim)
    if problem is not None:
        return ClaimVerdict(
            **base,
            measured=None,
            ci_low=None,
            ci_high=None,
            ci_method="none",
            difference=None,
            threshold=None,
            n=0,
            verdict="not_comparable",
            reason=prefix + problem,
        )
    measured, ci = measure(rows, claim, level=level, seed=seed)
    values = _values(rows, claim.metric)
    if claim.tolerance is not None:
        threshold, source = claim.tolerance, "the claim's tolerance"
    elif claim.statistic == "mean":
        threshold, source = stats.noise_threshold(values, level=level, rel_floor_pct=rel_floor_pct), "noise"
    elif claim.statistic == "count":
        threshold, source = 0.0, "exact count"
    else:
        threshold, source = abs(measured) * rel_floor_pct / 100, f"{rel_floor_pct:g} % of the value"
    threshold += rounding_allowance(claim.value)
    diff = measured - claim.value
    filled = {
        **base,
        "measured": _finite(measured),
        "ci_low": _finite(ci.low),
        "ci_high": _finite(ci.high),
        "ci_method": ci.method,
        "difference": _finite(diff),
        "threshold": _finite(threshold),
        "n": len(rows),
    }
    if math.isnan(measured):
        return ClaimVerdict(
            **filled,
            verdict="not_comparable",
            reason=prefix + f"{claim.statistic} needs more than {len(rows)} value(s)",
        )
    if claim.comparability == "not_comparable":
        why = claim.note or "the spec marks this claim as not comparable"
        return ClaimVerdict(**filled, verdict="not_comparable", reason=prefix + why)
    if claim.comparability == "hardware_bound" and not same_gpu(gpu_name):
        where = gpu_name or "an unknown GPU"
        return ClaimVerdict(
            **filled,
            verdict="not_comparable",
            reason=prefix + f"hardware-bound figure: measured on {where}, published on the {ORIGINAL_GPU}",
        )
    shown = f"{measured:.4g} {claim.unit}".strip()
    if ci.contains(claim.value):
        verdict: Verdict = "reproduced"
        reason = f"published {claim.value:g} lies inside the {level:.0%} {ci.method} interval of {shown}"
    elif abs(diff) <= threshold:
        verdict = "reproduced"
        reason = f"difference {diff:+.3g} is within the threshold {threshold:.3g} ({source})"
    else:
        verdict = "not_reproduced"
        reason = f"measured {shown}: difference {diff:+.3g} exceeds the threshold {threshold:.3g} ({source})"
    return ClaimVerdict(**filled, verdict=verdict, reason=prefix + reason)


def judge_claims(
    claims: Sequence[Claim],
    frame: pd.DataFrame,
    *,
    gpu_name: str | None,
    simulated: bool,
    level: float = stats.DEFAULT_LEVEL,
    seed: int = stats.DEFAULT_SEED,
    rel_floor_pct: float = stats.REL_NOISE_FLOOR_PCT,
) -> list[ClaimVerdict]:
    """Every claim of a spec, in the spec's order."""
    return [
        judge_claim(
            c, frame, gpu_name=gpu_name, simulated=simulated, level=level, seed=seed, rel_floor_pct=rel_floor_pct
        )
        for c in claims
    ]


def verdicts_document(
    verdicts: Sequence[ClaimVerdict],
    *,
    report: str,
    origin: str,
    simulated: bool,
    gpu_name: str | None,
) -> dict[str, Any]:
    """The body of verdicts.json (with ``schema_version``): counts first, then every verdict."""
    counts = {v: sum(1 for x in verdicts if x.verdict == v) for v in ("reproduced", "not_reproduced", "not_comparable")}
    return {
        "schema_version": VERDICTS_SCHEMA_VERSION,
        "report": report,
        "origin": origin,
        "simulated": simulated,
        "gpu_name": gpu_name,
        "original_gpu": ORIGINAL_GPU,
        "counts": counts,
        "verdicts": [v.model_dump(mode="json") for v in verdicts],
    }
