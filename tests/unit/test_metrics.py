"""The formulas, checked against hand-computed values."""

from __future__ import annotations

import pytest

from harness import metrics
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord

MS = 1_000_000
S = 1_000_000_000


def _call(
    role: str = "collector",
    *,
    start: int = 0,
    first: int | None = 500 * MS,
    end: int = 10 * S,
    eval_count: int = 1000,
    eval_ns: int = 8 * S,
    offsets: list[int] | None = None,
    ok: bool = True,
) -> CallRecord:
    return CallRecord(
        role=role,
        language="python",
        runtime="asyncio",
        call_index=1,
        stage="analysis",  # type: ignore[arg-type]
        endpoint="/api/generate",
        base_url="http://x",
        model="m",
        options=None,
        streaming=True,
        request_sha256="0" * 64,
        start_ns=start,
        first_chunk_ns=first,
        end_ns=end,
        start_unix_ns=0,
        chunk_count=len(offsets or []),
        chunk_offsets_ns=offsets or [],
        response_chars=10,
        ok=ok,
        eval_count=eval_count if ok else None,
        eval_duration_ns=eval_ns if ok else None,
        load_duration_ns=100 * MS if ok else None,
        prompt_eval_duration_ns=50 * MS if ok else None,
    )


def test_call_figures() -> None:
    call = _call(offsets=[500 * MS, 600 * MS, 700 * MS, 1500 * MS])
    assert metrics.ttft_ms(call) == 500.0
    assert metrics.server_tps(call) == 125.0
    assert metrics.client_tps(call) == pytest.approx(3 / 1.0)


def test_call_without_text_has_no_ttft_or_rate() -> None:
    call = _call(first=None, ok=False)
    assert metrics.ttft_ms(call) is None and metrics.server_tps(call) is None and metrics.client_tps(call) is None


def test_originals_efficiency_as_the_reports_computed_it() -> None:
    # TR115_v2 async-std run 1: exec 25.971647 + 24.234366 over a 50.211175 s wall.
    fig = metrics.original_efficiency(25.971647, 24.234366, 50.211175)
    assert fig.sequential_estimate_s == pytest.approx(50.206013)
    assert fig.speedup == pytest.approx(0.999897, abs=1e-6)
    assert fig.efficiency_pct == pytest.approx(49.99486, abs=1e-4)
    assert fig.contention is True
    assert metrics.original_efficiency(10, 10, 10.2).contention is False


def test_true_efficiency_penalises_time_slicing() -> None:
    # Each agent needs 10 s alone; time-sliced they finish together after 20 s: no gain at all.
    assert metrics.true_efficiency_pct(10, 10, 20) == 50.0
    # The originals' formula with in-run durations of 20 s each calls this perfect.
    assert metrics.original_efficiency(20, 20, 20).efficiency_pct == 100.0
    assert metrics.true_efficiency_pct(10, 10, 10) == 100.0


def test_agent_and_multi_figures() -> None:
    a_calls = [
        _call("collector", eval_count=1000, eval_ns=10 * S),
        _call("collector", first=300 * MS, eval_count=500, eval_ns=5 * S),
    ]
    b_calls = [_call("insight", first=1000 * MS, eval_count=400, eval_ns=2 * S), _call("insight", ok=False)]

    def run(role: str, end_s: int, calls: list[CallRecord]) -> AgentRunRecord:
        return AgentRunRecord(
            role=role,
            language="python",
            runtime="asyncio",
            base_url="http://x",
            model="m",
            options=None,  # type: ignore[arg-type]
            files_ingested=101,
            corpus_sha256=None,
            start_ns=0,
            end_ns=end_s * S,
            ingest_duration_ns=0,
            calls_ok=sum(c.ok for c in calls),
            calls_failed=sum(not c.ok for c in calls),
            ok=True,
        )

    a = metrics.agent_figures(run("collector", 30, a_calls), a_calls)
    b = metrics.agent_figures(run("insight", 20, b_calls), b_calls)
    assert a.tps_mean == 100.0 and a.ttft_ms_mean == 400.0 and a.tokens == 1500
    assert b.tps_mean == 200.0 and b.calls_failed == 1 and b.tokens == 400
    assert a.load_ms_sum == 200.0 and a.eval_ms_sum == 15_000.0
    multi = MultiRunRecord(
        language="python",
        runtime="asyncio",
        scenario="chimera_homo",
        collector_url="a",
        insight_url="b",
        start_ns=0,
        end_ns=40 * S,
        ok=True,
    )
    fig = metrics.multi_figures(multi, a, b, isolated_collector_s=20, isolated_insight_s=12)
    assert fig.concurrent_wall_s == 40
    assert fig.original.efficiency_pct == pytest.approx((30 + 20) / 40 / 2 * 100)
    assert fig.throughput_delta_tps == 100.0 and fig.ttft_delta_ms == 400.0 - 1000.0
    assert fig.aggregate_tps == pytest.approx(1900 / 40)
    assert fig.true_efficiency_pct == pytest.approx(32 / 80 * 100)


def test_pct_change_and_reduction() -> None:
    assert metrics.pct_change(110, 100) == pytest.approx(10)
    assert metrics.pct_reduction(42, 100) == pytest.approx(58)
    with pytest.raises(ValueError):
        metrics.pct_change(1, 0)
