"""How many sequences are decoding on the simulated GPU right now, within one instance or across several.

A :class:`LocalDevice` counts this instance's decoding sequences. A :class:`SharedDevice` lets separate
processes (or containers sharing the model volume) time-slice one simulated GPU: each instance keeps one
small JSON file ``<dir>/<instance id>.json`` holding its active count, rewritten atomically on every change
and refreshed by a heartbeat; readers sum the fresh files. A file whose heartbeat is older than
``stale_after_s`` (a crashed instance) is ignored. Reads are cached for ``cache_s`` so a decode loop can ask
often without touching the disk per token. CLOCK_MONOTONIC is shared by all processes (and containers) on a
host, so heartbeat times compare across instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from pathlib import Path

from harness.atomic import write_text_atomic


class LocalDevice:
    """One instance's own GPU: only its own sequences share it."""

    def __init__(self) -> None:
        self._active = 0

    @property
    def local_active(self) -> int:
        return self._active

    def enter(self) -> None:
        self._active += 1
        self._changed()

    def leave(self) -> None:
        self._active = max(self._active - 1, 0)
        self._changed()

    def active_sequences(self) -> int:
        """Sequences decoding on the device now, this instance's included."""
        return self._active

    def _changed(self) -> None:
        """Hook for subclasses that publish the count."""

    async def start(self) -> None:
        """Nothing to set up for a private device."""

    async def stop(self) -> None:
        """Nothing to clean up for a private device."""


class SharedDevice(LocalDevice):
    """A device shared through files in ``directory`` by every instance pointed at it."""

    def __init__(
        self,
        directory: Path,
        *,
        cache_s: float = 0.02,
        heartbeat_s: float = 1.0,
        stale_after_s: float = 5.0,
    ) -> None:
        super().__init__()
        self.directory = directory
        self.instance_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._path = directory / f"{self.instance_id}.json"
        self._cache_s = cache_s
        self._heartbeat_s = heartbeat_s
        self._stale_ns = int(stale_after_s * 1e9)
        self._others = 0
        self._read_at = -1.0
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._publish()
        self._heartbeat = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        # The last instance of a group removes the group's folder: per-run groups on a shared model volume
        # must not pile up (rmdir fails harmlessly while another instance still has its file there).
        with contextlib.suppress(OSError):
            self.directory.rmdir()

    def _changed(self) -> None:
        self._publish()
        self._read_at = -1.0  # our own change may matter to the caller's next rate

    def active_sequences(self) -> int:
        now = time.monotonic()
        if now - self._read_at >= self._cache_s:
            self._others = self._read_others()
            self._read_at = now
        return self.local_active + self._others

    def _publish(self) -> None:
        body = {
            "pid": os.getpid(),
            "active": self.local_active,
            "heartbeat_monotonic_ns": time.monotonic_ns(),
        }
        # The directory may have vanished (another instance's cleanup of a test dir): the next beat retries.
        with contextlib.suppress(OSError):
            write_text_atomic(self._path, json.dumps(body), fsync=False)

    def _read_others(self) -> int:
        total = 0
        now = time.monotonic_ns()
        try:
            entries = list(self.directory.glob("*.json"))
        except OSError:
            return 0
        for path in entries:
            if path == self._path:
                continue
            try:
                body = json.loads(path.read_text())
                active = int(body["active"])
                beat = int(body["heartbeat_monotonic_ns"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if now - beat <= self._stale_ns:
                total += max(active, 0)
        return total

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            if not self._path.parent.is_dir():
                with contextlib.suppress(OSError):
                    self.directory.mkdir(parents=True, exist_ok=True)
            self._publish()
