"""The simulated Ollama HTTP API: shapes, determinism, models, loads, faults and the ground-truth logs."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.sim import BackgroundSimServer, SimConfig, SimServer
from harness.sim.server import SIM_HEADER

FINAL_FIELDS = (
    "done_reason",
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def fast(**overrides: Any) -> SimConfig:
    """Fast rates so a whole request takes milliseconds."""
    values: dict[str, Any] = {
        "preload": ("gemma3",),
        "seed": 42,
        "load_ms": 5.0,
        "warm_load_ms": 0.5,
        "decode_tps": 20000.0,
        "prompt_tps": 1e6,
        "tokens": 12,
    }
    values.update(overrides)
    return SimConfig(**values)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(fast()) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def ndjson(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    async with http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers[SIM_HEADER] == "1"
        return [json.loads(line) async for line in resp.content if line.strip()]


async def post_json(http: aiohttp.ClientSession, url: str, body: object, status: int = 200) -> dict[str, Any]:
    async with http.post(url, json=body) as resp:
        assert resp.status == status, await resp.text()
        assert resp.headers[SIM_HEADER] == "1"
        result: dict[str, Any] = await resp.json()
        return result


async def get_json(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.headers[SIM_HEADER] == "1"
        result: dict[str, Any] = await resp.json()
        return result


def check_final(obj: dict[str, Any], chunks: int) -> None:
    assert obj["done"] is True
    for field in FINAL_FIELDS[1:]:
        assert isinstance(obj[field], int) and obj[field] >= 0, field
    assert obj["eval_count"] == chunks + (obj["done_reason"] == "stop")  # the end-of-sequence token counts
    assert obj["total_duration"] >= obj["load_duration"] + obj["prompt_eval_duration"] + obj["eval_duration"]
    assert obj["simulated"] == {"time_scale": 1.0, "seed": 42}


async def test_generate_streaming_and_non_streaming(sim: SimServer, http: aiohttp.ClientSession) -> None:
    body = {"model": "gemma3", "prompt": "Summarise the benchmark files."}
    chunks = await ndjson(http, sim.base_url + "/api/generate", body)
    *tokens, final = chunks
    assert len(tokens) == 12
    for chunk in tokens:
        assert set(chunk) == {"model", "created_at", "response", "done"}  # nothing non-Ollama in chunks
        assert chunk["done"] is False and chunk["response"]
    check_final(final, 12)
    assert final["done_reason"] == "stop" and final["response"] == ""
    assert final["prompt_eval_count"] > 0

    whole = await post_json(http, sim.base_url + "/api/generate", {**body, "stream": False})
    check_final(whole, 12)
    assert whole["response"] == "".join(c["response"] for c in tokens)  # same request → same tokens


async def test_chat_streaming_and_non_streaming(sim: SimServer, http: aiohttp.ClientSession) -> None:
    body = {"model": "gemma3:latest", "messages": [{"role": "user", "content": "Write the report."}]}
    *tokens, final = await ndjson(http, sim.base_url + "/api/chat", body)
    assert all(set(c) == {"model", "created_at", "message", "done"} for c in tokens)
    check_final(final, 12)
    assert final["message"] == {"role": "assistant", "content": ""}
    whole = await post_json(http, sim.base_url + "/api/chat", {**body, "stream": False})
    check_final(whole, 12)
    assert whole["message"]["content"] == "".join(c["message"]["content"] for c in tokens)


async def test_same_seed_same_tokens_other_seed_other_tokens(http: aiohttp.ClientSession) -> None:
    body = {"model": "gemma3", "prompt": "p" * 50, "stream": False, "options": {"temperature": 0.8}}
    texts = []
    for seed in (5, 5, 6):
        async with SimServer(fast(seed=seed, tokens=None)) as server:
            reply = await post_json(http, server.base_url + "/api/generate", body)
            texts.append((reply["response"], reply["eval_count"]))
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]
    assert texts[0][1] >= 150


async def test_num_predict_caps_the_answer(sim: SimServer, http: aiohttp.ClientSession) -> None:
    body = {"model": "gemma3", "prompt": "x", "stream": False, "options": {"num_predict": 4}}
    reply = await post_json(http, sim.base_url + "/api/generate", body)
    assert (reply["eval_count"], reply["done_reason"]) == (4, "length")


async def test_prompt_truncated_to_num_ctx(sim: SimServer, http: aiohttp.ClientSession) -> None:
    body = {"model": "gemma3", "prompt": "word " * 500, "stream": False, "options": {"num_ctx": 128}}
    reply = await post_json(http, sim.base_url + "/api/generate", body)
    assert reply["prompt_eval_count"] == 128


async def test_unknown_and_unpulled_models_are_404(sim: SimServer, http: aiohttp.ClientSession) -> None:
    for name in ("nope", "gemma3:270m"):
        body = {"model": name, "prompt": "x"}
        reply = await post_json(http, sim.base_url + "/api/generate", body, status=404)
        assert reply == {"error": f"model '{name}' not found"}
        chat = {"model": name, "messages": [{"role": "user", "content": "x"}]}
        assert (await post_json(http, sim.base_url + "/api/chat", chat, status=404))["error"] == reply["error"]
    await post_json(http, sim.base_url + "/api/show", {"model": "nope"}, status=404)
    oa = await post_json(
        http, sim.base_url + "/v1/chat/completions", {"model": "nope", "messages": [{"role": "user"}]}, 404
    )
    assert oa["error"]["type"] == "not_found_error"
    await post_json(http, sim.base_url + "/api/generate", {"prompt": "x"}, status=400)


async def test_version_root_and_marker(sim: SimServer, http: aiohttp.ClientSession) -> None:
    version = await get_json(http, sim.base_url + "/api/version")
    assert version == {"version": "0.12.10", "simulated": {"time_scale": 1.0, "seed": 42}}
    async with http.get(sim.base_url + "/") as resp:
        assert await resp.text() == "Ollama is running"
        assert resp.headers[SIM_HEADER] == "1"
    async with http.get(sim.base_url + "/no/such/path") as resp:
        assert resp.status == 404 and resp.headers[SIM_HEADER] == "1"


async def test_pull_then_tags_show_ps(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with SimServer(fast(preload=(), models_dir=tmp_path, pull_bytes_per_s=1e12)) as sim:
        assert (await get_json(http, sim.base_url + "/api/tags"))["models"] == []
        statuses = await ndjson(http, sim.base_url + "/api/pull", {"model": "gemma3:270m"})
        names = [s["status"] for s in statuses]
        assert names[0] == "pulling manifest"
        assert names[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
        progress = [s for s in statuses if s["status"].startswith("pulling ") and "digest" in s]
        assert progress and progress[-1]["completed"] == progress[-1]["total"]
        spec_digest = hashlib.sha256(b"chimeraforge-sim:gemma3:270m").hexdigest()
        assert progress[0]["digest"] == "sha256:" + spec_digest
        assert progress[0]["status"] == f"pulling {spec_digest[:12]}"

        tags = (await get_json(http, sim.base_url + "/api/tags"))["models"]
        assert [m["name"] for m in tags] == ["gemma3:270m"]
        assert set(tags[0]) >= {"name", "model", "modified_at", "size", "digest", "details"}
        assert tags[0]["digest"] == spec_digest
        show = await post_json(http, sim.base_url + "/api/show", {"model": "gemma3:270m"})
        assert show["model_info"]["chimeraforge.sim.synthetic_digest"] is True
        assert show["details"]["quantization_level"] == "Q8_0"
        assert (await get_json(http, sim.base_url + "/api/ps"))["models"] == []

        await post_json(http, sim.base_url + "/api/generate", {"model": "gemma3:270m", "prompt": "x", "stream": False})
        ps = (await get_json(http, sim.base_url + "/api/ps"))["models"]
        assert [m["name"] for m in ps] == ["gemma3:270m"] and ps[0]["context_length"] == 4096

        whole = await post_json(http, sim.base_url + "/api/pull", {"model": "gemma3:1b-it-qat", "stream": False})
        assert whole["status"] == "success"
        missing = await post_json(http, sim.base_url + "/api/pull", {"model": "nope", "stream": False}, 500)
        assert "file does not exist" in missing["error"]
    async with SimServer(fast(preload=(), models_dir=tmp_path)) as again:  # manifests persisted
        names2 = {m["name"] for m in (await get_json(http, again.base_url + "/api/tags"))["models"]}
        assert names2 == {"gemma3:270m", "gemma3:1b-it-qat"}


async def wait_unloaded(http: aiohttp.ClientSession, sim: SimServer) -> None:
    """Poll /api/ps until nothing is loaded (the unload is asynchronous, as in Ollama)."""
    for _ in range(200):
        if not (await get_json(http, sim.base_url + "/api/ps"))["models"]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the model was never unloaded")


async def test_cold_warm_reload_and_keep_alive(http: aiohttp.ClientSession) -> None:
    cold_ns = 150_000_000
    async with SimServer(fast(load_ms=150.0)) as sim:
        url = sim.base_url + "/api/generate"

        async def load(options: dict[str, Any] | None = None, **extra: Any) -> int:
            body = {"model": "gemma3", "prompt": "x", "stream": False, "options": options or {}, **extra}
            return int((await post_json(http, url, body))["load_duration"])

        assert await load() >= cold_ns  # first request: cold
        warm = await load()
        assert 0 < warm < cold_ns  # warm still reports a small load
        assert await load({"temperature": 0.1}) < cold_ns  # sampling options do not reload
        assert await load({"num_ctx": 1024}) >= cold_ns  # num_ctx change reloads
        assert await load({"num_ctx": 1024, "num_gpu": 20}) >= cold_ns  # num_gpu change reloads
        assert await load({"num_ctx": 1024, "num_gpu": 20}, keep_alive=0) < cold_ns
        await wait_unloaded(http, sim)
        assert await load() >= cold_ns  # keep_alive 0 unloaded it
        assert await load(keep_alive="1ms") < cold_ns
        await asyncio.sleep(0.05)
        assert await load() >= cold_ns  # expired

        # Ollama's empty-prompt load / unload requests
        assert (await post_json(http, url, {"model": "gemma3", "keep_alive": 0}))["done_reason"] == "unload"
        assert len((await get_json(http, sim.base_url + "/api/ps"))["models"]) == 1  # sched.go: unloads later
        await wait_unloaded(http, sim)
        assert (await post_json(http, url, {"model": "gemma3"}))["done_reason"] == "load"
        assert len((await get_json(http, sim.base_url + "/api/ps"))["models"]) == 1


async def test_openai_chat_completions(sim: SimServer, http: aiohttp.ClientSession) -> None:
    url = sim.base_url + "/v1/chat/completions"
    body = {
        "model": "gemma3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with http.post(url, json=body) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = [line.decode().strip() async for line in resp.content if line.strip()]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    objs = [json.loads(e[6:]) for e in events[:-1]]
    content = [o for o in objs if o["choices"] and o["choices"][0]["finish_reason"] is None]
    assert len(content) == 12 and all("simulated" not in o for o in content)
    finish = [o for o in objs if o["choices"] and o["choices"][0]["finish_reason"]]
    assert finish[0]["choices"][0]["finish_reason"] == "stop"
    usage = objs[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 13  # eval_count: 12 + EOS
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 13
    assert usage["simulated"]["seed"] == 42

    whole = await post_json(http, url, {**body, "stream": False, "max_tokens": 3})
    assert whole["object"] == "chat.completion"
    assert whole["choices"][0]["finish_reason"] == "length" and whole["usage"]["completion_tokens"] == 3
    assert whole["choices"][0]["message"]["content"]


async def test_faults(sim: SimServer, http: aiohttp.ClientSession) -> None:
    url = sim.base_url + "/api/generate"
    body = {"model": "gemma3", "prompt": "x"}
    queued = [
        "error500",
        "drop",
        {"kind": "stall", "delay_ms": 120},
        {"kind": "slow-start", "delay_ms": 120},
        {"kind": "drop"},
    ]
    assert (await post_json(http, sim.base_url + "/sim/faults", queued))["queued"] == 5

    error = await post_json(http, url, body, status=500)
    assert set(error) == {"error"} and "llama runner" in error["error"]

    with pytest.raises(aiohttp.ClientPayloadError):  # drop: connection closed mid-stream
        async with http.post(url, json=body) as resp:
            assert resp.status == 200
            async for _ in resp.content:
                pass

    await ndjson(http, url, body)  # stall
    await ndjson(http, url, body)  # slow-start
    with pytest.raises(aiohttp.ClientError):  # drop, non-streaming: no response at all
        await post_json(http, url, {**body, "stream": False})
    await ndjson(http, url, body)  # queue empty again: clean

    records = [r for r in sim.requests if r.path == "/api/generate"]
    stall, slow = records[2], records[3]
    gaps = [b - a for a, b in itertools.pairwise(sim.emissions[stall.request_id])]
    assert max(gaps) >= 120_000_000  # a pause mid-stream
    assert sim.emissions[stall.request_id][0] - stall.arrival_ns < 120_000_000
    assert sim.emissions[slow.request_id][0] - slow.arrival_ns >= 120_000_000  # delay before the first byte
    dropped = sim.emissions[records[1].request_id]
    assert 0 < len(dropped) < 13


async def test_request_and_emission_logs(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    record = tmp_path / "truth.jsonl"
    async with SimServer(fast(record_path=record)) as sim:
        raw = json.dumps({"model": "gemma3", "prompt": "log me"}).encode()
        async with http.post(sim.base_url + "/api/generate", data=raw) as resp:
            rid = int(resp.headers["X-Chimeraforge-Request-Id"])
            lines = [line async for line in resp.content if line.strip()]
        logged = (await get_json(http, sim.base_url + "/sim/requests"))["requests"]
        assert [r["path"] for r in logged] == ["/api/generate"]  # /sim/* calls are not logged
        entry = logged[0]
        assert entry["request_id"] == rid and entry["method"] == "POST"
        assert entry["body"] == {"model": "gemma3", "prompt": "log me"}
        assert entry["body_sha256"] == hashlib.sha256(raw).hexdigest()
        emitted = (await get_json(http, sim.base_url + f"/sim/emissions?request_id={rid}"))["emitted_ns"]
        assert len(emitted) == len(lines) == 13
        assert entry["arrival_ns"] < emitted[0] and emitted == sorted(emitted)
        assert str(rid) in (await get_json(http, sim.base_url + "/sim/emissions"))["emissions"]
        assert sim.emissions[rid] == emitted
        await post_json(http, sim.base_url + "/sim/reset", {})
        assert sim.requests == []
    kinds = [json.loads(line)["type"] for line in record.read_text().splitlines()]
    assert kinds == ["request", "emissions"]


def test_background_server_for_synchronous_callers() -> None:
    with BackgroundSimServer(fast()) as sim:
        with urllib.request.urlopen(sim.base_url + "/api/version") as resp:
            assert resp.headers[SIM_HEADER] == "1"
            assert json.loads(resp.read())["version"] == "0.12.10"
        assert [r.path for r in sim.requests] == ["/api/version"]
        assert len(sim.emissions[sim.requests[0].request_id]) == 1


async def test_an_unload_applies_to_the_runner_loaded_when_it_was_asked(http: aiohttp.ClientSession) -> None:
    async with SimServer(fast(unload_delay_ms=50.0)) as sim:
        url = sim.base_url + "/api/generate"
        await post_json(http, url, {"model": "gemma3", "keep_alive": 0})  # nothing loaded: nothing to do
        await post_json(http, url, {"model": "gemma3", "prompt": "x", "stream": False})
        await asyncio.sleep(0.1)
        assert len((await get_json(http, sim.base_url + "/api/ps"))["models"]) == 1  # the later load stays
