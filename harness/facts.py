"""A captured fact that may be missing: the value, or :class:`Absent` with the reason it could not be read.

Provenance never guesses. Whatever the adapters (NVML, Docker, Ollama, the host) cannot tell is recorded as
``{"present": false, "reason": "..."}`` in place of the value, whole sections and single fields alike, so an
auditor sees *why* a figure is missing and a drift check compares the reason instead of an invented value.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Absent(BaseModel):
    """What could not be captured, and why (the adapter's own error text, e.g. ``NVMLError_NotSupported``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    present: Literal[False] = False
    reason: str = Field(min_length=1)


def absent(reason: str) -> Absent:
    """Shorthand used by the adapters; an empty reason is replaced, never stored."""
    return Absent(reason=reason.strip() or "unknown reason")


def value_or_none(fact: T | Absent) -> T | None:
    """The value of a fact, or None when it is absent (for code that only needs the value)."""
    return None if isinstance(fact, Absent) else fact
