"""The Python client, and the simulator's own answers, against the Ollama API contract fixtures.

The fixtures (``tests/fixtures/ollama-api/``) are written from Ollama's documented examples and types, not
recorded; the client must read them as it reads a real server, and the simulator must answer in the same shapes
(same keys with the same JSON types; the simulator may add its documented ``simulated`` marker, nothing else).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.engines.ollama import OllamaClient, server_facts
from harness.errors import OllamaError
from harness.sim.config import SimConfig
from harness.sim.server import SimServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ollama-api"
SIM_EXTRA = {"simulated"}


def text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def doc(name: str) -> Any:
    return json.loads(text(name))


def lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text(name).splitlines() if line.strip()]


def serve(routes: dict[tuple[str, str], list[tuple[int, str]]]) -> httpx.MockTransport:
    """Answer each (method, path) with its fixtures in order; the last one repeats."""

    def handler(request: httpx.Request) -> httpx.Response:
        queue = routes[(request.method, request.url.path)]
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(status, content=body.encode(), headers={"content-type": "application/json"})

    return httpx.MockTransport(handler)


async def test_client_reads_a_documented_generate_stream() -> None:
    transport = serve({("POST", "/api/generate"): [(200, text("generate-stream.ndjson"))]})
    async with OllamaClient("http://fixture", transport=transport) as client:
        obs = await client.generate("gemma3:latest", "Why is the sky blue?")
    assert obs.ok and obs.text == "The sky is" and len(obs.chunk_offsets_ns) == 3
    assert obs.final["eval_count"] == 4 and obs.final["done_reason"] == "stop"  # 3 chunks + the EOS token


async def test_client_reads_a_documented_whole_answer() -> None:
    transport = serve({("POST", "/api/generate"): [(200, text("generate-whole.json"))]})
    async with OllamaClient("http://fixture", transport=transport) as client:
        obs = await client.generate("gemma3:latest", "Why is the sky blue?", stream=False)
    assert obs.ok and obs.text.startswith("The sky is blue") and obs.final["prompt_eval_count"] == 26


async def test_an_error_line_after_output_fails_the_call() -> None:
    transport = serve({("POST", "/api/generate"): [(200, text("generate-error-midstream.ndjson"))]})
    async with OllamaClient("http://fixture", transport=transport) as client:
        obs = await client.generate("gemma3:latest", "x")
    assert obs.text == "The sky" and obs.error is not None
    assert obs.error.startswith("server error mid-stream: an error was encountered while running the model")


async def test_error_bodies_become_the_servers_text() -> None:
    transport = serve({("POST", "/api/generate"): [(404, text("error-404.json"))]})
    async with OllamaClient("http://fixture", transport=transport) as client:
        obs = await client.generate("nope", "x")
    assert obs.error == "HTTP 404: model 'nope:latest' not found"


async def test_pull_progress_and_its_error_line() -> None:
    ok = serve({("POST", "/api/pull"): [(200, text("pull-progress.ndjson"))]})
    async with OllamaClient("http://fixture", transport=ok) as client:
        statuses = [p["status"] async for p in client.pull("gemma3")]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    failing = serve({("POST", "/api/pull"): [(200, text("pull-error.ndjson"))]})
    async with OllamaClient("http://fixture", transport=failing) as client:
        with pytest.raises(OllamaError, match=r"pull model manifest: .*no such host"):
            async for _ in client.pull("gemma3"):
                pass


async def test_server_facts_from_documented_version_tags_and_show() -> None:
    transport = serve(
        {
            ("GET", "/api/version"): [(200, text("version.json"))],
            ("GET", "/api/tags"): [(200, text("tags.json"))],
            ("POST", "/api/show"): [(200, text("show.json"))],
        }
    )
    facts = await server_facts("http://fixture", "gemma3", transport=transport)
    assert facts.version == "0.12.10" and not facts.simulated
    assert facts.model_digest == doc("tags.json")["models"][0]["digest"]
    assert facts.model_parameter_count == 4299915632 and facts.model_context_length == 131072
    assert facts.model_capabilities == ["completion", "vision"]


async def test_unload_waits_until_ps_no_longer_lists_the_model() -> None:
    ps = [(200, text("ps.json")), (200, text("ps.json")), (200, text("ps-empty.json"))]
    routes = {("POST", "/api/generate"): [(200, text("generate-unload.json"))], ("GET", "/api/ps"): ps}
    async with OllamaClient("http://fixture", transport=serve(routes)) as client:
        await client.unload("gemma3", poll_s=0.0)
    assert len(ps) == 1  # asked until the model was gone


async def test_an_unload_that_never_completes_fails_clearly() -> None:
    routes = {
        ("POST", "/api/generate"): [(200, text("generate-unload.json"))],
        ("GET", "/api/ps"): [(200, text("ps.json"))],
    }
    async with OllamaClient("http://fixture", transport=serve(routes)) as client:
        with pytest.raises(OllamaError, match=r"still loaded .* after keep_alive: 0"):
            await client.unload("gemma3", wait_s=0.0, poll_s=0.0)


# -- the simulator answers in the documented shapes ---------------------------------------------------------


def same_shape(got: Any, want: Any, where: str) -> None:
    """Same keys (the simulator may add only ``simulated``) and the same JSON types, recursively."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        missing = set(want) - set(got)
        extra = set(got) - set(want) - SIM_EXTRA
        assert not missing and not extra, f"{where}: missing {missing}, extra {extra}"
        for key in want:
            if want[key] is not None and got[key] is not None:
                same_shape(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list), where
        if want and got:
            same_shape(got[0], want[0], f"{where}[0]")
    elif isinstance(want, bool) or isinstance(got, bool):
        assert type(got) is type(want), where
    elif isinstance(want, int | float):
        assert isinstance(got, int | float), where
    else:
        assert type(got) is type(want), where


