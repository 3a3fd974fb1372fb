"""The bench's error arithmetic: records against made-up ground truth with known answers."""

from __future__ import annotations

import math

import pytest

from harness.bench.fidelity import (
    ServerRequest,
    TruthError,
    call_error,
    emitted_tps,
    ideal_efficiency,
    match_calls,
    measured_efficiency,
    parse_truth,
    pct_error,
)
from harness.bench.peer import peer_errors
from harness.bench.spread import spread
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord

MS = 1_000_000


def _call(start: int, offsets: list[int], *, sha: str = "s", index: int = 1, end: int | None = None) -> CallRecord:
    return CallRecord(
        role="baseline", language="python", runtime="asyncio", call_index=index, stage="single",
        endpoint="/api/generate", base_url="http://x", model="m", options=None, streaming=True,
        request_sha256=sha, start_ns=start, first_chunk_ns=start + offsets[0],
        end_ns=end if end is not None else start + offsets[-1] + MS, start_unix_ns=0, chunk_count=len(offsets),
        chunk_offsets_ns=offsets, response_chars=len(offsets), ok=True,
    )  # fmt: skip


def test_ttft_error_is_client_minus_true_and_throughput_compares_the_same_chunks() -> None:
    # server: arrival at 1.2 ms, first emission at 11.2 ms, then every 10 ms (100 tok/s emitted)
    request = ServerRequest(7, "/api/generate", "s", 1_200_000)
    emitted = [11_200_000 + i * 10 * MS for i in range(5)] + [99 * MS]  # + the final "done" chunk
    # client: start at 1.0 ms, chunks seen 0.3 ms after emission, the last one 0.5 ms after (a late read)
    offsets = [e + 300_000 - 1_000_000 for e in emitted[:4]] + [emitted[4] + 500_000 - 1_000_000]
    err = call_error(_call(1_000_000, offsets), request, emitted, nominal_tps=100.0)
    assert err.true_ttft_ms == pytest.approx(10.0)
    assert err.client_ttft_ms == pytest.approx(10.5)
    assert err.ttft_error_ms == pytest.approx(0.5)  # 0.2 ms before arrival + 0.3 ms after emission
    assert err.throughput_error_pct == pytest.approx((4 / 0.0402) / 100 * 100 - 100)
    assert err.pacing_error_pct == pytest.approx(0.0)
    assert err.chunks == 5


def test_a_call_counting_more_chunks_than_were_emitted_is_refused() -> None:
    request = ServerRequest(1, "/api/generate", "s", 0)
    with pytest.raises(TruthError, match="emitted 2"):
        call_error(_call(0, [MS, 2 * MS, 3 * MS]), request, [MS, 2 * MS], nominal_tps=10)


def test_calls_match_the_one_request_with_their_hash_inside_their_window() -> None:
    a = _call(0, [5 * MS], end=10 * MS, index=1)
    b = _call(20 * MS, [5 * MS], end=30 * MS, index=2)
    other = _call(40 * MS, [5 * MS], end=50 * MS, sha="other", index=3)
    requests = [
        ServerRequest(1, "/api/generate", "s", 1 * MS),
        ServerRequest(2, "/api/version", "v", 15 * MS),
        ServerRequest(3, "/api/generate", "s", 21 * MS),
        ServerRequest(4, "/api/generate", "other", 41 * MS),
    ]
    assert [r.request_id for _, r in match_calls([a, b, other], requests)] == [1, 3, 4]
    with pytest.raises(TruthError, match="matches 0"):
        match_calls([_call(60 * MS, [MS], end=70 * MS)], requests)


def test_emitted_rate_and_percent_error_edges() -> None:
    assert emitted_tps([0, 10 * MS, 20 * MS], 3) == pytest.approx(100.0)
    assert emitted_tps([0], 1) is None and emitted_tps([5, 5], 2) is None and emitted_tps([0, 1], 3) is None
    assert pct_error(101.0, 100.0) == pytest.approx(1.0)
    assert pct_error(None, 1.0) is None and pct_error(1.0, 0.0) is None


