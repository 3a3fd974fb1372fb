"""Where the Python client reads its clocks: per body read (lines of one read share it), and at the send."""

from __future__ import annotations

import asyncio
import json
import time

import httpcore
import httpx

from harness.engines.ollama import OllamaClient


def _line(text: str, done: bool = False) -> bytes:
    chunk: dict[str, object] = {"response": text, "done": done}
    if done:
        chunk.update(eval_count=3, eval_duration=1000)
    return json.dumps(chunk).encode() + b"\n"


async def _serve_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n")
    writer.write(_line("a") + _line("b"))  # two chunks in one write: one read on the client
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(_line("c") + _line("", done=True))
    await writer.drain()
    writer.close()


async def test_lines_of_one_read_share_its_arrival() -> None:
    server = await asyncio.start_server(_serve_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with OllamaClient(f"http://127.0.0.1:{port}") as client:
            before_ns = time.monotonic_ns()
            obs = await client.generate("m", "p")
    finally:
        server.close()
        await server.wait_closed()
    assert obs.ok, obs.error
    assert obs.text == "abc"
    first, second, third = obs.chunk_offsets_ns
    assert first == second < third
    assert obs.first_chunk_ns == obs.start_ns + first
    assert obs.start_ns >= before_ns
    assert obs.final["eval_count"] == 3


async def test_a_transport_without_tracing_keeps_the_stamp_before_the_call() -> None:
    body = _line("x") + _line("", done=True)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    async with OllamaClient("http://sim", transport=transport) as client:
        before_ns = time.monotonic_ns()
        obs = await client.generate("m", "p")
    assert obs.ok and obs.text == "x"
    assert before_ns <= obs.start_ns <= obs.first_chunk_ns <= obs.end_ns  # type: ignore[operator]


async def test_a_final_line_without_a_line_break_still_counts() -> None:
    body = _line("x") + _line("", done=True).rstrip(b"\n")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    async with OllamaClient("http://sim", transport=transport) as client:
        obs = await client.generate("m", "p")
    assert obs.ok and obs.final["done"] is True


async def test_the_connection_stamps_a_calls_first_write_and_every_read() -> None:
    from harness.engines.ollama import _SENT_NS, _StampedStream

    stream = _StampedStream(httpcore.AsyncMockStream([b"head", b"body"]))
    sent: list[int] = []
    token = _SENT_NS.set(sent)
    try:
        before = time.monotonic_ns()
        await stream.write(b"request head")
        await stream.write(b"request body")
        assert len(sent) == 1 and before <= sent[0]  # only the head's write starts the clock
        assert await stream.read(64) == b"head"
        first = stream.read_ns
        assert await stream.read(64) == b"body"
        assert sent[0] <= first <= stream.read_ns <= time.monotonic_ns()
    finally:
        _SENT_NS.reset(token)
    await stream.write(b"outside a call")  # no call's clock to start: nothing recorded
    assert len(sent) == 1
