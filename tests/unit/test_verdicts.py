"""Both judging regimes: the shipped records judged by recomputation, and the rules of re-measurement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.analysis import claims, originals, verdicts
from harness.protocol.spec import Claim, load_spec
from harness.schemas import ClaimVerdict
from tests.unit.test_analysis_golden import find_reference_data

ROOT = Path(__file__).resolve().parents[2]


def _judged(report: str, csv_name: str) -> dict[str, ClaimVerdict]:
    spec = load_spec(ROOT / "experiments" / f"{report}.toml")
    frame = originals.import_original(find_reference_data() / csv_name, spec=spec)
    return {v.claim_id: v for v in verdicts.judge_claims(spec.claims, frame, regime="recomputation")}


# ------------------------------------------------------------------------------------ the shipped records


def test_every_tr115_claim_matches() -> None:
    judged = _judged("tr115", "tr115v2_runtimes.csv")
    assert len(judged) == 17
    assert {v.verdict for v in judged.values()} == {"matches"}
    assert all(v.regime == "recomputation" and v.n_runs == 30 for v in judged.values())
    assert judged["tr115.async_std.mean"].band_high == pytest.approx(50.005)


def test_tr111_best_chimera_matches_with_its_config() -> None:
    v = _judged("tr111", "tr111v2_rust_single_agent_calls.csv")["tr111.chimera_best_tps"]
    assert v.verdict == "matches" and "gpu60_ctx256_temp0p6" in v.measured_identity
    assert v.measured == pytest.approx(115.94, abs=0.005)


def test_tr109_baselines_are_not_in_the_sweep_records() -> None:
    judged = _judged("tr109", "tr109_python_single_agent.csv")
    assert judged["tr109.baseline_tps"].verdict == "not_in_the_data"
    assert judged["tr109.baseline_ttft"].verdict == "not_in_the_data"
    assert "60/1024/0.3" in judged["tr109.baseline_ttft"].reason
    assert judged["tr109.best_improvement"].verdict == "matches"


def test_tr110_scenarios_are_judged_and_the_958_citation_differs() -> None:
    judged = _judged("tr110", "tr110_python_multiagent.csv")
    for scenario in ("homo", "hetero", "bvc"):
        for stat in ("mean", "std", "peak"):
            assert judged[f"tr110.{scenario}.{stat}"].verdict in ("matches", "differs")
    assert judged["tr110.bvc.mean"].verdict == "matches"
    cited = judged["tr110.mean_cited_by_tr114"]
    assert cited.verdict == "differs" and cited.measured == pytest.approx(93.21, abs=0.005)
    assert "17 contention runs" in cited.reason and "leaves them out" in cited.reason
    assert judged["tr110.peak_config"].verdict == "matches"


# ----------------------------------------------------------------------------------------- synthetic frames


def _frame(values: dict[str, list[float]], *, runtime: str = "tokio") -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for config, effs in values.items():
        for i, eff in enumerate(effs, 1):
            rows.append(
                {
                    "level": "multi",
                    "ok": True,
                    "run_kind": "protocol",
                    "config_id": config,
                    "config_label": config,
                    "runtime": runtime,
                    "run_index": i,
                    "efficiency_pct": eff,
                    "contention": eff < 75,
                    "tps": np.nan,
                }
            )
    return pd.DataFrame(rows)


def _claim(value: Any, **kw: Any) -> Claim:
    base: dict[str, Any] = {
        "id": "c",
        "statement": "s",
        "metric": "efficiency_pct",
        "statistic": "mean",
        "unit": "%",
        "source": "test",
        "comparability": "portable",
    }
    return Claim.model_validate({**base, "value": value, **kw})


BAND = {"tolerance": 1.0, "tolerance_why": "test"}


def test_equality_is_at_the_printed_precision() -> None:
    frame = _frame({"a": [98.0, 98.562]})
    assert verdicts.judge_recomputation(_claim("98.281"), frame).verdict == "matches"
    assert verdicts.judge_recomputation(_claim("98.28"), frame).verdict == "matches"
    off = verdicts.judge_recomputation(_claim("98.283"), frame)
    assert off.verdict == "differs" and off.difference == pytest.approx(-0.002)
    assert verdicts.judge_recomputation(_claim("98.3"), frame).verdict == "matches"
    assert verdicts.judge_recomputation(_claim("98.3", runs=3), frame).verdict == "differs"  # 2 runs, not 3


def test_best_config_checks_which_config_won() -> None:
    frame = _frame({"x": [99.0, 99.2], "y": [96.4, 96.6]})
    right = verdicts.judge_recomputation(_claim("99.1", statistic="best_config_mean", config="x"), frame)
    assert right.verdict == "matches"
    wrong = verdicts.judge_recomputation(_claim("99.1", statistic="best_config_mean", config="y"), frame)
    assert wrong.verdict == "differs" and "ranks 2 of 2" in wrong.reason and "96.5" in wrong.reason
    absent = verdicts.judge_recomputation(_claim("99.1", statistic="best_config_mean", config="z"), frame)
    assert absent.verdict == "not_in_the_data"


def test_counts_compare_only_over_the_same_n() -> None:
    frame = _frame({"a": [99.0] * 26 + [60.0]})
    count = _claim("1", metric="contention", statistic="count", unit="runs", runs=135)
    v = verdicts.judge_recomputation(count, frame)
    assert v.verdict == "differs" and "1 of 27" in v.reason and "135" in v.reason
    same = _claim("1", metric="contention", statistic="count", unit="runs", runs=27)
    assert verdicts.judge_recomputation(same, frame).verdict == "matches"


def test_remeasurement_band_rules() -> None:
    frame = _frame({"a": [98.0, 98.2, 98.1, 98.3], "b": [98.2, 98.0, 98.1, 98.2]})
    judge = verdicts.judge_remeasurement
    assert judge(_claim("98.2", **BAND), frame, gpu_name=None, simulated=False).verdict == "reproduced"
    assert judge(_claim("95.0", **BAND), frame, gpu_name=None, simulated=False).verdict == "not_reproduced"
    assert judge(_claim("99.05", **BAND), frame, gpu_name=None, simulated=False).verdict == "inconclusive"
    assert judge(_claim("98.2"), frame, gpu_name=None, simulated=False).verdict == "inconclusive"  # no band
    rehearsal = judge(_claim("98.2", **BAND), frame, gpu_name=None, simulated=True)
    assert rehearsal.verdict == "rehearsal_reproduced" and rehearsal.reason.startswith("SIMULATED")
    hw = _claim("98.2", comparability="hardware_bound", **BAND)
    assert judge(hw, frame, gpu_name="NVIDIA H100", simulated=False).verdict == "not_comparable"
    assert judge(hw, frame, gpu_name="NVIDIA GeForce RTX 4080 Laptop GPU", simulated=False).verdict == "reproduced"
    # the original GPU, but another engine: absolute figures of llama.cpp are not judged against Ollama's
    other = judge(hw, frame, gpu_name="NVIDIA GeForce RTX 4080 Laptop GPU", simulated=False, backend="llamacpp")
    assert other.verdict == "not_comparable" and "llama.cpp" in other.reason
    assert judge(_claim("98.2", **BAND), frame, gpu_name=None, simulated=False, backend="llamacpp").verdict == (
        "reproduced"
    )  # ratios and percentages still are


def test_bands_and_intervals_stay_inside_what_the_formula_allows() -> None:
    frame = _frame({"a": [99.5, 99.9, 99.99], "b": [99.7, 99.95, 99.8]})
    peak = _claim("99.992", statistic="max", **BAND)
    v = verdicts.judge_remeasurement(peak, frame, gpu_name=None, simulated=False)
    assert v.band_low == pytest.approx(98.992) and v.band_high == 100.0  # never 100.992 %
    mean = verdicts.judge_remeasurement(
        _claim("99.5", **BAND), _frame({"a": [99.9, 95.0]}), gpu_name=None, simulated=False
    )
    assert mean.ci_high == 100.0 and mean.ci_low is not None and mean.ci_low >= 0.0


def test_one_run_per_config_never_reproduces_a_spread_or_a_best_config() -> None:
    frame = _frame({c: [98.0 + i / 10] for i, c in enumerate("abcdef")})
    for claim in (
        _claim("0.2", statistic="std", tolerance=5.0, tolerance_why="wide"),
        _claim("98.5", statistic="max", tolerance=5.0, tolerance_why="wide"),
        _claim("98.5", statistic="best_config_mean", config="f", tolerance=5.0, tolerance_why="wide"),
    ):
        v = verdicts.judge_remeasurement(claim, frame, gpu_name=None, simulated=False)
        assert v.verdict == "inconclusive" and "two runs" in v.reason


def test_count_rates_use_the_exact_binomial_interval() -> None:
    frame = _frame({"a": [99.0] * 27})
    claim = _claim("1", metric="contention", statistic="count", unit="runs", runs=135, **{**BAND, "tolerance": 2.0})
    m = claims.measure(frame, claim)
    assert m.interval.method == "exact binomial" and m.interval.low == 0.0
    assert m.interval.high == pytest.approx(12.77, abs=0.01)  # Clopper–Pearson 0 of 27, in % of runs
    assert verdicts.judge_remeasurement(claim, frame, gpu_name=None, simulated=False).verdict == "inconclusive"


def test_claims_keep_the_printed_precision_and_say_what_they_lack() -> None:
    assert _claim("50.00").half_unit == pytest.approx(0.005)
    assert _claim(72.0).half_unit == pytest.approx(0.05)
    assert _claim(1437).half_unit == pytest.approx(0.5)
    assert _claim("1", tolerance=1.0).gaps() == ["`tolerance` without `tolerance_why`"]
    count = _claim("1", metric="contention", statistic="count", unit="runs", **BAND)
    frame = _frame({"a": [99.0] * 26 + [60.0]})
    assert "denominator" in verdicts.judge_recomputation(count, frame).reason
    assert verdicts.judge_remeasurement(count, frame, gpu_name=None, simulated=False).verdict == "inconclusive"
    best = _claim("99.0", statistic="best_config_mean", **BAND)
    assert "names best" in verdicts.judge_recomputation(best, frame).reason


def test_every_shipped_claim_states_identity_and_a_justified_band() -> None:
    for path in sorted((ROOT / "experiments").glob("tr*.toml")):
        for claim in load_spec(path).claims:
            assert not claim.gaps(), (path.name, claim.id, claim.gaps())
            assert claim.tolerance is not None and claim.tolerance_why, (path.name, claim.id)
            assert claim.published and float(claim.published) == claim.value
