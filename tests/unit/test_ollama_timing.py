"""Where the Python client reads its clocks: per body read (lines of one read share it), and at the send."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from harness.ollama import OllamaClient


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


async def test_lines_of_one_read_share_its_arrival_and_start_is_at_the_send() -> None:
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
