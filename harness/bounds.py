"""Command-line values that are finite and inside a stated range, refused by argparse with the range shown.

``inf``, ``nan`` and out-of-range numbers once hung the kit (``--time-scale inf``, ``--runs 99999999999``) or
overflowed deep inside it; here they are one ``Error:`` line before anything starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any


def number(kind: type, low: float, high: float, *, low_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` in [low, high] (or (low, high]); the message states the range."""
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"{text} is out of range: allowed {shown}")
        return value

    return parse


def folder_path(text: str) -> Path:
    """An argparse type for a folder to write: an empty string is not the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not a folder: pass one, e.g. --out ~/runs/tr114")
    return Path(text)
