"""Two reproductions of one report side by side (a consumer beside analysis: it also reads the environment
through evidence.verify): this host against another, today against last month.

``verify --against`` answers "did the environment change"; this answers "did the numbers change, and by more
than noise". Per claim (the samples the claim's statistic is computed over) and per metric (the distribution
blocks), it gives both values, the difference of means with a Welch interval, Welch's t and Mann–Whitney's U,
Hedges' g, and says "no significant difference" when neither test rejects. The environment drift is shown beside
it, because a difference between two GPUs is not a regression.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.analysis import claims, distributions
from harness.analysis.measured import KitData, load_artifacts
from harness.errors import BadInputError
from harness.evidence.verify import Drift, environment_drift
from harness.protocol.spec import Claim, Spec, load_spec
from harness.schemas import COMPARISON_SCHEMA_VERSION

ALPHA = 0.05
"""Both tests reject at this level before a difference is called significant."""


@dataclass(frozen=True)
class Difference:
    """One quantity measured in both folders: B − A, its interval and the tests."""

    name: str
    unit: str
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    welch_p: float | None
    mann_whitney_p: float | None
    hedges_g: float | None
    verdict: str
    """``significant difference``, ``no significant difference`` or ``not testable (…)`` with the reason."""


@dataclass
class Comparison:
    report: str
    folder_a: str
    folder_b: str
    simulated_a: bool
    simulated_b: bool
    claims: list[Difference] = field(default_factory=list)
    metrics: list[Difference] = field(default_factory=list)
    drift: list[tuple[str, str, str]] = field(default_factory=list)
    """(dotted provenance key, value in A, value in B) for every environment fact that differs."""
    schema_version: int = COMPARISON_SCHEMA_VERSION


def _finite(values: Any) -> np.ndarray:
    data = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    return data[np.isfinite(data)]


def _num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference (B − A) with the small-sample correction; NaN when undefined."""
    n1, n2 = a.size, b.size
    if n1 < 2 or n2 < 2:
        return math.nan
    pooled = math.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0:
        return math.nan
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    return float((b.mean() - a.mean()) / pooled * correction)


def difference(name: str, unit: str, a_values: Any, b_values: Any, *, level: float = 0.95) -> Difference:
    """B − A for one quantity. Fewer than two samples on a side, or no spread at all, is not testable: said so,
    never turned into a verdict."""
    a, b = _finite(a_values), _finite(b_values)
    mean_a = float(a.mean()) if a.size else math.nan
    mean_b = float(b.mean()) if b.size else math.nan
    diff = mean_b - mean_a
    low = high = welch_p = mw_p = math.nan
    if a.size < 2 or b.size < 2:
        verdict = f"not testable (n = {a.size} and {b.size}; two samples per side are needed)"
    elif a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        verdict = "not testable (no spread in either folder)"
    else:
        welch = sps.ttest_ind(b, a, equal_var=False)
        ci = welch.confidence_interval(confidence_level=level)
        low, high, welch_p = float(ci.low), float(ci.high), float(welch.pvalue)
        mw_p = float(sps.mannwhitneyu(b, a, alternative="two-sided").pvalue)
        both = welch_p < ALPHA and mw_p < ALPHA
        verdict = "significant difference" if both else "no significant difference"
    return Difference(
        name=name,
        unit=unit,
        n_a=int(a.size),
        n_b=int(b.size),
        mean_a=_num(mean_a),
        mean_b=_num(mean_b),
        difference=_num(diff),
        ci_low=_num(low),
        ci_high=_num(high),
        ci_level=level,
        welch_p=_num(welch_p),
        mann_whitney_p=_num(mw_p),
        hedges_g=_num(hedges_g(a, b)),
        verdict=verdict,
    )


def claim_samples(frame: pd.DataFrame, claim: Claim) -> pd.Series:
    """The samples a claim's statistic is computed over, picked exactly as the verdicts pick them
    (:func:`harness.analysis.claims.select`); none when the folder does not hold them."""
    try:
        rows = claims.select(frame, claim)
    except claims.NotInData:
        return pd.Series([], dtype=float)
    return pd.to_numeric(rows[claim.metric].astype(float), errors="coerce")


def _spec_of(data: KitData) -> Spec | None:
    path = data.root / "spec.toml"
    return load_spec(path) if path.is_file() else None


def _report_of(data: KitData) -> str:
    if data.sweep is not None:
        return data.sweep.report
    reports = sorted({str(r) for r in data.frame.get("report", pd.Series([], dtype=str)).dropna().unique()})
    if len(reports) != 1:
        raise BadInputError(f"{data.root}: cannot tell which report it holds", hint="pass a folder from reproduce")
    return reports[0]


