"""A bundle's compose files are the kit's own, or the user has read the difference and said so.

A bundle is unsigned: anyone can edit its compose files and recompute ``bundle.json``. The translator refuses
what would reach the host (harness.containers.policy) whatever the source; on top of that, a bundle whose
compose files differ from this kit's (by sha256) re-runs only with ``--accept-bundle-compose``, after the
difference has been shown.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from pathlib import Path

from harness.errors import BadInputError

SHOWN_LINES = 60


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.yml"))} if folder.is_dir() else {}


def differences(bundled: Path, kit: Path) -> list[str]:
    """Unified diff lines between the bundle's compose files and this kit's (empty when every sha256 agrees)."""
    theirs, ours = _files(bundled), _files(kit)
    lines: list[str] = []
    for name in sorted(set(theirs) | set(ours)):
        a, b = ours.get(name), theirs.get(name)
        if a is not None and b is not None and hashlib.sha256(a).digest() == hashlib.sha256(b).digest():
            continue
        lines += difflib.unified_diff(
            (a or b"").decode("utf-8", "replace").splitlines(),
            (b or b"").decode("utf-8", "replace").splitlines(),
            fromfile=f"kit/{name}" if a is not None else "/dev/null",
            tofile=f"bundle/{name}" if b is not None else "/dev/null",
            lineterm="",
        )
    return lines


def check(bundled: Path, kit: Path, *, accept: bool, show: Callable[[str], object], kit_version: str) -> None:
    """Show the difference; refuse it unless ``accept``."""
    diff = differences(bundled, kit)
    if not diff:
        return
    for line in diff[:SHOWN_LINES]:
        show(line)
    if len(diff) > SHOWN_LINES:
        show(f"… {len(diff) - SHOWN_LINES} more diff lines")
    if not accept:
        raise BadInputError(
            f"the bundle's compose files differ from kit {kit_version}'s (shown above)",
            hint="read the difference; re-run with --accept-bundle-compose to use the bundle's files anyway",
        )
    show("using the bundle's compose files as accepted (--accept-bundle-compose)")
