"""Refuse an originals' records file that cannot be true, before one number of it is judged.

Each record shape (:data:`SHAPES`) names its required columns, the durations that must be positive, the counts
that must be non-negative integers and the columns that identify a run. Every problem is one
:class:`BadInputError` naming the file, the row (as a spreadsheet shows it: the header is row 1) and the column.
Columns a shape does not name are ignored, so an export with extra fields still imports.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import BadInputError

_FIX = "fix or drop the row and import again; the kit never repairs the originals' data"


@dataclass(frozen=True)
class Shape:
    """One kind of records file: what must be there and what each value may be."""

    name: str
    signature: frozenset[str]
    required: tuple[str, ...]
    positive: tuple[str, ...]
    """durations and rates that are > 0 in any run that happened"""
    counts: tuple[str, ...]
    """patterns (regex, full match) of token and call counts: non-negative integers"""
    numbers: tuple[str, ...]
    """patterns of every other column read as a number: finite when present"""
    key: tuple[str, ...]
    """(with ``runtime`` when present) what makes a row one run"""


_COUNT_PATTERNS = (r"(?:[ab]_)?tokens", r"[ab]_call\d+_tokens", r"(?:[ab]_)?llm_calls", r"(?:[ab]_)?files_ingested")
_NUMBER_PATTERNS = (
    r"(?:[ab]_)?num_gpu",
    r"(?:[ab]_)?num_ctx",
    r"(?:[ab]_)?temperature",
    r"(?:[ab]_)?tps(?:_avg|_p95)?",
    r"[ab]_call\d+_(?:tps|ttft_ms|load_ms)",
    r"(?:[ab]_)?ttft_ms(?:_avg|_p95)?",
    r"(?:[ab]_)?(?:load|prompt_eval|eval)_ms(?:_sum)?",
    r"sequential_estimate_s",
)

MULTI = Shape(
    name="multi-agent runs",
    signature=frozenset({"a_exec_s", "b_exec_s", "concurrent_wall_s"}),
    required=("config", "run_index", "a_exec_s", "b_exec_s", "concurrent_wall_s"),
    positive=("a_exec_s", "b_exec_s", "concurrent_wall_s"),
    counts=_COUNT_PATTERNS,
    numbers=_NUMBER_PATTERNS,
    key=("config", "run_index"),
)
CALLS = Shape(
    name="single-agent calls",
    signature=frozenset({"agent", "stage", "tps", "ttft_ms"}),
    required=("config", "agent", "run_index", "stage", "tps", "ttft_ms", "tokens"),
    positive=("ttft_ms", "workflow_total_s"),
    counts=_COUNT_PATTERNS,
    numbers=_NUMBER_PATTERNS,
    key=("config", "agent", "run_index", "stage"),
)
AGENT_RUNS = Shape(
    name="single-agent runs",
    signature=frozenset({"agent", "tps_avg"}),
    required=("config", "agent", "run_index", "tps_avg", "ttft_ms_avg"),
    positive=("ttft_ms_avg", "execution_time_s", "total_duration_ms"),
    counts=_COUNT_PATTERNS,
    numbers=_NUMBER_PATTERNS,
    key=("config", "agent", "run_index"),
)
SHAPES = (MULTI, CALLS, AGENT_RUNS)


def shape_of(columns: set[str], kind: str | None) -> Shape:
    """The shape the report's kind asks for (multi_agent → multi-agent runs), else the one the columns show."""
    if kind == "multi_agent":
        return MULTI
    candidates = [s for s in SHAPES if s.signature <= columns]
    if kind == "single_agent":
        candidates = [s for s in candidates if s is not MULTI] or [AGENT_RUNS if "tps_avg" in columns else CALLS]
    if not candidates:
        raise BadInputError(
            "not a records file the kit knows",
            hint="expected multi-agent columns (a_exec_s, b_exec_s, concurrent_wall_s), per-call columns "
            "(agent, stage, tps, ttft_ms) or per-agent-run columns (agent, tps_avg)",
        )
    return candidates[0]


