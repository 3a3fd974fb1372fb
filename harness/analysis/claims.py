"""What the data says about one claim: the rows it is about, its statistic, the interval and the identity.

Shared by both judging regimes (:mod:`harness.analysis.verdicts`): the selection and the statistic are the same
whether the rows are the originals' records or the kit's runs; only the rule that compares them differs.
Works on the tidy table (passed in as a DataFrame: this module reads no files).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypedDict

import numpy as np
import pandas as pd

from harness.analysis import stats
from harness.protocol.spec import Claim

MULTI_METRICS = frozenset({"efficiency_pct", "true_efficiency_pct", "speedup", "contention", "aggregate_tps"})
"""Metrics that live on the ``multi`` rows; every other metric is judged on ``agent`` rows by default."""
LOWER_IS_BETTER = frozenset({"ttft_ms", "peak_memory_mb", "startup_s"})
"""For these the best config is the one with the smallest mean."""
DISPERSION = frozenset({"std", "cv_pct", "p5", "median", "max", "min"})
"""Statistics of a distribution of runs: a design with one run per config cannot estimate them."""
_FILTER_ONLY = {"level", "run_kind", "kind"}
PERCENT_BOUNDED = frozenset({"efficiency_pct"})
"""Metrics whose formula cannot leave 0–100 % (exec ≤ wall for each agent)."""


def possible_range(claim: Claim) -> tuple[float, float]:
    """What the claim's statistic can possibly be: bands and intervals are clipped to it."""
    if claim.relative_to is not None or claim.metric in ("tps_improvement_pct", "ttft_reduction_pct"):
        return -math.inf, math.inf
    if claim.statistic in ("count", "fraction"):
        return 0.0, 100.0
    if claim.metric in PERCENT_BOUNDED and claim.statistic not in ("std", "cv_pct"):
        return 0.0, 100.0
    return 0.0, math.inf


class _Base(TypedDict):
    n_runs: int
    groups: dict[str, int]
    identity: str


class NotInData(Exception):
    """The claim's identity (its rows, config, runtime, phase) is absent from the data: nothing to compare."""


@dataclass(frozen=True)
class Measurement:
    """The claim's statistic over the selected rows."""

    value: float
    interval: stats.Interval
    n: int
    """values the statistic is over: runs, or configs when the claim is over configs"""
    n_runs: int
    groups: dict[str, int]
    """runs per config among the selected rows"""
    identity: str
    winner: str | None = None
    named_rank: int | None = None
    named_value: float | None = None
    successes: int | None = None
    ranking: list[tuple[str, float]] = field(default_factory=list)

    @property
    def min_group(self) -> int | None:
        return min(self.groups.values()) if self.groups else None


def claim_level(claim: Claim) -> str:
    return claim.where.get("level") or ("multi" if claim.metric in MULTI_METRICS else "agent")


def _matches(series: pd.Series, wanted: str) -> pd.Series:
    """Column equality with the filter's string: booleans and numbers compare by value (``80`` = ``80.0``)."""
    text = wanted.strip()
    if text.lower() in ("true", "false"):
        want = text.lower() == "true"
        return series.map(lambda v: isinstance(v, bool | np.bool_) and bool(v) == want).astype(bool)
    as_text = series.astype(str).str.lower() == text.lower()
    try:
        number = float(text)
    except ValueError:
        return as_text
    return as_text | (pd.to_numeric(series, errors="coerce") == number)


def _filtered(frame: pd.DataFrame, claim: Claim, where: dict[str, str]) -> pd.DataFrame:
    if frame.empty:
        raise NotInData("the data holds no rows")
    if claim.metric not in frame.columns:
        raise NotInData(f"metric {claim.metric!r} is not a column of the table")
    run_kind = where.get("run_kind", where.get("kind", "protocol"))
    level = where.get("level") or claim_level(claim)
    mask = (frame["level"] == level) & frame["ok"].eq(True) & (frame["run_kind"] == run_kind)
    for column, wanted in where.items():
        if column in _FILTER_ONLY:
            continue
        if column not in frame.columns:
            raise NotInData(f"the data has no column {column!r} to select {column} = {wanted}")
        hit = _matches(frame[column], wanted)
        if f"{column}_original" in frame.columns:
            hit |= _matches(frame[f"{column}_original"], wanted)
        if not (mask & hit).any():
            raise NotInData(f"the data holds no successful {level} row with {column} = {wanted}")
        mask &= hit
    rows = frame[mask]
    rows = rows[rows[claim.metric].notna()]
    if rows.empty:
        raise NotInData(f"no selected {level} row has a {claim.metric} value")
    return rows


