"""One summary shape for every error figure of the bench: count, centre, tails and extremes."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from harness.analysis import stats


class Spread(BaseModel):
    """Percentiles interpolate linearly (:func:`harness.analysis.stats.percentile`); ``abs_*`` are of ``|x|``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int
    mean: float | None
    median: float | None
    p1: float | None
    p10: float | None
    p90: float | None
    p99: float | None
    min: float | None
    max: float | None
    abs_median: float | None
    abs_p99: float | None


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value


def spread(values: Sequence[float]) -> Spread:
    """Summarise ``values`` (NaNs dropped); every figure is None when nothing is left."""
    data = [float(v) for v in values if not math.isnan(v)]
    if not data:
        return Spread(n=0, mean=None, median=None, p1=None, p10=None, p90=None, p99=None, min=None, max=None,
                      abs_median=None, abs_p99=None)  # fmt: skip
    return Spread(
        n=len(data),
        mean=_num(stats.mean(data)),
        median=_num(stats.median(data)),
        p1=_num(stats.percentile(data, 1)),
        p10=_num(stats.percentile(data, 10)),
        p90=_num(stats.percentile(data, 90)),
        p99=_num(stats.percentile(data, 99)),
        min=min(data),
        max=max(data),
        abs_median=_num(stats.median([abs(v) for v in data])),
        abs_p99=_num(stats.percentile([abs(v) for v in data], 99)),
    )
