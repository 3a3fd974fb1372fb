"""The request queue (OLLAMA_NUM_PARALLEL) and the shared simulated device, checked by ordering and ratios."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.sim import SimConfig, SimServer


def cfg(**overrides: Any) -> SimConfig:
    values: dict[str, Any] = {
        "preload": ("gemma3",),
        "load_ms": 1.0,
        "warm_load_ms": 0.0,
        "prompt_tps": 1e6,
        "decode_tps": 1000.0,
        "tokens": 80,
    }
    values.update(overrides)
    return SimConfig(**values)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def stream(http: aiohttp.ClientSession, base_url: str, prompt: str) -> tuple[int, dict[str, Any]]:
    """Stream one generate call; returns (request id, final object)."""
    body = {"model": "gemma3", "prompt": prompt}
    async with http.post(base_url + "/api/generate", json=body) as resp:
        rid = int(resp.headers["X-Chimeraforge-Request-Id"])
        lines = [line async for line in resp.content if line.strip()]
    return rid, json.loads(lines[-1])


def rate(final: dict[str, Any]) -> float:
    return float(final["eval_count"]) / final["eval_duration"] * 1e9


async def test_num_parallel_1_serves_one_after_the_other(http: aiohttp.ClientSession) -> None:
    async with SimServer(cfg(num_parallel=1, tokens=30)) as sim:
        (a, fa), (b, fb) = await asyncio.gather(stream(http, sim.base_url, "a"), stream(http, sim.base_url, "b"))
        ea, eb = sim.emissions[a], sim.emissions[b]
        first, second = (ea, eb) if ea[0] < eb[0] else (eb, ea)
        assert second[0] > first[-1]
        # the queued request's wait counts into its total_duration
        queued_final = fb if second is eb else fa
        assert queued_final["total_duration"] > (
            queued_final["load_duration"] + queued_final["prompt_eval_duration"] + queued_final["eval_duration"]
        )


async def test_num_parallel_2_overlaps_and_shares_the_device(http: aiohttp.ClientSession) -> None:
    async with SimServer(cfg(num_parallel=2)) as sim:
        _, alone = await stream(http, sim.base_url, "solo")
        (a, fa), (b, fb) = await asyncio.gather(stream(http, sim.base_url, "a"), stream(http, sim.base_url, "b"))
        ea, eb = sim.emissions[a], sim.emissions[b]
        assert eb[0] < ea[-1] and ea[0] < eb[-1]
        slowdown = rate(alone) / ((rate(fa) + rate(fb)) / 2)
        assert slowdown > 1.8  # model: 1 / (0.7 / 2) ≈ 2.9


async def two_instances(http: aiohttp.ClientSession, first: SimConfig, second: SimConfig) -> tuple[float, float]:
    """(alone rate on the first, mean concurrent rate of both)."""
    async with SimServer(first) as s1, SimServer(second) as s2:
        await stream(http, s1.base_url, "warm")
        await stream(http, s2.base_url, "warm")
        _, alone = await stream(http, s1.base_url, "solo")
        (_, f1), (_, f2) = await asyncio.gather(stream(http, s1.base_url, "a"), stream(http, s2.base_url, "b"))
        return rate(alone), (rate(f1) + rate(f2)) / 2


async def test_shared_device_instances_slow_each_other_separate_ones_do_not(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    shared = {"shared_device": "gpu0", "models_dir": tmp_path}
    alone, together = await two_instances(http, cfg(**shared), cfg(**shared))
    assert alone / together > 1.8  # model: ≈2.9
    assert not list((tmp_path / ".sim-device" / "gpu0").glob("*.json"))  # instances cleaned up

    alone2, together2 = await two_instances(http, cfg(), cfg())
    assert alone2 / together2 < 1.5  # model: 1.0
