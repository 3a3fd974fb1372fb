"""The three timeouts of a call: a stream that keeps coming never trips the read timeout, but the deadline ends it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from harness.engines.ollama import OllamaClient


class _Drip(httpx.AsyncByteStream):
    """An NDJSON stream that sends a chunk every ``gap_s`` and never finishes on its own."""

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(self.gap_s)
            yield (json.dumps({"response": "x", "done": False}) + "\n").encode()


def _client(**timeouts: float) -> OllamaClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=_Drip(0.02)))
    return OllamaClient("http://sim", transport=transport, **timeouts)  # type: ignore[arg-type]


def test_a_stream_that_keeps_coming_is_ended_by_the_call_deadline_not_the_read_timeout() -> None:
    async def call() -> str | None:
        async with _client(read_timeout_s=0.5, call_deadline_s=0.3) as client:
            obs = await client.generate("m", "p")
        return obs.error

    error = asyncio.run(call())
    assert error == "call deadline of 0.3 s exceeded"
