"""AIPerf-shaped metric blocks: the numbers, the empty cases, and summary.json / runs_percentiles.csv."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.analysis import distributions


def test_block_matches_numpy_and_drops_non_finite() -> None:
    values = [5.0, 1.0, float("nan"), 3.0, float("inf"), 2.0, 4.0]
    b = distributions.block(values, "ms")
    clean = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    assert b["count"] == 5 and b["unit"] == "ms"
    assert b["avg"] == pytest.approx(3.0) and b["std"] == pytest.approx(clean.std(ddof=1))
    assert (b["min"], b["max"]) == (1.0, 5.0)
    for p in distributions.PERCENTILES:
        assert b[f"p{p}"] == pytest.approx(np.percentile(clean, p))


def test_block_of_nothing_is_null_not_zero() -> None:
    b = distributions.block([], "ms")
    assert b["count"] == 0 and b["avg"] is None and b["p99"] is None and b["std"] is None


def test_one_sample_has_no_std() -> None:
    b = distributions.block([7.0], "%")
    assert b["count"] == 1 and b["avg"] == 7.0 and b["std"] is None and b["p50"] == 7.0


def test_only_successful_protocol_rows_count() -> None:
    frame = pd.DataFrame(
        {
            "level": ["call", "call", "call", "multi"],
            "ok": [True, False, True, True],
            "run_kind": ["protocol", "protocol", "isolated", "protocol"],
            "ttft_ms": [10.0, 999.0, 500.0, math.nan],
            "config_id": ["a", "a", "a", "a"],
            "runtime": ["asyncio"] * 4,
        }
    )
    blocks = distributions.metric_blocks(frame)
    assert blocks["time_to_first_token"]["count"] == 1 and blocks["time_to_first_token"]["avg"] == 10.0
    assert "efficiency_original" not in blocks  # no column, no block
    per = distributions.per_config(frame)
    assert list(per["metric"]) == ["time_to_first_token"] and list(per["count"]) == [1]


def test_summary_json_of_a_rehearsal_carries_the_blocks_and_the_marks(local_artifact: Path) -> None:
    doc = json.loads((local_artifact / "report" / "summary.json").read_text())
    assert doc["simulated"] is True and doc["backend"] == "sim" and doc["time_scale"] == 0.01
    assert doc["schema_version"] == 1 and doc["kit_version"]
    for tag in ("time_to_first_token", "inter_token_latency", "request_latency", "server_decode_throughput"):
        block = doc["metrics"][tag]
        assert block["count"] >= 1 and set(block) >= {"unit", "avg", "std", "min", "p1", "p50", "p99", "max"}
        assert block["min"] <= block["p50"] <= block["max"]
    companion = pd.read_csv(local_artifact / "report" / "runs_percentiles.csv", dtype={"config_id": str})
    assert set(companion["config_id"]) == {"013"} and "p95" in companion.columns
