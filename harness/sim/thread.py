"""Run a :class:`SimServer` on its own event loop in a background thread, for synchronous callers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import TypeVar

from harness.sim.config import SimConfig
from harness.sim.recorder import RequestRecord
from harness.sim.server import SimServer

T = TypeVar("T")


class BackgroundSimServer:
    """``with BackgroundSimServer(config) as sim: httpx.get(sim.base_url + "/api/version")``."""

    def __init__(self, config: SimConfig, *, start_timeout_s: float = 30.0) -> None:
        self.server = SimServer(config)
        self._timeout = start_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started: Future[None] = Future()

    def start(self) -> None:
        """Start the thread and block until the server listens (re-raises a start failure)."""
        self._thread = threading.Thread(target=self._main, name="chimeraforge-sim", daemon=True)
        self._thread.start()
        self._started.result(timeout=self._timeout)

    def stop(self) -> None:
        """Stop the server and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(timeout=self._timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=self._timeout)
        self._loop = self._thread = None

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._started.set_exception(exc)
            loop.close()
            return
        self._started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Read server state on its own loop, so a snapshot never races a handler."""
        if self._loop is None:
            return fn()

        async def snap() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(snap(), self._loop).result(timeout=self._timeout)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def requests(self) -> list[RequestRecord]:
        return self._on_loop(lambda: self.server.requests)

    @property
    def emissions(self) -> dict[int, list[int]]:
        return self._on_loop(lambda: self.server.emissions)

    def __enter__(self) -> BackgroundSimServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
