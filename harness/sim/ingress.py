"""When a request's first bytes were read: the simulator's ground-truth arrival time.

aiohttp hands a request to the application only after it has parsed the head and gone round the event loop
twice, 150–300 µs after the bytes were read on a busy host; a new connection adds the accept. Stamping the
arrival in a middleware would charge that server-side latency to the client in every TTFT-error figure. So
each connection's protocol is wrapped: the first ``data_received`` of a request stamps ``CLOCK_MONOTONIC``,
and the request's handler takes the stamp once it has read the whole body (later segments of the same body
do not restamp; the next request's first bytes do).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any


class ArrivalClock:
    """Per-connection arrival stamps, keyed by transport (weakly: a closed connection leaves nothing)."""

    def __init__(self) -> None:
        self._pending: weakref.WeakKeyDictionary[asyncio.BaseTransport, int] = weakref.WeakKeyDictionary()

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that stamps arrivals for ``factory``'s protocols."""
        return lambda: _Stamping(factory(), self)

    def stamp(self, transport: asyncio.BaseTransport) -> None:
        if transport not in self._pending:
            self._pending[transport] = time.monotonic_ns()

    def take(self, transport: asyncio.BaseTransport | None) -> int | None:
        """The stamp of the request now being handled on ``transport`` (None when nothing was stamped)."""
        if transport is None:
            return None
        return self._pending.pop(transport, None)


class _Stamping(asyncio.Protocol):
    """Forwards every protocol callback to aiohttp's handler; stamps before the bytes are parsed."""

    def __init__(self, inner: asyncio.Protocol, clock: ArrivalClock) -> None:
        self._inner = inner
        self._clock = clock
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._clock.stamp(self._transport)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
