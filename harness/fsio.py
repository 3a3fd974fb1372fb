"""Atomic file writes: a reader (or a crash) sees the old file or the whole new one, never a truncated one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from harness.errors import BadInputError


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write through a unique temp file in the same folder, fsync it, then rename over ``path``.

    A unique name (not a fixed ``.tmp``) keeps two writers from clobbering each other's half-written file; an
    OS error (read-only folder, full disk) removes the temp file and becomes one :class:`BadInputError`.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BadInputError(f"cannot write {path}: {exc.strerror}", hint="choose a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise BadInputError(
            f"cannot write {path}: {exc.strerror}", hint="free space or choose another folder"
        ) from None


def write_text_atomic(path: Path, text: str) -> None:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))
