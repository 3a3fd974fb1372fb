"""One writer per artifact folder: an exclusive lock held for the whole sweep.

The lock is ``flock`` on ``<folder>/.sweep.lock``, removed on release; the kernel drops the lock when its
holder exits, however it exits (SIGKILL included), so a dead holder never blocks a resume. The file names its
holder (host, pid, start time, command): a second reproduce into the folder is refused at once with those
facts, and a resume that finds a previous holder's name there (it died without releasing) takes over and
says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.artifacts import LOCK_FILE
from harness.errors import BadInputError


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a folder's lock."""

    host: str
    pid: int
    started_at: str
    command: str = ""

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, started {self.started_at}"

    @classmethod
    def me(cls, command: str = "") -> Holder:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return cls(host=socket.gethostname(), pid=os.getpid(), started_at=now, command=command)


@dataclass
class FolderLock:
    """A held lock; ``previous`` names a holder that died without releasing it (None after a clean release)."""

    path: Path
    fd: int
    previous: Holder | None

    def release(self) -> None:
        """Remove the lock file, then drop the lock (an opener that raced the removal notices and retries)."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _read_holder(fd: int) -> Holder | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        body: Any = json.loads(raw) if raw.strip() else None
        if not isinstance(body, dict):
            return None
        return Holder(str(body["host"]), int(body["pid"]), str(body["started_at"]), str(body.get("command", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def acquire(folder: Path, holder: Holder) -> FolderLock:
    """Take the folder's lock (the folder must exist) or raise :class:`BadInputError` naming the holder."""
    path = folder / LOCK_FILE
    for _ in range(100):
        fd = _locked_fd(folder, path)
        # The file may have been removed (a release) between our open and our lock: then we locked a file nobody
        # else will ever see, so try again on the current one.
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise BadInputError(f"cannot lock {folder}: its lock file keeps changing", hint="try again")
    previous = _read_holder(fd)
    body = json.dumps(
        {"host": holder.host, "pid": holder.pid, "started_at": holder.started_at, "command": holder.command},
        sort_keys=True,
    )
    os.ftruncate(fd, 0)
    os.pwrite(fd, (body + "\n").encode(), 0)
    return FolderLock(path, fd, previous)


def _locked_fd(folder: Path, path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise BadInputError(
            f"cannot lock {folder}: {exc.strerror}", hint="pass an --out folder you can write to"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = _read_holder(fd)
        os.close(fd)
        who = other.describe() if other else "a process that has not written its name yet"
        raise BadInputError(
            f"{folder} is being written by another reproduce ({who})",
            hint="wait for it to finish (then re-run to resume), or pass another --out folder",
        ) from None
    except OSError as exc:
        os.close(fd)
        raise BadInputError(f"cannot lock {folder}: {exc.strerror}", hint="use a local folder for --out") from None
    return fd


@contextlib.contextmanager
def holding(folder: Path, holder: Holder) -> Iterator[FolderLock]:
    """``with holding(folder, Holder.me()) as lock:`` — the lock for the block, released however it ends."""
    lock = acquire(folder, holder)
    try:
        yield lock
    finally:
        lock.release()
