"""Verdict logic on a table with a known difference (no reference data needed)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from harness.analysis import checks
from harness.protocol.spec import Claim


def _frame() -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for i in range(20):
        for config, runtime, base in (("c1", "tokio-default", 90.0), ("c2", "smol", 96.0)):
            eff = base + (i % 5 - 2) * 0.5  # mean = base, sample σ ≈ 0.73
            rows.append(
                {
                    "level": "multi",
                    "ok": True,
                    "run_kind": "protocol",
                    "config_id": config,
                    "runtime": runtime,
                    "runtime_original": runtime.upper(),
                    "run_index": i + 1,
                    "efficiency_pct": eff,
                    "contention": i < 2,
                    "tps": None,
                }
            )
    rows.append({"level": "agent", "ok": True, "run_kind": "protocol", "config_id": "c1", "tps": 100.0})
    rows.append({"level": "agent", "ok": False, "run_kind": "protocol", "config_id": "c1", "tps": 1.0})
    return pd.DataFrame(rows)


def claim(value: float, **kw: Any) -> Claim:
    body: dict[str, Any] = {
        "id": "c",
        "statement": "s",
        "metric": "efficiency_pct",
        "statistic": "mean",
        "value": value,
        "unit": "%",
        "source": "test",
        "comparability": "portable",
        "where": {"runtime": "tokio-default"},
    }
    body.update(kw)
    return Claim(**body)


def judge(c: Claim, **kw: Any) -> checks.ClaimVerdict:
    return checks.judge_claim(c, _frame(), gpu_name=kw.pop("gpu_name", None), simulated=kw.pop("simulated", False))


def test_reproduced_inside_the_interval_and_not_reproduced_beyond_noise() -> None:
    ok = judge(claim(90.1))
    assert ok.verdict == "reproduced" and ok.n == 20 and ok.measured == pytest.approx(90.0)
    assert ok.ci_low is not None and ok.ci_low < 90.1 < (ok.ci_high or 0)
    bad = judge(claim(95.0))
    assert bad.verdict == "not_reproduced" and bad.difference == pytest.approx(-5.0)
    assert "exceeds the threshold" in bad.reason


def test_noise_threshold_accepts_a_small_difference_outside_the_interval() -> None:
    # interval half width ≈ 0.34; 1 % of 90 = 0.9: 90.8 is outside the interval but inside the noise
    near = judge(claim(90.8))
    assert near.ci_high is not None and near.ci_high < 90.8
    assert near.verdict == "reproduced" and "within the threshold" in near.reason
    assert judge(claim(91.2)).verdict == "not_reproduced"
    assert judge(claim(91.2, tolerance=1.5)).verdict == "reproduced"


def test_hardware_bound_needs_the_originals_gpu() -> None:
    c = claim(100.0, metric="tps", unit="tok/s", comparability="hardware_bound", where={})
    other = judge(c, gpu_name="NVIDIA H100 80GB HBM3")
    assert other.verdict == "not_comparable" and other.measured == 100.0  # failed run left out
    same = judge(c, gpu_name="NVIDIA GeForce RTX 4080 Laptop GPU")
    assert same.verdict == "reproduced"


def test_not_comparable_cases_and_rehearsal() -> None:
    assert judge(claim(90.0, comparability="not_comparable", note="why")).reason == "why"
    none = judge(claim(90.0, where={"runtime": "nope"}))
    assert none.verdict == "not_comparable" and none.n == 0
    unknown = judge(claim(90.0, where={"colour": "red"}))
    assert unknown.verdict == "not_comparable" and "unknown column" in unknown.reason
    sim = judge(claim(90.0), simulated=True)
    assert sim.rehearsal and sim.verdict == "reproduced" and sim.reason.startswith("SIMULATED")


def test_other_statistics() -> None:
    assert judge(claim(96.0, statistic="best_config_mean", where={})).verdict == "reproduced"
    count = judge(claim(4, metric="contention", statistic="count", unit="runs", where={}))
    assert count.measured == 4 and count.verdict == "reproduced"
    assert judge(claim(5, metric="contention", statistic="count", unit="runs", where={})).verdict == ("not_reproduced")
    frac = judge(claim(10.0, metric="contention", statistic="fraction", where={}))
    assert frac.measured == pytest.approx(10.0)
    assert judge(claim(91.0, statistic="max")).measured == pytest.approx(91.0)
    assert judge(claim(89.0, statistic="min")).verdict == "reproduced"
    no_contention = judge(claim(96.0, where={"contention": "false", "runtime": "smol"}))
    assert no_contention.n == 18
    # a runtime filter also matches the original's label
    assert judge(claim(90.0, where={"runtime": "TOKIO-DEFAULT"})).n == 20


def test_rounding_allowance_and_document() -> None:
    assert checks.rounding_allowance(98.72) == pytest.approx(0.005)
    assert checks.rounding_allowance(603.5) == pytest.approx(0.05)
    verdicts = checks.judge_claims([claim(90.0), claim(95.0)], _frame(), gpu_name=None, simulated=False)
    doc = checks.verdicts_document(verdicts, report="tr115", origin="kit", simulated=False, gpu_name=None)
    assert doc["schema_version"] == 1
    assert doc["counts"] == {"reproduced": 1, "not_reproduced": 1, "not_comparable": 0}
