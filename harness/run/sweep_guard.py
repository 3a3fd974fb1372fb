"""The frame around a sweep: its folder's lock, its own leftovers reaped, SIGTERM handled like Ctrl-C.

Everything here runs before the first container starts and after the last one is gone, whatever ends the
sweep, so an interrupted sweep leaves no lock, no stack and no empty folder it created behind.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from harness.artifacts import LOCK_FILE
from harness.errors import Terminated
from harness.run.folder_lock import FolderLock, Holder, holding


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) for the block: teardown runs, the edge exits 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def guarded(
    folder: Path,
    *,
    command: str,
    say: Callable[[str], Any],
    reap_own: Callable[[], list[str]] | None = None,
) -> Iterator[FolderLock]:
    """Create ``folder`` if needed, hold its lock for the block, reap the sweep's own leftovers first.

    ``reap_own`` removes stacks a previous controller of this folder left behind (it died: the lock is ours)
    and returns their names. A folder this call created and nothing else wrote into is removed again.
    """
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with holding(folder, Holder.me(command)) as lock:
            if lock.previous is not None:
                say(
                    f"note: took over the lock of {folder} from a reproduce that is gone ({lock.previous.describe()}); "
                    "resuming where it stopped"
                )
            if reap_own is not None:
                removed = reap_own()
                if removed:
                    say(f"note: removed {len(removed)} leftover resource(s) of this sweep: {', '.join(removed)}")
            yield lock
    finally:
        if created:
            with contextlib.suppress(OSError):
                if {p.name for p in folder.iterdir()} <= {LOCK_FILE}:
                    shutil.rmtree(folder)
