"""Descriptive statistics, confidence intervals, tests and stability warnings: pure, no I/O.

The originals quoted bare means and sample standard deviations; a reproduction needs to say how sure it is.
Everything here works on plain sequences of floats so the analysis, the checks and the tests share one
definition of each figure: σ is always the sample standard deviation (n − 1), percentiles interpolate linearly
(numpy's default), and every random resampling takes a seed so a report rebuilt from the same artifacts is
identical byte for byte.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _sp

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20251115
CV_WARN_PCT = 10.0
MIN_RUNS = 3
SLOW_FIRST_FACTOR = 1.2
REL_NOISE_FLOOR_PCT = 1.0
"""Differences below this share of the value are never called a difference (clock and scheduler noise)."""


def _arr(values: ArrayLike) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    return data[~np.isnan(data)]


def mean(values: ArrayLike) -> float:
    data = _arr(values)
    return float(data.mean()) if data.size else math.nan


def median(values: ArrayLike) -> float:
    data = _arr(values)
    return float(np.median(data)) if data.size else math.nan


def sample_std(values: ArrayLike) -> float:
    """σ with n − 1 in the denominator, as the reports computed it; NaN below two values."""
    data = _arr(values)
    return float(data.std(ddof=1)) if data.size >= 2 else math.nan


def cv_pct(values: ArrayLike) -> float:
    """Coefficient of variation, sample σ / mean · 100."""
    m = mean(values)
    return sample_std(values) / abs(m) * 100 if m else math.nan


def percentile(values: ArrayLike, q: float) -> float:
    """The q-th percentile (0–100), linear interpolation between order statistics."""
    data = _arr(values)
    return float(np.percentile(data, q)) if data.size else math.nan


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    median: float
    std: float
    cv_pct: float
    p5: float
    p95: float
    min: float
    max: float


def summarize(values: ArrayLike) -> Summary:
    data = _arr(values)
    return Summary(
        n=int(data.size),
        mean=mean(data),
        median=median(data),
        std=sample_std(data),
        cv_pct=cv_pct(data),
        p5=percentile(data, 5),
        p95=percentile(data, 95),
        min=float(data.min()) if data.size else math.nan,
        max=float(data.max()) if data.size else math.nan,
    )


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval; ``method`` names how it was obtained (t, bootstrap, exact)."""

    low: float
    high: float
    level: float
    method: str

    def contains(self, value: float) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high)) and self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def usable(self) -> bool:
        """Finite and of positive width: an interval of zero width says nothing about the uncertainty."""
        return math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low

    def scaled(self, factor: float) -> Interval:
        return Interval(self.low * factor, self.high * factor, self.level, self.method)


NO_INTERVAL = Interval(math.nan, math.nan, DEFAULT_LEVEL, "none")


def t_interval(values: ArrayLike, level: float = DEFAULT_LEVEL) -> Interval:
    """Student-t interval of the mean (needs two values)."""
    data = _arr(values)
    if data.size < 2:
        return Interval(math.nan, math.nan, level, "t")
    se = float(data.std(ddof=1)) / math.sqrt(data.size)
    if se == 0:
        m = float(data.mean())
        return Interval(m, m, level, "t")
    low, high = _sp.t.interval(level, data.size - 1, loc=float(data.mean()), scale=se)
    return Interval(float(low), float(high), level, "t")


def binomial_interval(successes: int, n: int, level: float = DEFAULT_LEVEL) -> Interval:
    """Exact (Clopper–Pearson) interval of a proportion ``successes / n``, from scipy; NaN without trials."""
    if n <= 0:
        return Interval(math.nan, math.nan, level, "exact binomial")
    ci = _sp.binomtest(successes, n).proportion_ci(confidence_level=level, method="exact")
    return Interval(float(ci.low), float(ci.high), level, "exact binomial")


