"""Who made a container: the controlling process's identity, written on every resource a stack creates.

A stack's containers, networks and volumes carry the host, pid and start time of the kit process that made
them (and, for a sweep, a key of its artifact folder). From those labels alone anyone can tell whether the
controller is still alive on this host: ``clean`` then removes only what a dead controller left, never a
running sweep of another user, and a resumed sweep removes only its own folder's leftovers.

The start time is the kernel's (``/proc/<pid>/stat`` field 22, clock ticks since boot), so a reused pid is not
mistaken for the controller; where ``/proc`` is missing, a live pid is taken as the controller.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LABEL_CONTROLLER = "io.chimeraforge.controller"
"""``host/pid/start ticks``: one label to compare and filter by."""
LABEL_CONTROLLER_HOST = "io.chimeraforge.controller.host"
LABEL_CONTROLLER_PID = "io.chimeraforge.controller.pid"
LABEL_CONTROLLER_STARTED = "io.chimeraforge.controller.started_at"
LABEL_SWEEP = "io.chimeraforge.sweep"
"""Key of the artifact folder a sweep's stacks write for (host + resolved path), for its own reaping."""


def _start_ticks(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    fields = raw.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class Controller:
    """One kit process as its labels name it."""

    host: str
    pid: int
    start_ticks: str
    started_at: str = ""

    @property
    def key(self) -> str:
        return f"{self.host}/{self.pid}/{self.start_ticks}"

    def labels(self, sweep: str | None = None) -> dict[str, str]:
        out = {
            LABEL_CONTROLLER: self.key,
            LABEL_CONTROLLER_HOST: self.host,
            LABEL_CONTROLLER_PID: str(self.pid),
            LABEL_CONTROLLER_STARTED: self.started_at,
        }
        if sweep:
            out[LABEL_SWEEP] = sweep
        return out

    def alive(self) -> bool | None:
        """True/False on this host; None for another host's controller (this host cannot tell)."""
        if self.host != socket.gethostname():
            return None
        ticks = _start_ticks(self.pid)
        if ticks is not None:
            return ticks == self.start_ticks
        if Path("/proc/self/stat").exists():
            return False  # /proc works here and has no such pid
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@functools.cache
def current() -> Controller:
    """This process (computed once: the labels of every stack it makes agree)."""
    pid = os.getpid()
    return Controller(
        host=socket.gethostname(),
        pid=pid,
        start_ticks=_start_ticks(pid) or "unknown",
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def from_labels(labels: Mapping[str, str]) -> Controller | None:
    """The controller a resource names, or None when it names none (made by an older kit)."""
    key = labels.get(LABEL_CONTROLLER)
    if not key or key.count("/") < 2:
        return None
    host, pid, ticks = key.rsplit("/", 2)
    try:
        return Controller(
            host=host, pid=int(pid), start_ticks=ticks, started_at=labels.get(LABEL_CONTROLLER_STARTED, "")
        )
    except ValueError:
        return None


def sweep_key(folder: Path) -> str:
    """The label value that ties stacks to one artifact folder on one host."""
    blob = f"{socket.gethostname()}:{folder.resolve()}".encode()
    return hashlib.sha256(blob).hexdigest()[:16]
