"""The simulator's arrival stamp: the read of a request's first bytes, once per request on a connection."""

from __future__ import annotations

import asyncio
import json
import time

from harness.sim import SimConfig, SimServer


def _head(path: str, body: bytes, *, close: bool = False) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
    ).encode()


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


async def test_arrival_is_the_first_segment_not_the_parsed_head() -> None:
    body = json.dumps({"model": "gemma3"}).encode()
    async with SimServer(SimConfig(preload=("gemma3",))) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        wire = _head("/api/show", body) + body
        before_ns = time.monotonic_ns()
        writer.write(wire[:20])  # half a request line: aiohttp cannot hand anything to a handler yet
        await writer.drain()
        await asyncio.sleep(0.05)
        rest_ns = time.monotonic_ns()
        writer.write(wire[20:])
        await writer.drain()
        await _read_response(reader)
        writer.close()
        await writer.wait_closed()
        (record,) = sim.requests
    assert before_ns <= record.arrival_ns <= rest_ns


async def test_each_request_on_a_kept_alive_connection_gets_its_own_stamp() -> None:
    body = json.dumps({"model": "gemma3"}).encode()
    async with SimServer(SimConfig(preload=("gemma3",))) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        sent: list[int] = []
        for _ in range(3):
            await asyncio.sleep(0.02)
            sent.append(time.monotonic_ns())
            writer.write(_head("/api/show", body) + body)
            await writer.drain()
            await _read_response(reader)
        writer.close()
        await writer.wait_closed()
        arrivals = [r.arrival_ns for r in sim.requests]
    assert len(arrivals) == 3
    for sent_ns, arrival_ns, next_sent in zip(sent, arrivals, [*sent[1:], None], strict=True):
        assert arrival_ns >= sent_ns
        assert next_sent is None or arrival_ns < next_sent


async def test_control_calls_do_not_leave_a_stale_stamp_for_the_next_request() -> None:
    body = json.dumps({"model": "gemma3"}).encode()
    async with SimServer(SimConfig(preload=("gemma3",))) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writer.write(_head("/sim/reset", b"") + b"")
        await writer.drain()
        await _read_response(reader)
        await asyncio.sleep(0.05)
        sent_ns = time.monotonic_ns()
        writer.write(_head("/api/show", body, close=True) + body)
        await writer.drain()
        await _read_response(reader)
        writer.close()
        await writer.wait_closed()
        (record,) = sim.requests
    assert record.arrival_ns >= sent_ns