def _matching(columns: list[str], patterns: tuple[str, ...]) -> list[str]:
    return [c for c in columns if any(re.fullmatch(p, c) for p in patterns)]


def _number(path: Path, row: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadInputError(f"{path}: row {row}, column {column}: {text!r} is not a number", hint=_FIX) from None
    if not math.isfinite(value):
        raise BadInputError(f"{path}: row {row}, column {column}: {text!r} is not a finite number", hint=_FIX)
    return value


def check(path: Path, raw: pd.DataFrame, *, report: str, kind: str | None) -> Shape:
    """Every refusal of the import, in file order; returns the shape the rows were checked against."""
    columns = [str(c) for c in raw.columns]
    try:
        shape = shape_of(set(columns), kind)
    except BadInputError as exc:
        raise BadInputError(f"{path}: {exc}", hint=exc.hint) from None
    missing = [c for c in shape.required if c not in columns]
    if missing:
        raise BadInputError(
            f"{path}: missing column(s) {', '.join(missing)} required for {shape.name}",
            hint=f"a {shape.name} file needs: {', '.join(shape.required)}",
        )
    counts = _matching(columns, shape.counts)
    numbers = [c for c in _matching(columns, shape.numbers) if c not in counts]
    key = (("runtime",) if "runtime" in columns else ()) + shape.key
    seen: dict[tuple[str, ...], int] = {}
    for i, rec in enumerate(raw.to_dict("records")):
        row = i + 2
        cells = {str(k): str(v).strip() for k, v in rec.items()}
        _check_report(path, row, cells.get("report", ""), report)
        for column in shape.required:
            if not cells[column]:
                raise BadInputError(f"{path}: row {row}, column {column}: empty, but every run needs it", hint=_FIX)
        for column in [*numbers, *(c for c in shape.positive if c in columns), *counts, "run_index"]:
            if cells[column]:
                _number(path, row, column, cells[column])
        for column in (c for c in shape.positive if c in columns and cells[c]):
            if float(cells[column]) <= 0:
                raise BadInputError(f"{path}: row {row}, column {column}: {cells[column]} is not above 0", hint=_FIX)
        for column in [*counts, "run_index"]:
            text = cells.get(column, "")
            if text and (float(text) < 0 or not float(text).is_integer()):
                raise BadInputError(
                    f"{path}: row {row}, column {column}: {text} is not a non-negative integer", hint=_FIX
                )
        if shape is MULTI:
            _check_balance(path, row, cells)
        ident = tuple(str(int(float(cells[c]))) if c == "run_index" else cells.get(c, "") for c in key)
        if ident in seen:
            raise BadInputError(
                f"{path}: row {row} repeats row {seen[ident]}: the same "
                + ", ".join(f"{c} {v}" for c, v in zip(key, ident, strict=True)),
                hint="each run appears once; drop the duplicate",
            )
        seen[ident] = row
    return shape


def _check_report(path: Path, row: int, cell: str, report: str) -> None:
    if not cell:
        return
    named = cell.lower().partition("_")[0]
    if named != report.lower():
        raise BadInputError(
            f"{path}: row {row}, column report: {cell} is another report than {report}",
            hint=f"import {cell}'s records with --report {named}, or pass this report's own records",
        )


def _check_balance(path: Path, row: int, cells: dict[str, str]) -> None:
    """The originals' efficiency cannot exceed 100 %: neither agent can run longer than the concurrent wall."""
    a, b, wall = (float(cells[c]) for c in ("a_exec_s", "b_exec_s", "concurrent_wall_s"))
    for side, value in (("a_exec_s", a), ("b_exec_s", b)):
        if value > wall * (1 + 1e-9):
            raise BadInputError(
                f"{path}: row {row}, column {side}: {value:g} s is longer than concurrent_wall_s {wall:g} s "
                f"(efficiency {(a + b) / wall / 2 * 100:.2f} % by the originals' formula, above 100 %)",
                hint=_FIX,
            )
