"""Loaded-model state: when a request pays a cold load, and when a loaded model expires.

Like Ollama's scheduler, one runner per model is loaded with a given ``num_ctx``/``num_gpu``; a request whose
values differ forces a reload, which waits until the runner's active sequences finish (sampling options such
as temperature never do). After each request the runner expires ``keep_alive`` later (request value, else the
server default; negative: never; 0: unload as soon as it is idle). Expiry is real time, not scaled: it is a
duration the client chose, not a delay the simulator introduces.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.sim.catalog import ModelSpec

_GO_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_keep_alive(value: object) -> int:
    """Ollama's ``keep_alive``: a number of seconds or a Go duration string (``"5m"``, ``"1h30m"``, ``"-1"``).

    Returns nanoseconds; negative means "keep loaded forever". Raises ``ValueError`` for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid keep_alive {value!r}")
    if isinstance(value, int | float):
        return int(value * 1e9)
    if not isinstance(value, str):
        raise ValueError(f"invalid keep_alive {value!r}")
    text = value.strip()
    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    total = 0
    pos = 0
    for match in _GO_DURATION_RE.finditer(body):
        if match.start() != pos:
            break
        total += int(float(match.group(1)) * _UNIT_NS[match.group(2)])
        pos = match.end()
    if pos != len(body) or not body:
        raise ValueError(f"invalid keep_alive duration {value!r}")
    return sign * total


def go_duration(ns: int) -> str:
    """A duration as Go's ``time.Duration.String`` prints it for whole seconds and up (``5m0s``, ``1h0m0s``)."""
    if ns < 0:
        return "-" + go_duration(-ns)
    seconds = ns // 10**9
    if ns % 10**9 or seconds == 0:
        return f"{ns / 1e9:g}s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass
class Runner:
    """A model loaded with fixed context/offload settings."""

    model: ModelSpec
    num_ctx: int
    num_gpu: int | None
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    active: int = 0
    expires_at_ns: int | None = None  # None while in use or kept forever
    keep_forever: bool = False
    unload_when_idle: bool = False

    def matches(self, num_ctx: int, num_gpu: int | None) -> bool:
        return self.num_ctx == num_ctx and self.num_gpu == num_gpu

    def expired(self, now_ns: int) -> bool:
        return self.active == 0 and self.expires_at_ns is not None and now_ns >= self.expires_at_ns


class RunnerPool:
    """All loaded runners of one instance; coroutine-safe within its event loop."""

    def __init__(
        self,
        *,
        cold_load_s: Callable[[ModelSpec], float],
        warm_load_s: float,
        time_scale: float,
        default_keep_alive_ns: int,
    ) -> None:
        self._cold_load_s = cold_load_s
        self._default_keep_alive_ns = default_keep_alive_ns
        self._warm_load_s = warm_load_s
        self._scale = time_scale
        self._runners: dict[str, Runner] = {}
        self._cond = asyncio.Condition()

    async def acquire(self, model: ModelSpec, num_ctx: int, num_gpu: int | None) -> tuple[Runner, bool]:
        """Wait for a runner with these settings, loading one if needed; returns (runner, was_cold)."""
        async with self._cond:
            while True:
                runner = self._runners.get(model.name)
                if runner is not None and runner.expired(time.monotonic_ns()):
                    del self._runners[model.name]
                    runner = None
                if runner is None:
                    runner = Runner(model, num_ctx, num_gpu)
                    self._runners[model.name] = runner
                    cold = True
                    break
                if runner.matches(num_ctx, num_gpu):
                    cold = False
                    break
                if runner.active == 0:
                    del self._runners[model.name]
                    continue
                await self._cond.wait()
            runner.active += 1
            runner.expires_at_ns = None
        try:
            if cold:
                await asyncio.sleep(self._cold_load_s(model) * self._scale)
                runner.loaded.set()
            else:
                await runner.loaded.wait()
                await asyncio.sleep(self._warm_load_s * self._scale)
        except BaseException:
            await self.release(runner, None)
            raise
        return runner, cold

    async def release(self, runner: Runner, keep_alive_ns: int | None) -> None:
        """One sequence finished; restart the keep-alive clock (``None``: use the server default)."""
        ka = self._default_keep_alive_ns if keep_alive_ns is None else keep_alive_ns
        async with self._cond:
            runner.active = max(runner.active - 1, 0)
            if ka < 0:
                runner.keep_forever = True
                runner.expires_at_ns = None
            else:
                runner.keep_forever = False
                runner.expires_at_ns = time.monotonic_ns() + ka
            if (
                runner.active == 0
                and (ka == 0 or runner.unload_when_idle or not runner.loaded.is_set())
                and self._runners.get(runner.model.name) is runner
            ):
                del self._runners[runner.model.name]
            self._cond.notify_all()

    def current(self, model_name: str) -> Runner | None:
        """The runner of ``model_name`` now, loaded or loading (None: nothing to unload)."""
        return self._runners.get(model_name)

    async def unload(self, model_name: str, only: Runner | None = None) -> None:
        """``keep_alive: 0`` with no prompt: unload now if idle, else as soon as it goes idle.

        ``only``: unload that runner, not one loaded since the unload was asked for.
        """
        async with self._cond:
            runner = self._runners.get(model_name)
            if runner is None or (only is not None and runner is not only):
                return
            if runner.active == 0:
                del self._runners[model_name]
            else:
                runner.unload_when_idle = True
            self._cond.notify_all()

    async def clear(self) -> None:
        async with self._cond:
            self._runners = {k: r for k, r in self._runners.items() if r.active > 0}
            self._cond.notify_all()

    def loaded(self) -> list[Runner]:
        """Runners loaded now (expired ones are left out)."""
        now = time.monotonic_ns()
        return [r for r in self._runners.values() if r.loaded.is_set() and not r.expired(now)]