def bootstrap_interval(
    groups: Sequence[ArrayLike],
    statistic: Callable[[list[np.ndarray]], float],
    *,
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Percentile bootstrap; each group is resampled with replacement on its own (stratified), so a statistic
    over groups (the best config mean) keeps the design. Seeded: the same input gives the same interval."""
    data = [_arr(g) for g in groups]
    data = [g for g in data if g.size]
    if not data or sum(g.size for g in data) < 2:
        return Interval(math.nan, math.nan, level, "bootstrap")

    # scipy resamples samples of two or more; a one-value group resamples to itself, so it is held fixed
    free = [i for i, g in enumerate(data) if g.size >= 2]
    if not free:
        value = statistic(data)
        return Interval(value, value, level, "bootstrap")

    def over_samples(*samples: np.ndarray) -> float:
        full = list(data)
        for i, sample in zip(free, samples, strict=True):
            full[i] = sample
        return statistic(full)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate resample distribution is reported as a zero-width interval
        res = _sp.bootstrap(
            tuple(data[i] for i in free),
            over_samples,
            n_resamples=resamples,
            confidence_level=level,
            method="percentile",
            vectorized=False,
            paired=False,
            rng=np.random.default_rng(seed),
        )
    return Interval(float(res.confidence_interval.low), float(res.confidence_interval.high), level, "bootstrap")


@dataclass(frozen=True)
class TestResult:
    name: str
    statistic: float
    p_value: float


def welch_t(a: ArrayLike, b: ArrayLike) -> TestResult:
    """Welch's two-sample t-test (unequal variances)."""
    x, y = _arr(a), _arr(b)
    if x.size < 2 or y.size < 2:
        return TestResult("welch_t", math.nan, math.nan)
    res = _sp.ttest_ind(x, y, equal_var=False)
    return TestResult("welch_t", float(res.statistic), float(res.pvalue))


def mann_whitney(a: ArrayLike, b: ArrayLike) -> TestResult:
    """Mann–Whitney U, two-sided: no normality assumption (run times are skewed by the odd long answer)."""
    x, y = _arr(a), _arr(b)
    if x.size < 1 or y.size < 1:
        return TestResult("mann_whitney_u", math.nan, math.nan)
    res = _sp.mannwhitneyu(x, y, alternative="two-sided")
    return TestResult("mann_whitney_u", float(res.statistic), float(res.pvalue))


def noise_threshold(
    values: ArrayLike,
    *,
    level: float = DEFAULT_LEVEL,
    rel_floor_pct: float = REL_NOISE_FLOOR_PCT,
) -> float:
    """The smallest difference from the mean that is claimed at all: the larger of the t-interval half width
    and ``rel_floor_pct`` of the mean. With one value only the relative floor applies."""
    data = _arr(values)
    if not data.size:
        return math.nan
    floor = abs(float(data.mean())) * rel_floor_pct / 100
    ci = t_interval(data, level)
    return max(floor, ci.half_width) if not math.isnan(ci.half_width) else floor


@dataclass(frozen=True)
class Comparison:
    """Two groups side by side: the difference of means, both tests, and whether the difference is claimed."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    difference: float
    threshold: float
    welch: TestResult
    mann_whitney: TestResult
    significant: bool


def compare(
    a: ArrayLike,
    b: ArrayLike,
    *,
    alpha: float = 0.05,
    rel_floor_pct: float = REL_NOISE_FLOOR_PCT,
) -> Comparison:
    """``b − a``; called a difference only when both tests reject at ``alpha`` *and* it exceeds the noise
    threshold of ``a`` (a tiny but consistent offset is not a finding)."""
    x, y = _arr(a), _arr(b)
    w, u = welch_t(x, y), mann_whitney(x, y)
    diff = mean(y) - mean(x)
    threshold = noise_threshold(x, rel_floor_pct=rel_floor_pct)
    significant = w.p_value < alpha and u.p_value < alpha and not math.isnan(diff) and abs(diff) > threshold
    return Comparison(int(x.size), int(y.size), mean(x), mean(y), diff, threshold, w, u, bool(significant))


def stability_warnings(
    values: ArrayLike,
    *,
    label: str,
    durations_in_run_order: ArrayLike | None = None,
    failed_runs: int = 0,
    min_runs: int = MIN_RUNS,
    cv_warn_pct: float = CV_WARN_PCT,
    slow_first_factor: float = SLOW_FIRST_FACTOR,
) -> list[str]:
    """Plain-language warnings about a group of runs: unstable (CV ≥ 10 %), a slow first run (warm-up leaking
    into the measurement), too few runs for an interval, and failed runs (counted, never dropped silently)."""
    data = _arr(values)
    out: list[str] = []
    if failed_runs:
        out.append(f"{label}: {failed_runs} failed run(s); figures use the successful runs only")
    if data.size < min_runs:
        out.append(f"{label}: only {data.size} run(s) (< {min_runs}); intervals are wide or absent")
    cv = cv_pct(data)
    if not math.isnan(cv) and cv >= cv_warn_pct:
        out.append(f"{label}: unstable, CV {cv:.1f} % (≥ {cv_warn_pct:g} %)")
    if durations_in_run_order is not None:
        dur = _arr(durations_in_run_order)
        if dur.size >= 3:
            rest = float(np.median(dur[1:]))
            if rest > 0 and dur[0] > slow_first_factor * rest:
                out.append(
                    f"{label}: first run took {dur[0]:.2f} s, {dur[0] / rest:.2f}× the median of the others "
                    "(warm-up in the measurement?)"
                )
    return out