def config_ids(rows: pd.DataFrame, name: str) -> set[str]:
    """Config ids that ``name`` denotes: an id, or the options label of the rows (``80/2048/1.0``)."""
    wanted = name.strip().lower()
    ids = {str(c) for c in rows["config_id"].unique() if str(c).lower() == wanted}
    if ids:
        return ids
    return {
        str(c) for c, label in zip(rows["config_id"], rows["config_label"], strict=True) if str(label).lower() == wanted
    }


def select(frame: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    """The successful rows the claim is about; raises :class:`NotInData` naming what is missing."""
    rows = _filtered(frame, claim, claim.where)
    if claim.config is not None and claim.statistic != "best_config_mean":
        ids = config_ids(rows, claim.config)
        if not ids:
            raise NotInData(f"the data holds no config {claim.config!r} among the selected rows")
        rows = rows[rows["config_id"].astype(str).isin(ids)]
    return rows


def _values(rows: pd.DataFrame, metric: str) -> np.ndarray:
    return np.asarray([float(v) for v in rows[metric]], dtype=float)


def _groups(rows: pd.DataFrame, metric: str) -> list[tuple[str, np.ndarray]]:
    return [(str(k), _values(g, metric)) for k, g in rows.groupby("config_id", sort=True)]


def _identity(rows: pd.DataFrame, claim: Claim) -> str:
    parts = [f"{k} = {v}" for k, v in claim.where.items() if k not in _FILTER_ONLY]
    configs = sorted({str(c) for c in rows["config_id"]})
    if len(configs) == 1:
        label = str(rows["config_label"].iloc[0])
        parts.append(f"config {configs[0]}" + (f" ({label})" if label and label != configs[0] else ""))
    else:
        parts.append(f"{len(configs)} configs")
    return ", ".join(parts)


_STATS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": stats.mean,
    "median": stats.median,
    "std": stats.sample_std,
    "cv_pct": stats.cv_pct,
    "p5": lambda v: stats.percentile(v, 5),
    "max": lambda v: float(v.max()) if v.size else math.nan,
    "min": lambda v: float(v.min()) if v.size else math.nan,
}


def _is_percent(unit: str) -> bool:
    return unit.strip().lower() in ("%", "pct", "percent")


def measure(
    frame: pd.DataFrame, claim: Claim, *, level: float = stats.DEFAULT_LEVEL, seed: int = stats.DEFAULT_SEED
) -> Measurement:
    """The claim's statistic and interval: t for means, exact binomial for counts and rates, seeded stratified
    bootstrap (resampling runs inside each config) for everything else; the interval is clipped to what the
    statistic can possibly be (a t interval of efficiencies near 100 % does not reach past it)."""
    m = _measure(frame, claim, level=level, seed=seed)
    low, high = possible_range(claim)
    ci = m.interval
    if math.isfinite(ci.low) and math.isfinite(ci.high):
        ci = stats.Interval(max(ci.low, low), min(ci.high, high), ci.level, ci.method)
    return replace(m, interval=ci)


