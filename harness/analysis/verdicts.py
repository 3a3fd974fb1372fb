"""Verdicts: every published claim judged by the rule that fits where the data came from.

Two regimes, named in every verdict:

- **recomputation** (``analyze --import``: the originals' own records). The published figure is a deterministic
  function of the data, so the rule is equality at the printed precision (``98.281`` → ±0.0005) *and* identity:
  the same config, runtime, phase and number of runs the claim names. ``matches``, ``differs`` (with the data's
  value and the difference) or ``not_in_the_data`` (the claim's source is not among the records).
- **re-measurement** (``reproduce``: the kit's own runs). An equivalence judgement against the band the spec
  declares per claim (``tolerance``, with ``tolerance_why``): ``reproduced`` when the whole interval lies inside
  the band, ``not_reproduced`` when it lies wholly outside, ``inconclusive`` when it straddles the band or the
  data cannot give an interval (a config with fewer than two runs for a distribution statistic, zero width, no
  band declared), ``not_comparable`` when the environment differs in what the claim depends on (absolute tok/s
  on another GPU). A run against the simulator keeps its judgement with the ``rehearsal_`` prefix.

Identity claims (``best_config_mean``) check which config won and report the named one's rank and value; count
claims compare rates with their denominators (exact binomial interval), never raw counts across different n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.analysis import claims, stats
from harness.analysis.claims import Measurement, NotInData
from harness.analysis.engine import other_engine
from harness.protocol.spec import Claim
from harness.schemas import REHEARSAL_PREFIX, VERDICTS_SCHEMA_VERSION, ClaimVerdict, Regime

ORIGINAL_GPU = "RTX 4080 Laptop GPU"
"""The originals' GPU; NVML calls it "NVIDIA GeForce RTX 4080 Laptop GPU", so names are matched by inclusion."""
_FLOAT_SLACK = 1e-9
"""Relative slack on the equality band: binary floats cannot hold 98.2805 exactly."""