def compare_folders(folder_a: Path, folder_b: Path, *, allow_mixed: bool = False) -> Comparison:
    """Compare two artifact folders of the same report. Different reports, or a rehearsal against a measurement
    (unless ``allow_mixed``), cannot be compared: :class:`BadInputError`."""
    a, b = load_artifacts(folder_a), load_artifacts(folder_b)
    report_a, report_b = _report_of(a), _report_of(b)
    if report_a != report_b:
        raise BadInputError(
            f"{folder_a} holds {report_a} and {folder_b} holds {report_b}: only reproductions of one report compare",
            hint="pass two folders made by `reproduce --report` of the same report",
        )
    if a.simulated != b.simulated and not allow_mixed:
        which = folder_a if a.simulated else folder_b
        raise BadInputError(
            f"{which} is a SIMULATED rehearsal and the other folder is a measurement",
            hint="compare like with like, or pass --allow-mixed to see the numbers anyway",
        )
    out = Comparison(report_a, str(folder_a), str(folder_b), a.simulated, b.simulated)
    spec = _spec_of(a) or _spec_of(b)
    for claim in spec.claims if spec is not None else []:
        out.claims.append(
            difference(claim.id, claim.unit, claim_samples(a.frame, claim), claim_samples(b.frame, claim))
        )
    for source in distributions.METRICS:
        rows_a, rows_b = distributions.sample_rows(a.frame, source), distributions.sample_rows(b.frame, source)
        if rows_a.empty and rows_b.empty:
            continue
        out.metrics.append(difference(source.tag, source.unit, rows_a[source.column], rows_b[source.column]))
    out.drift = _drift_rows(environment_drift(folder_a, folder_b))
    return out


VOLATILE_FACTS = ("captured_at", "run.command.", "ollama.base_url")
"""Provenance facts that differ between any two reproductions (when, the exact argv, an ephemeral port): shown
beside every comparison they would bury the drift that can explain a difference."""


def _drift_rows(drift: Drift) -> list[tuple[str, str, str]]:
    rows = [(k, _short(x), _short(y)) for k, x, y in drift.changed]
    rows += [(k, _short(x), "—") for k, x in drift.only_left]
    rows += [(k, "—", _short(y)) for k, y in drift.only_right]
    return [r for r in rows if not r[0].startswith(VOLATILE_FACTS)]


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def to_json(comparison: Comparison) -> str:
    """The comparison as a versioned JSON document (NaN never appears: absent values are null)."""
    return json.dumps(asdict(comparison), indent=2, sort_keys=True) + "\n"


def _cell(value: float | None, digits: int = 2) -> str:
    return distributions.fmt(value, digits)


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _table(rows: list[Difference]) -> list[str]:
    head = (
        "| quantity | A (mean) | B (mean) | B − A | 95 % interval | Welch p | Mann–Whitney p | Hedges' g "
        "| n A / B | verdict |"
    )
    out = [head, "|" + "---|" * 10]
    for d in rows:
        interval = f"[{_cell(d.ci_low)}, {_cell(d.ci_high)}]" if d.ci_low is not None else "—"
        out.append(
            f"| {d.name} ({d.unit}) | {_cell(d.mean_a)} | {_cell(d.mean_b)} | {_cell(d.difference)} | {interval} "
            f"| {_p(d.welch_p)} | {_p(d.mann_whitney_p)} | {_cell(d.hedges_g)} | {d.n_a} / {d.n_b} | {d.verdict} |"
        )
    return out


def to_markdown(comparison: Comparison) -> str:
    """A reader's view: claims first, then metrics, then what differs in the environment."""
    c = comparison
    marks = {True: "SIMULATED rehearsal", False: "measurement"}
    lines = [
        f"# {c.report.upper()}: comparison of two reproductions",
        "",
        f"- A: `{c.folder_a}` ({marks[c.simulated_a]})",
        f"- B: `{c.folder_b}` ({marks[c.simulated_b]})",
        "",
        f"A difference is called significant only when Welch's t and Mann–Whitney's U both reject at {ALPHA}.",
        "",
        "## Claims (the samples each claim is computed over)",
        "",
    ]
    lines += _table(c.claims) if c.claims else ["No claims: neither folder holds its spec.toml."]
    lines += ["", "## Metrics (every successful protocol call or run)", ""]
    lines += _table(c.metrics) if c.metrics else ["No metric has samples in either folder."]
    lines += ["", "## Environment drift", ""]
    if c.drift:
        lines += ["| fact | A | B |", "|---|---|---|"]
        lines += [f"| {k} | {x} | {y} |" for k, x, y in c.drift]
    else:
        lines.append("The recorded environments do not differ.")
    return "\n".join(lines) + "\n"
