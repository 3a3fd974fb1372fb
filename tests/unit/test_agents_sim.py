"""Python agents against the in-process simulator: records, ground truth, serial vs overlapping service."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import metrics
from harness.agents.runner import SingleAgent, run_multi, run_single
from harness.agents.workflow import Workload
from harness.engines.ollama import OllamaClient
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord, dump_record, parse_record
from harness.sim.config import SimConfig
from harness.sim.server import SimServer

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gemma3:latest"
CHIMERA = {"num_gpu": 80, "num_ctx": 512, "temperature": 0.8}


def _sim(**kw: object) -> SimServer:
    base = dict(preload=(MODEL,), tokens=40, decode_tps=800.0, prompt_tps=50_000.0, load_ms=30.0, seed=7)
    return SimServer(SimConfig(**(base | kw)))  # type: ignore[arg-type]


def _workload(workflow: str = "two_call", streaming: bool = True) -> Workload:
    return Workload.load(
        model=MODEL,
        workflow=workflow,
        streaming=streaming,  # type: ignore[arg-type]
        prompts_dir=ROOT / "experiments" / "prompts",
        corpus_dir=ROOT / "experiments" / "corpus",
    )


async def test_single_agent_writes_valid_records_matching_ground_truth() -> None:
    records: list = []
    async with _sim() as server:
        runs = await run_single(
            server.base_url,
            _workload(),
            [SingleAgent("baseline", None), SingleAgent("chimera", CHIMERA)],
            runs=1,
            run_id="r1",
            sink=records.append,
        )
        requests = [r for r in server.requests if r.path == "/api/generate"]
        emissions = server.emissions
    assert all(r.ok for r in runs)
    calls = [r for r in records if isinstance(r, CallRecord)]
    agents = [r for r in records if isinstance(r, AgentRunRecord)]
    assert len(calls) == 4 and len(agents) == 2
    for record in records:  # every record survives the JSON Lines round trip
        assert parse_record(dump_record(record)) == record
    assert agents[0].files_ingested == 101 and agents[0].corpus_sha256
    assert agents[0].process_start_to_first_request_ns is not None and agents[0].peak_rss_bytes
    # the baseline sends no options at all, the chimera agent exactly its options
    assert "options" not in requests[0].body and requests[2].body["options"] == CHIMERA
    assert [c.stage for c in calls] == ["analysis", "report", "analysis", "report"]
    for call, request in zip(calls, requests, strict=True):
        truth = emissions[request.request_id]
        text_chunks = len(truth) - 1  # the last emission is the final done chunk
        assert call.server_simulated
        assert call.chunk_count == text_chunks == 40
        assert call.eval_count == 41  # Ollama counts the end-of-sequence token, which is never streamed
        assert request.body_sha256 == call.request_sha256
        # the client sees each chunk after the server emitted it, never before
        assert call.first_chunk_ns is not None and call.first_chunk_ns >= truth[0]
        assert call.first_chunk_ns - truth[0] < 50_000_000
        assert metrics.ttft_ms(call) is not None and metrics.server_tps(call) is not None


async def test_report_call_embeds_the_analysis_answer() -> None:
    async with _sim() as server:
        async with OllamaClient(server.base_url) as client:
            from harness.agents.workflow import Identity, run_agent

            sink: list = []
            await run_agent(client, _workload(), Identity(role="baseline"), None, sink=sink.append)
        bodies = [r.body for r in server.requests if r.path == "/api/generate"]
    analysis_text = bodies[0]["prompt"]
    assert "101 files (28 CSV, 44 JSON, 29 Markdown" in analysis_text
    assert "- csv/" in analysis_text
    assert "Analysis:\n" in bodies[1]["prompt"] and len(bodies[1]["prompt"]) > 400


async def _multi(urls: tuple[str, str]) -> tuple[MultiRunRecord, list]:
    sink: list = []
    record = await run_multi(
        urls[0], urls[1], _workload("one_call"), "chimera_homo", CHIMERA, CHIMERA, sink=sink.append
    )
    return record, sink


def _spans(sink: list) -> dict[str, tuple[int, int]]:
    return {
        r.role: (r.start_ns + r.chunk_offsets_ns[0], r.start_ns + r.chunk_offsets_ns[-1])
        for r in sink
        if isinstance(r, CallRecord)
    }


async def test_one_instance_with_num_parallel_1_serves_the_agents_one_after_the_other() -> None:
    async with _sim(num_parallel=1, tokens=60, decode_tps=600.0) as server:
        record, sink = await _multi((server.base_url, server.base_url))
    assert record.ok
    spans = _spans(sink)
    first, second = sorted(spans.values())
    assert second[0] > first[1], "the second agent's first token comes after the first agent's last"


async def test_two_instances_serve_the_agents_at_the_same_time() -> None:
    async with _sim(tokens=60, decode_tps=600.0) as a, _sim(tokens=60, decode_tps=600.0) as b:
        record, sink = await _multi((a.base_url, b.base_url))
    assert record.ok
    (s1, e1), (s2, e2) = sorted(_spans(sink).values())
    overlap = min(e1, e2) - max(s1, s2)
    assert overlap > 0.5 * min(e1 - s1, e2 - s2), "decodes overlap for most of their length"
    wall = (record.end_ns - record.start_ns) / 1e9
    runs = [r for r in sink if isinstance(r, AgentRunRecord)]
    fig = metrics.original_efficiency(*[(r.end_ns - r.start_ns) / 1e9 for r in runs], wall)
    assert fig.efficiency_pct > 80


async def test_failed_call_is_recorded_not_dropped() -> None:
    from harness.sim.faults import Fault

    async with _sim() as server:
        server.queue_faults([Fault(kind="error500", probability=1.0)])
        sink: list = []
        runs = await run_single(server.base_url, _workload(), [SingleAgent("baseline", None)], sink=sink.append)
    calls = [r for r in sink if isinstance(r, CallRecord)]
    assert not runs[0].ok and runs[0].calls_failed == 1 and "analysis call failed" in (runs[0].error or "")
    assert len(calls) == 1 and not calls[0].ok and calls[0].http_status == 500


async def test_non_streaming_workflow_records_one_chunk_per_call() -> None:
    async with _sim() as server:
        sink: list = []
        await run_single(
            server.base_url, _workload(streaming=False), [SingleAgent("chimera", CHIMERA)], sink=sink.append
        )
        assert all(r.body["stream"] is False for r in server.requests if r.path == "/api/generate")
    calls = [r for r in sink if isinstance(r, CallRecord)]
    assert all(c.ok and c.chunk_count == 1 and c.eval_count == 41 for c in calls)  # 40 tokens + the EOS


@pytest.mark.parametrize("bad", ["http://127.0.0.1:9"])
async def test_unreachable_server_is_a_recorded_failure(bad: str) -> None:
    sink: list = []
    runs = await run_single(bad, _workload(), [SingleAgent("baseline", None)], sink=sink.append)
    assert not runs[0].ok and "connection failed" in (runs[0].error or "")
