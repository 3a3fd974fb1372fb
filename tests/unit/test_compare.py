"""`harness compare A B`: two reproductions of one report, per claim and per metric, with tests and drift."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from harness.cli import main
from harness.compare import difference, hedges_g
from tests.unit.conftest import LOCAL_ARGS, ROOT


@pytest.fixture(scope="module")
def other_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same rehearsal as the session's local artifact, with another simulator seed."""
    out = tmp_path_factory.mktemp("seed") / "tr110-seed7"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.setenv("HARNESS_SIM_SEED", "7")
        assert main([*LOCAL_ARGS, "--out", str(out)]) == 0
    return out


def test_two_rehearsals_with_different_seeds_compare(
    local_artifact: Path, other_seed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", str(local_artifact), str(other_seed), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# TR110: comparison of two reproductions")
    doc = json.loads((out / "comparison.json").read_text())
    assert doc["schema_version"] == 1 and doc["report"] == "tr110"
    assert doc["simulated_a"] and doc["simulated_b"]
    tags = {m["name"] for m in doc["metrics"]}
    assert {"time_to_first_token", "inter_token_latency", "request_latency", "efficiency_original"} <= tags
    ttft = next(m for m in doc["metrics"] if m["name"] == "time_to_first_token")
    assert ttft["n_a"] >= 2 and ttft["verdict"] in ("significant difference", "no significant difference")
    assert ttft["difference"] == pytest.approx(ttft["mean_b"] - ttft["mean_a"])
    # one protocol run per side: the claims cannot be tested, and the comparison says so instead of a verdict
    assert doc["claims"] and all(c["verdict"].startswith("not testable") for c in doc["claims"])
    # the seed is the environment fact that differs; volatile facts (time, argv, port) are not listed
    keys = [row[0] for row in doc["drift"]]
    assert "run.settings.sim_seed" in keys
    assert not any(k.startswith(("captured_at", "run.command.")) for k in keys)
    assert (out / "comparison.md").read_text() == printed


def test_folders_of_two_reports_exit_2(
    local_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "tr109-like"
    shutil.copytree(local_artifact, other)
    sweep = json.loads((other / "sweep.json").read_text())
    sweep["report"] = "tr109"
    (other / "sweep.json").write_text(json.dumps(sweep))
    out = tmp_path / "cmp"
    assert main(["compare", str(local_artifact), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "tr110" in err and "tr109" in err
    assert not out.exists()


def test_a_rehearsal_against_a_measurement_needs_allow_mixed(
    local_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    measured = tmp_path / "measured"
    shutil.copytree(local_artifact, measured)
    sweep = json.loads((measured / "sweep.json").read_text())
    sweep["simulated"] = False
    (measured / "sweep.json").write_text(json.dumps(sweep))
    assert main(["compare", str(local_artifact), str(measured)]) == 2
    assert "--allow-mixed" in capsys.readouterr().err
    assert main(["compare", str(local_artifact), str(measured), "--allow-mixed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["simulated_b"] is False


def test_a_folder_that_is_not_an_artifact_folder_exits_2(local_artifact: Path, tmp_path: Path) -> None:
    assert main(["compare", str(local_artifact), str(tmp_path)]) == 2


def test_difference_matches_scipy_welch_and_finds_a_real_shift() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(100, 5, 40), rng.normal(110, 5, 40)
    d = difference("x", "ms", a, b)
    ref = sps.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert d.difference == pytest.approx(b.mean() - a.mean())
    assert (d.ci_low, d.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d.welch_p == pytest.approx(ref.pvalue)
    assert d.verdict == "significant difference" and d.hedges_g is not None and d.hedges_g > 1


def test_difference_says_no_significant_difference_for_one_distribution() -> None:
    rng = np.random.default_rng(4)
    d = difference("x", "ms", rng.normal(100, 5, 30), rng.normal(100, 5, 30))
    assert d.verdict == "no significant difference"
    assert d.ci_low is not None and d.ci_high is not None and d.ci_low < 0 < d.ci_high


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [([1.0], [1.0, 2.0], "n = 1 and 2"), ([3.0, 3.0], [3.0, 3.0], "no spread"), ([], [], "n = 0 and 0")],
)
def test_difference_refuses_to_judge_what_it_cannot(a: list[float], b: list[float], why: str) -> None:
    d = difference("x", "ms", a, b)
    assert d.verdict.startswith("not testable") and why in d.verdict
    assert d.welch_p is None and d.ci_low is None


def test_hedges_g_of_a_known_pair() -> None:
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0, 5.0, 6.0])
    # pooled sd = sqrt(5/3); d = 2 / 1.291 = 1.549; J = 1 - 3 / (4*8 - 9) = 0.8696
    assert hedges_g(a, b) == pytest.approx(2 / math.sqrt(5 / 3) * (1 - 3 / 23))
    assert math.isnan(hedges_g(a[:1], b))