def _measure(frame: pd.DataFrame, claim: Claim, *, level: float, seed: int) -> Measurement:
    rows = select(frame, claim)
    groups = _groups(rows, claim.metric)
    sizes = {k: int(v.size) for k, v in groups}
    base = _Base(n_runs=len(rows), groups=sizes, identity=_identity(rows, claim))
    stat = claim.statistic
    if claim.relative_to is not None:
        return _relative(frame, rows, claim, base, level=level, seed=seed)
    if stat == "best_config_mean" and claim.config is None:
        config_means = [float(g.mean()) for _k, g in groups]
        best = (min if claim.metric in LOWER_IS_BETTER else max)(config_means)
        return Measurement(best, stats.NO_INTERVAL, len(groups), **base)
    if stat == "best_config_mean":
        labels = {str(k): str(v) for k, v in rows.groupby("config_id")["config_label"].first().items()}
        return _best_config(groups, claim, base, labels, level=level)
    if stat in ("count", "fraction") and rows[claim.metric].map(_is_bool).all():
        hits = int(sum(bool(v) for v in rows[claim.metric]))
        ci = stats.binomial_interval(hits, len(rows), level)
        scale = 100.0 if _is_percent(claim.unit) else 1.0
        if stat == "count":
            return Measurement(float(hits), ci.scaled(100.0), len(rows), successes=hits, **base)
        return Measurement(hits / len(rows) * scale, ci.scaled(scale), len(rows), successes=hits, **base)
    if stat == "fraction":
        means = np.asarray([g.mean() for _k, g in groups])
        hits = int((means > 0).sum())
        scale = 100.0 if _is_percent(claim.unit) else 1.0
        ci = stats.binomial_interval(hits, len(means), level).scaled(scale)
        return Measurement(hits / len(means) * scale, ci, len(means), successes=hits, **base)
    fn = _STATS.get(stat)
    if fn is None:
        raise ValueError(f"unknown statistic {stat!r}")
    if claim.over == "configs":
        means = np.asarray([g.mean() for _k, g in groups])

        def over_configs(gs: list[np.ndarray]) -> float:
            return fn(np.asarray([g.mean() for g in gs]))

        ci = stats.bootstrap_interval([g for _k, g in groups], over_configs, level=level, seed=seed)
        if stat == "mean":
            ci = stats.t_interval(means, level)
        return Measurement(fn(means), ci, len(means), **base)
    values = _values(rows, claim.metric)
    if stat == "mean":
        return Measurement(stats.mean(values), stats.t_interval(values, level), values.size, **base)

    def stratified(gs: list[np.ndarray]) -> float:
        return fn(np.concatenate(gs))

    ci = stats.bootstrap_interval([g for _k, g in groups], stratified, level=level, seed=seed)
    return Measurement(fn(values), ci, values.size, **base)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def _best_config(
    groups: list[tuple[str, np.ndarray]],
    claim: Claim,
    base: _Base,
    labels: dict[str, str],
    *,
    level: float,
) -> Measurement:
    """The winning config, and where the config the report names ranks; the interval is the named one's mean."""
    lower = claim.metric in LOWER_IS_BETTER
    ranking = sorted(((k, float(g.mean())) for k, g in groups), key=lambda kv: kv[1], reverse=not lower)
    winner, best = ranking[0]
    wanted = (claim.config or "").strip().lower()
    named = {k for k, _g in groups if k.lower() == wanted} or {
        k for k, _g in groups if labels.get(k, "").lower() == wanted
    }
    if not named:
        raise NotInData(f"the data holds no config {claim.config!r}, the one the report names best")
    rank = next(i for i, (k, _v) in enumerate(ranking, 1) if k in named)
    named_id, named_value = ranking[rank - 1]
    named_values = dict(groups)[named_id]
    return Measurement(
        best,
        stats.t_interval(named_values, level),
        len(groups),
        winner=winner,
        named_rank=rank,
        named_value=named_value,
        ranking=ranking,
        n_runs=base["n_runs"],
        groups=base["groups"],
        identity=f"config {named_id} ({labels.get(named_id, '')})",
    )


def _relative(
    frame: pd.DataFrame,
    rows: pd.DataFrame,
    claim: Claim,
    base: _Base,
    *,
    level: float,
    seed: int,
) -> Measurement:
    """% difference of the statistic over ``where`` rows against ``relative_to`` rows, bootstrapped jointly."""
    other = _filtered(
        frame, claim, {**{k: v for k, v in claim.where.items() if k in _FILTER_ONLY}, **(claim.relative_to or {})}
    )
    fn = _STATS.get(claim.statistic)
    if fn is None:
        raise ValueError(f"statistic {claim.statistic!r} cannot be relative")
    a, b = _values(rows, claim.metric), _values(other, claim.metric)

    def pct(gs: list[np.ndarray]) -> float:
        ref = fn(gs[1])
        return (fn(gs[0]) - ref) / ref * 100 if ref else math.nan

    ci = stats.bootstrap_interval([a, b], pct, level=level, seed=seed)
    return Measurement(pct([a, b]), ci, int(a.size + b.size), **base)
