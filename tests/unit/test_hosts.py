"""Spread between hosts beside within one host, computed by hand on a small table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.analysis.hosts import HostsReport, claim_spread, render_markdown
from harness.protocol.spec import Claim


def _claim(**where: str) -> Claim:
    return Claim(
        id="c1", statement="s", metric="efficiency_pct", statistic="mean", value=90.0, unit="%",
        where=dict(where), source="p. 1", comparability="portable",
    )  # fmt: skip


def _frame(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for run_id, vals in values.items():
        for v in vals:
            rows.append({"run_id": run_id, "level": "multi", "ok": True, "run_kind": "protocol", "efficiency_pct": v})
    return pd.DataFrame(rows)


def test_two_environments_give_pooled_within_and_between_spread() -> None:
    # host A: runs 80, 84 (a run with two rows is reduced to its mean); host B: runs 90, 92, 94
    frame = _frame({"a1": [79.0, 81.0], "a2": [84.0], "b1": [90.0], "b2": [92.0], "b3": [94.0], "x": [10.0]})
    envs = {"a1": ("fpA", "hostA"), "a2": ("fpA", "hostA"), "b1": ("fpB", "hostB"), "b2": ("fpB", "h2")}
    envs["b3"] = ("fpB", "hostB")
    spread = claim_spread(frame, _claim(), envs)
    groups = {g.fingerprint_sha256: g for g in spread.groups}
    assert groups["fpA"].n_runs == 2 and groups["fpA"].mean == pytest.approx(82.0)
    assert groups["fpB"].hostnames == ["h2", "hostB"] and groups["fpB"].mean == pytest.approx(92.0)
    # pooled: ((2-1)·8 + (3-1)·4) / (1 + 2) = 16/3
    assert spread.within_host_sd == pytest.approx(math.sqrt(16 / 3))
    assert spread.between_host_sd == pytest.approx(math.sqrt(50.0))
    assert spread.between_host_range == pytest.approx(10.0)
    table = render_markdown(HostsReport(environments=2, runs_with_node=5, claims=[spread]))
    assert "| c1 | efficiency_pct (%) |" in table and "fpA (2: 82)" in table


def test_one_environment_has_no_between_host_figure_and_unnamed_runs_are_left_out() -> None:
    frame = _frame({"a1": [80.0], "a2": [82.0], "gone": [10.0]})
    spread = claim_spread(frame, _claim(), {"a1": ("fp", "h"), "a2": ("fp", "h")})
    assert spread.between_host_sd is None and spread.within_host_sd == pytest.approx(math.sqrt(2.0))
    assert spread.note == "one environment: no between-host figure"


def test_a_claim_no_run_matches_says_why() -> None:
    spread = claim_spread(_frame({"a1": [80.0]}), _claim(runtime="tokio"), {"a1": ("fp", "h")})
    assert spread.groups == [] and spread.note
