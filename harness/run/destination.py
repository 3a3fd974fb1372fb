"""Where a sweep may write: checked before anything runs, so a bad ``--out`` costs nothing and writes nothing.

A destination must be a folder that exists or can be created, outside the kit's own tree (its artifacts
folder excepted), not a system folder, writable, with room for a sweep; an existing folder must be empty or
an artifact folder already (a resume), never a folder of the user's other files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.artifacts import LOCK_FILE
from harness.errors import BadInputError

MIN_FREE_BYTES = 64 * 1024 * 1024
"""A sweep's JSON, logs, report and figures take a few MB; less free space than this will fail mid-sweep."""

SYSTEM_DIRS = frozenset(
    Path(p)
    for p in (
        "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
        "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/tmp",
        "/Users", "/System", "/Library", "/Applications", "/private", "/private/tmp", "/Volumes",
    )
)  # fmt: skip
"""Folders a sweep never writes into directly (their sub-folders are fine: /tmp/x, /home/me/runs)."""

_UNDER_SYSTEM = tuple(Path(p) for p in ("/proc", "/sys", "/dev", "/boot", "/etc", "/usr", "/bin", "/sbin"))
"""Trees no sweep writes anywhere inside."""


ARTIFACT_NAMES = frozenset({"sweep.json", "spec.toml", "plan.json", "runs"})
"""A folder holding any of these is an artifact folder (perhaps one a crash stopped before sweep.json)."""


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_destination(
    raw: Path,
    *,
    what: str,
    kit_root: Path,
    artifacts_dir: Path,
    min_free_bytes: int = MIN_FREE_BYTES,
    parent_only: bool = False,
) -> Path:
    """The resolved destination, or :class:`BadInputError` saying what is wrong and what to pass instead.

    ``parent_only``: ``raw`` is where artifact folders are made, not one of them (its contents are not checked).
    """
    hint = "pass a new folder outside the kit, e.g. --out ~/chimeraforge-runs/tr114"
    if str(raw).strip() == "":
        raise BadInputError(f"{what} is empty", hint=hint)
    path = Path(os.path.abspath(raw.expanduser()))
    resolved = path.resolve()
    home = Path.home().resolve()
    if resolved in SYSTEM_DIRS or resolved == home or any(_inside(resolved, s) for s in _UNDER_SYSTEM):
        raise BadInputError(f"{what} {raw} is a system folder ({resolved}); a sweep never writes there", hint=hint)
    if resolved.parent == Path("/") and not resolved.exists():
        raise BadInputError(f"{what} {raw} would be a new folder at the file system's root", hint=hint)
    kit = kit_root.resolve()
    if (_inside(resolved, kit) and not _inside(resolved, artifacts_dir.resolve())) or _inside(kit, resolved):
        raise BadInputError(
            f"{what} {raw} is inside the kit's own tree ({kit}) and not under its artifacts folder",
            hint=f"pass a folder under {artifacts_dir} or outside the kit",
        )
    existing = resolved
    while not existing.exists():
        if existing.is_symlink():
            raise BadInputError(f"{what} {raw}: {existing} is a dangling link", hint=hint)
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(f"{what} {raw}: {existing} is a file, not a folder", hint=hint)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(f"{what} {raw}: {existing} is not writable by this user", hint=hint)
    if existing == resolved and not parent_only:  # a parent (HARNESS_ARTIFACTS_DIR) holds many artifact folders
        _check_existing(resolved, raw, what)
    free = shutil.disk_usage(existing).free
    if free < min_free_bytes:
        raise BadInputError(
            f"{what} {raw}: only {free / 1e6:.1f} MB free on its file system, a sweep needs at least "
            f"{min_free_bytes / 1e6:.0f} MB",
            hint="free some space or pass a folder on another disk",
        )
    return resolved


def _check_existing(folder: Path, raw: Path, what: str) -> None:
    try:
        entries = {p.name for p in folder.iterdir()} - {LOCK_FILE}
    except OSError as exc:
        raise BadInputError(f"{what} {raw}: cannot list it ({exc.strerror})", hint="pass another folder") from None
    if entries and not entries & ARTIFACT_NAMES:
        shown = ", ".join(sorted(entries)[:3]) + (", …" if len(entries) > 3 else "")
        raise BadInputError(
            f"{what} {raw} holds other files ({shown}) and is not an artifact folder",
            hint="pass a new or empty folder (or an artifact folder to resume)",
        )
