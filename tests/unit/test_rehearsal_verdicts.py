"""A rehearsal with one run per config (local simulator executor) cannot reproduce a spread, a best config or a
count: it says so in the verdict itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.analysis import measured, verdicts
from harness.cli import main
from harness.protocol.spec import Claim

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["reproduce", "--report", "tr110", "--backend", "sim", "--runs", "1", "--time-scale", "0.01"]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rehearsal") / "tr110"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        assert main([*ARGS, "--configs", "^(013|014|107|108)$", "--executor", "local", "--out", str(out)]) == 0
    return out


def test_one_run_per_config_gives_no_reproduced_spread_or_best_config(rehearsal: Path) -> None:
    doc = json.loads((rehearsal / "report" / "verdicts.json").read_text(encoding="utf-8"))
    assert doc["regime"] == "re-measurement" and doc["simulated"] is True
    judged = {v["claim_id"]: v for v in doc["verdicts"]}
    assert all(v["verdict"].startswith("rehearsal_") for v in judged.values())
    for claim_id in ("tr110.peak_config", "tr110.homo.std", "tr110.homo.peak"):
        assert judged[claim_id]["verdict"] == "rehearsal_inconclusive", judged[claim_id]
        assert judged[claim_id]["runs_per_group_min"] == 1
    report = (rehearsal / "report" / "report.md").read_text(encoding="utf-8")
    assert "one run per config" in report and "mean ± σ" not in report


def test_a_count_from_one_run_per_config_is_inconclusive(rehearsal: Path) -> None:
    frame = measured.load_artifacts(rehearsal).frame
    count = Claim.model_validate(
        {
            "id": "count",
            "statement": "contention in 1 of 135 runs",
            "metric": "contention",
            "statistic": "count",
            "value": "1",
            "unit": "runs",
            "runs": 135,
            "source": "test",
            "comparability": "portable",
            "tolerance": 2.0,
            "tolerance_why": "percentage points of the rate",
        }
    )
    v = verdicts.judge_remeasurement(count, frame, gpu_name=None, simulated=True)
    assert v.verdict == "rehearsal_inconclusive" and v.ci_method == "exact binomial" and v.n_runs == 4