@pytest.fixture
async def sim() -> Any:
    config = SimConfig(seed=3, time_scale=0.01, preload=("gemma3:latest",), unload_delay_ms=100.0)
    async with SimServer(config) as server:
        yield server


async def test_simulator_generate_matches_the_fixtures(sim: SimServer) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        streamed = await http.post("/api/generate", json={"model": "gemma3", "prompt": "Why is the sky blue?"})
        chunks = [json.loads(line) for line in streamed.text.splitlines() if line.strip()]
        want = lines("generate-stream.ndjson")
        for chunk in chunks[:-1]:
            same_shape(chunk, want[0], "chunk")
        same_shape(chunks[-1], want[-1], "final chunk")
        assert chunks[-1]["eval_count"] == len(chunks) - 1 + 1  # the EOS token, as the fixture shows
        whole = (await http.post("/api/generate", json={"model": "gemma3", "prompt": "x", "stream": False})).json()
        same_shape(whole, doc("generate-whole.json"), "whole")
        unload = (await http.post("/api/generate", json={"model": "gemma3", "keep_alive": 0})).json()
        same_shape(unload, doc("generate-unload.json"), "unload")


async def test_simulator_model_management_matches_the_fixtures(sim: SimServer) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        same_shape((await http.get("/api/version")).json(), doc("version.json"), "version")
        same_shape((await http.get("/api/tags")).json(), doc("tags.json"), "tags")
        show = (await http.post("/api/show", json={"model": "gemma3"})).json()
        documented = doc("show.json")
        assert set(documented) - {"license"} <= set(show)
        same_shape(show["details"], documented["details"], "show.details")
        await http.post("/api/generate", json={"model": "gemma3", "prompt": "x", "stream": False})
        same_shape((await http.get("/api/ps")).json(), doc("ps.json"), "ps")
        pull = await http.post("/api/pull", json={"model": "gemma3"})
        pulled = [json.loads(line) for line in pull.text.splitlines()]
        want = lines("pull-progress.ndjson")
        assert [p["status"] for p in pulled][:1] == ["pulling manifest"] and pulled[-1]["status"] == "success"
        same_shape(pulled[1], want[1], "pull progress")


async def test_simulator_errors_match_the_fixtures(sim: SimServer) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        missing = await http.post("/api/generate", json={"model": "nope:latest", "prompt": "x"})
        assert missing.status_code == 404 and missing.json() == doc("error-404.json")
        empty = await http.post("/api/generate", content=b"")
        assert empty.status_code == 400 and empty.json() == doc("error-400.json")
        await http.post("/sim/faults", json=["error-midstream"])
        failed = await http.post("/api/generate", json={"model": "gemma3", "prompt": "Why is the sky blue?"})
        body = [json.loads(line) for line in failed.text.splitlines() if line.strip()]
        assert failed.status_code == 200 and set(body[-1]) == set(lines("generate-error-midstream.ndjson")[-1])
        assert len(body) > 1 and all("response" in chunk for chunk in body[:-1])


async def test_simulator_pull_error_matches_the_fixture() -> None:
    config = SimConfig(seed=3, time_scale=0.01, preload=("gemma3:latest",), registry_reachable=False)
    async with SimServer(config) as server, httpx.AsyncClient(base_url=server.base_url) as http:
        answer = await http.post("/api/pull", json={"model": "gemma3"})
    got = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
    want = lines("pull-error.ndjson")
    assert got == want  # the same text as Ollama's, registry host and all