def test_parse_truth_reads_the_simulator_json() -> None:
    reqs, emitted = parse_truth(
        {"requests": [{"request_id": 3, "path": "/p", "body_sha256": "h", "arrival_ns": 9, "method": "POST"}]},
        {"emissions": {"3": [10, 11]}},
    )
    assert reqs == [ServerRequest(3, "/p", "h", 9)] and emitted == {3: [10, 11]}


@pytest.mark.parametrize(
    ("setup", "calls", "original", "true"),
    [("two_servers", 2, 100.0, 100.0), ("one_server", 1, 75.0, 50.0), ("one_server", 2, 87.5, 50.0)],
)
def test_ideal_efficiency(setup: str, calls: int, original: float, true: float) -> None:
    assert ideal_efficiency(setup, calls) == (original, true)  # type: ignore[arg-type]


def test_measured_efficiency_of_a_serial_run_matches_the_ideal() -> None:
    d = 1_000_000_000
    multi = MultiRunRecord(
        language="python", runtime="asyncio", scenario="chimera_homo", collector_url="a", insight_url="a",
        start_ns=0, end_ns=4 * d, ok=True,
    )  # fmt: skip

    def run(role: str, end: int) -> AgentRunRecord:
        return AgentRunRecord(
            role=role, language="python", runtime="asyncio", base_url="a", model="m", options=None,
            files_ingested=0, corpus_sha256=None, start_ns=0, end_ns=end, ingest_duration_ns=0, calls_ok=2,
            calls_failed=0, ok=True,
        )  # type: ignore[arg-type]  # fmt: skip

    m = measured_efficiency(multi, [run("collector", 3 * d), run("insight", 4 * d)], (2.0, 2.0))
    assert (m.original_pct, m.true_pct) == (87.5, 50.0)
    with pytest.raises(TruthError):
        measured_efficiency(multi, [run("collector", d)], None)


def test_peer_records_are_paired_in_order_and_checked_against_the_clock() -> None:
    offset = 1_000_000_000_000
    requests = [
        ServerRequest(1, "/v1/chat/completions", "x", 10 * MS),
        ServerRequest(2, "/api/version", "y", 15 * MS),
        ServerRequest(3, "/v1/chat/completions", "z", 30 * MS),
    ]
    emitted = {1: [12 * MS, 13 * MS, 14 * MS], 3: [33 * MS, 34 * MS, 35 * MS]}

    def rec(start_ms: int, ttft: float) -> dict[str, object]:
        return {
            "metadata": {"request_start_ns": offset + start_ms * MS, "request_end_ns": offset + (start_ms + 8) * MS},
            "metrics": {
                "time_to_first_token": {"value": ttft},
                "output_sequence_length": {"value": 3},
                "output_token_throughput_per_user": {"value": 1000.0},
            },
        }

    errors = peer_errors([rec(29, 4.5), rec(9, 3.0)], requests, emitted, 1000.0, wall_minus_monotonic_ns=offset)
    assert [round(e.ttft_error_ms, 6) for e in errors] == [1.0, 1.5]
    assert errors[0].throughput_error_pct == pytest.approx(0.0)
    with pytest.raises(TruthError, match="line up"):
        peer_errors([rec(100, 1.0), rec(9, 1.0)], requests, emitted, 1000.0, wall_minus_monotonic_ns=offset)
    with pytest.raises(TruthError, match="reported 1"):
        peer_errors([rec(9, 1.0)], requests, emitted, 1000.0, wall_minus_monotonic_ns=offset)


def test_spread_percentiles_and_absolute_tail() -> None:
    s = spread([float(v) for v in range(-50, 51)])  # -50 … 50
    assert (s.n, s.median, s.min, s.max) == (101, 0.0, -50.0, 50.0)
    assert s.p99 == pytest.approx(49.0) and s.p1 == pytest.approx(-49.0)
    assert s.abs_p99 == pytest.approx(50.0)  # |values| hold 0 once and every other value twice
    assert s.abs_median == pytest.approx(25.0)
    assert spread([math.nan]).n == 0 and spread([]).median is None
