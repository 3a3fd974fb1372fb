"""The one progress callback type: a function that shows one line of progress to a person."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """The progress callback that shows nothing."""
    return None
