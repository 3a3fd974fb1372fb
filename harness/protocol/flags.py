"""Ollama options as agent command-line flags, derived from :class:`harness.protocol.spec.Options`.

The spec's ``Options`` model is the one list of option names: its field order is the wire order of
``options`` in a request body, and every field is a ``--<prefix>-<name-with-dashes>`` flag of both agents (the
Python ``harness agent`` and the Rust ``chimeraforge-agent``/``chimeraforge-multi``). A test checks the Rust
agents' flags and wire order against :data:`OPTION_NAMES`, so adding an option here without the agents fails.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping

from harness.protocol.spec import Options

OPTION_NAMES: tuple[str, ...] = tuple(Options.model_fields)
"""Every Ollama option a spec may set, in wire order."""

OptionValues = dict[str, float | int]
"""Set options by name, as sent on the wire."""


def _kind(name: str) -> type[int] | type[float]:
    annotation = Options.model_fields[name].annotation
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    kinds = [a for a in args if a is not type(None)]
    if kinds == [int]:
        return int
    if kinds == [float]:
        return float
    raise TypeError(f"Options.{name} must be int | None or float | None, not {annotation}")


OPTION_KINDS: dict[str, type[int] | type[float]] = {name: _kind(name) for name in OPTION_NAMES}
"""int or float per option: an int option's flag refuses ``8.5``; a float option's keeps ``1`` a float."""


def option_flag(prefix: str, name: str) -> str:
    """``--chimera-num-gpu`` for prefix ``chimera`` and option ``num_gpu``."""
    return f"--{prefix}-{name.replace('_', '-')}"


def option_flags(prefix: str, options: Mapping[str, float | int] | None) -> list[str]:
    """The flags and values that make an agent send ``options`` (none for None: the baseline agent)."""
    unknown = set(options or {}) - set(OPTION_NAMES)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
    return [part for name, value in (options or {}).items() for part in (option_flag(prefix, name), str(value))]
