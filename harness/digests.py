"""The sha256 of a file: one helper for every layer that names files by their digest (model weights, the
llama.cpp sdist and binary, manifest subjects, bundle members)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in chunks (model files run to gigabytes)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
