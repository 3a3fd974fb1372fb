"""Write a file so that readers see the old bytes or the new ones, never a truncated mix.

Reports, figures and artifact JSON go through here: a full disk or a kill mid-write leaves the previous file
(or none) and no stray temporary file, because the bytes go to a unique temporary name beside the target and
are renamed into place only once flushed to disk.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()
"""What ``open(path, "w")`` would have given: mkstemp's 0600 would hide artifacts from other readers."""


def write_bytes_atomic(path: Path, data: bytes, *, fsync: bool = True) -> Path:
    """Replace ``path`` with ``data`` in one rename; on failure the temporary file is removed, the error re-raised.

    The temporary name is unique, so concurrent writers of one target never clobber each other's half-written
    file; the last rename wins whole. ``fsync=False`` for state that is rewritten every second anyway.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: Path, text: str, *, encoding: str = "utf-8", fsync: bool = True) -> Path:
    """:func:`write_bytes_atomic` for text."""
    return write_bytes_atomic(path, text.encode(encoding), fsync=fsync)