def same_gpu(gpu_name: str | None) -> bool:
    return gpu_name is not None and ORIGINAL_GPU.lower() in gpu_name.lower()


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _g(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if math.isfinite(value) else str(value)


def _published_identity(claim: Claim) -> str:
    parts = [f"{k} = {v}" for k, v in claim.where.items()]
    if claim.config:
        parts.append(("best config " if claim.statistic == "best_config_mean" else "config ") + claim.config)
    if claim.runs:
        parts.append(f"{claim.runs} runs")
    if claim.over == "configs":
        parts.append("over config means")
    return ", ".join(parts) or "all runs"


def _base(claim: Claim, regime: Regime, rehearsal: bool, level: float) -> dict[str, Any]:
    return {
        "claim_id": claim.id,
        "statement": claim.statement,
        "regime": regime,
        "rehearsal": rehearsal,
        "metric": claim.metric,
        "statistic": claim.statistic,
        "over": claim.over,
        "where": dict(claim.where),
        "unit": claim.unit,
        "source": claim.source,
        "comparability": claim.comparability,
        "published": claim.value,
        "published_text": claim.published,
        "published_identity": _published_identity(claim),
        "ci_level": level,
    }


def _filled(base: dict[str, Any], m: Measurement | None, published: float) -> dict[str, Any]:
    if m is None:
        return {
            **base,
            "measured": None,
            "measured_identity": "",
            "n": 0,
            "n_runs": 0,
            "runs_per_group_min": None,
            "ci_low": None,
            "ci_high": None,
            "ci_method": "none",
            "difference": None,
        }
    return {
        **base,
        "measured": _num(m.value),
        "measured_identity": _measured_identity(m),
        "n": m.n,
        "n_runs": m.n_runs,
        "runs_per_group_min": m.min_group,
        "ci_low": _num(m.interval.low),
        "ci_high": _num(m.interval.high),
        "ci_method": m.interval.method,
        "difference": _num(m.value - published),
    }


def _measured_identity(m: Measurement) -> str:
    text = f"{m.identity}; {m.n_runs} run{'' if m.n_runs == 1 else 's'}"
    if m.successes is not None:
        text += f", {m.successes} of {m.n_runs if m.n == m.n_runs else m.n}"
    if m.winner is not None:
        text += f"; best config {m.winner}"
        if m.named_rank is not None and m.named_value is not None:
            text += f"; the named config ranks {m.named_rank} of {len(m.ranking)} at {_g(m.named_value, 6)}"
    return text


# ------------------------------------------------------------------------------------------------ recomputation


def judge_recomputation(
    claim: Claim, frame: pd.DataFrame, *, level: float = stats.DEFAULT_LEVEL, seed: int = stats.DEFAULT_SEED
) -> ClaimVerdict:
    """Equality at the printed precision plus identity, on the originals' own records."""
    base = _base(claim, "recomputation", False, level)
    slack = _FLOAT_SLACK * max(1.0, abs(claim.value))
    band = (claim.value - claim.half_unit - slack, claim.value + claim.half_unit + slack)
    no_band = {"band_low": None, "band_high": None, "tolerance_why": ""}
    why = f"equality at the printed precision: {claim.published} ± {claim.half_unit:g}"
    try:
        m = claims.measure(frame, claim, level=level, seed=seed)
    except NotInData as exc:
        return ClaimVerdict(**_filled(base, None, claim.value), **no_band, verdict="not_in_the_data", reason=str(exc))
    filled = {**_filled(base, m, claim.value), "band_low": band[0], "band_high": band[1], "tolerance_why": why}
    if not math.isfinite(m.value):
        reason = f"{claim.statistic} cannot be computed from {m.n} value(s) of these records"
        return ClaimVerdict(**filled, verdict="not_in_the_data", reason=reason)
    shown = f"{_g(m.value, 8)} {claim.unit}".strip()
    diff = m.value - claim.value
    if claim.statistic == "count" and claim.runs is not None and m.n_runs != claim.runs:
        reason = (
            f"the data counts {m.successes} of {m.n_runs} runs; the report's {claim.published} is of "
            f"{claim.runs} runs: counts over different n do not compare"
        )
        return ClaimVerdict(**filled, verdict="differs", reason=reason)
    if claim.runs is not None and m.n_runs != claim.runs:
        reason = f"the data gives {shown} over {m.n_runs} runs; the report's figure is over {claim.runs} runs"
        return ClaimVerdict(**filled, verdict="differs", reason=reason)
    in_band = band[0] <= m.value <= band[1]
    if claim.statistic == "best_config_mean" and claim.config is not None:
        return _judge_identity(claim, m, filled, in_band)
    if claim.gaps():
        gaps = "; ".join(claim.gaps())
        shown += f" (identity not checked: the spec gives {gaps})"
    if claim.config is not None:
        shown += f" for config {claim.config}"
    if in_band:
        reason = f"the data gives {shown}, equal to the published {claim.published} at its precision"
        return ClaimVerdict(**filled, verdict="matches", reason=reason)
    reason = f"the data gives {shown}: {diff:+.4g} from the published {claim.published} (± {claim.half_unit:g})"
    return ClaimVerdict(**filled, verdict="differs", reason=reason + _explain(claim, frame, level, seed))


def _judge_identity(claim: Claim, m: Measurement, filled: dict[str, Any], in_band: bool) -> ClaimVerdict:
    named_won = m.named_rank == 1
    value = m.named_value if m.named_value is not None else math.nan
    if named_won and in_band:
        reason = f"config {m.winner} wins with {_g(m.value, 8)}, the config and value the report names"
        return ClaimVerdict(**filled, verdict="matches", reason=reason)
    if named_won:
        reason = f"the named config wins, but with {_g(m.value, 8)}, not {claim.published}"
        return ClaimVerdict(**filled, verdict="differs", reason=reason)
    reason = (
        f"config {m.winner} wins with {_g(m.value, 8)}; the named config {claim.config} ranks {m.named_rank} of "
        f"{len(m.ranking)} with {_g(value, 8)}"
    )
    return ClaimVerdict(**filled, verdict="differs", reason=reason)


def _explain(claim: Claim, frame: pd.DataFrame, level: float, seed: int) -> str:
    """For a differing efficiency figure: what it would be without the contention runs (a common omission)."""
    if claim.metric != "efficiency_pct" or "contention" in claim.where or claim.statistic != "mean":
        return ""
    rows = claims.select(frame, claim)
    contended = int(rows["contention"].eq(True).sum())
    if not contended:
        return ""
    narrowed = claim.model_copy(update={"where": {**claim.where, "contention": "false"}})
    try:
        other = claims.measure(frame, narrowed, level=level, seed=seed).value
    except NotInData:
        return ""
    agrees = abs(other - claim.value) <= claim.half_unit + _FLOAT_SLACK * max(1.0, abs(claim.value))
    return f"; without the {contended} contention runs (speedup < 1.5) it is {_g(other, 6)}" + (
        ", which the published figure matches: it leaves them out" if agrees else ""
    )


# ----------------------------------------------------------------------------------------------- re-measurement


def judge_remeasurement(
    claim: Claim,
    frame: pd.DataFrame,
    *,
    gpu_name: str | None,
    simulated: bool,
    backend: str | None = None,
    level: float = stats.DEFAULT_LEVEL,
    seed: int = stats.DEFAULT_SEED,
) -> ClaimVerdict:
    """Equivalence of the kit's measurement with the published value, within the spec's band; ``backend`` is the
    sweep's (another engine than Ollama cannot judge absolute, hardware-bound figures)."""
    base = _base(claim, "re-measurement", simulated, level)
    band = _band(claim)
    bands = {
        "band_low": band[0] if band else None,
        "band_high": band[1] if band else None,
        "tolerance_why": claim.tolerance_why or "",
    }
    try:
        m: Measurement | None = claims.measure(frame, claim, level=level, seed=seed)
    except NotInData as exc:
        m, missing = None, str(exc)
    else:
        missing = ""
    filled = {**_filled(base, m, claim.value), **bands}
    verdict, reason = _remeasure_rule(claim, m, missing, band, gpu_name, other_engine(backend))
    if simulated:
        verdict = REHEARSAL_PREFIX + verdict
        reason = "SIMULATED rehearsal, not a measurement: " + reason
    return ClaimVerdict(**filled, verdict=verdict, reason=reason)


def _band(claim: Claim) -> tuple[float, float] | None:
    """The equivalence band; for counts it is on the rate (% of runs), the tolerance in percentage points."""
    if claim.tolerance is None:
        return None
    centre = claim.value
    if claim.statistic == "count" and claim.runs:
        centre = claim.value / claim.runs * 100
    low, high = claims.possible_range(claim)
    return max(centre - claim.tolerance, low), min(centre + claim.tolerance, high)


def _remeasure_rule(
    claim: Claim,
    m: Measurement | None,
    missing: str,
    band: tuple[float, float] | None,
    gpu_name: str | None,
    engine: str | None = None,
) -> tuple[str, str]:
    if claim.comparability == "not_comparable":
        return "not_comparable", claim.note or "the spec marks this claim as not comparable"
    if claim.comparability == "hardware_bound" and engine is not None:
        return "not_comparable", (
            f"hardware-bound figure: measured on {engine}, not on Ollama; absolute figures of another engine are "
            f"not judged against the {ORIGINAL_GPU}'s"
        )
    if claim.comparability == "hardware_bound" and not same_gpu(gpu_name):
        return "not_comparable", (
            f"hardware-bound figure: measured on {gpu_name or 'an unknown GPU'}, published on the {ORIGINAL_GPU}"
        )
    if m is None:
        return "inconclusive", f"nothing measured for this claim: {missing}"
    if claim.statistic in ("count", "best_config_mean") and claim.gaps():
        return "inconclusive", "the spec gives " + "; ".join(claim.gaps())
    if band is None:
        return "inconclusive", "the spec declares no tolerance for this claim, so no equivalence can be judged"
    needs_runs = claim.statistic in claims.DISPERSION or claim.statistic == "best_config_mean"
    if needs_runs and (m.min_group or 0) < 2:
        return "inconclusive", (
            f"{claim.statistic} needs at least two runs in every config; the fewest here is {m.min_group} "
            "(one run per config cannot estimate run-to-run spread)"
        )
    ci = m.interval
    if not ci.usable:
        return "inconclusive", f"no interval of positive width from {m.n_runs} run(s): [{_g(ci.low)}, {_g(ci.high)}]"
    unit = "% of runs" if claim.statistic == "count" else claim.unit
    where = f"{ci.level:.0%} {ci.method} interval [{_g(ci.low)}, {_g(ci.high)}] {unit}"
    band_text = f"band [{_g(band[0])}, {_g(band[1])}]" + ("" if claim.tolerance_why else " (the spec gives no reason)")
    if claim.statistic == "best_config_mean" and m.named_rank != 1:
        if ci.high < band[0] or ci.low > band[1]:
            return "not_reproduced", f"config {m.winner} wins; the named config's {where} lies outside the {band_text}"
        return "inconclusive", f"config {m.winner} wins, not {claim.config} (rank {m.named_rank}); {where}"
    if band[0] <= ci.low and ci.high <= band[1]:
        return "reproduced", f"the {where} lies inside the {band_text}"
    if ci.high < band[0] or ci.low > band[1]:
        return "not_reproduced", f"the {where} lies outside the {band_text}"
    return "inconclusive", f"the {where} straddles the {band_text}"


# ----------------------------------------------------------------------------------------------------- together


def judge_claims(
    claim_list: Sequence[Claim],
    frame: pd.DataFrame,
    *,
    regime: Regime,
    gpu_name: str | None = None,
    simulated: bool = False,
    backend: str | None = None,
    level: float = stats.DEFAULT_LEVEL,
    seed: int = stats.DEFAULT_SEED,
) -> list[ClaimVerdict]:
    """Every claim of a spec, in the spec's order, under one regime (``backend``: the sweep's, re-measurement)."""
    if regime == "recomputation":
        return [judge_recomputation(c, frame, level=level, seed=seed) for c in claim_list]
    return [
        judge_remeasurement(c, frame, gpu_name=gpu_name, simulated=simulated, backend=backend, level=level, seed=seed)
        for c in claim_list
    ]


def counts(verdicts: Sequence[ClaimVerdict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in verdicts:
        out[v.verdict] = out.get(v.verdict, 0) + 1
    return dict(sorted(out.items()))


def verdicts_document(
    verdicts: Sequence[ClaimVerdict],
    *,
    report: str,
    regime: Regime,
    origin: str,
    simulated: bool,
    gpu_name: str | None,
) -> dict[str, Any]:
    """The body of verdicts.json (with ``schema_version``): regime and counts first, then every verdict."""
    return {
        "schema_version": VERDICTS_SCHEMA_VERSION,
        "report": report,
        "regime": regime,
        "origin": origin,
        "simulated": simulated,
        "gpu_name": gpu_name,
        "original_gpu": ORIGINAL_GPU,
        "counts": counts(verdicts),
        "verdicts": [v.model_dump(mode="json") for v in verdicts],
    }


def verdict_table(verdicts: Sequence[ClaimVerdict]) -> str:
    """Plain text for the terminal: one claim per line, then its reason indented."""
    lines = []
    width = max((len(v.claim_id) for v in verdicts), default=0)
    for v in verdicts:
        measured = "—" if v.measured is None else _g(v.measured, 6)
        lines.append(
            f"{v.claim_id:<{width}}  {v.verdict.replace('_', ' '):<26} published {v.published_text:>8}  "
            f"data {measured:>8}  n={v.n_runs}"
        )
        lines.append(f"{'':<{width}}    {v.reason}")
    return "\n".join(lines)
