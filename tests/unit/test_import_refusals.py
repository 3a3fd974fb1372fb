"""`analyze --import` refuses records that cannot be true: exit 2, the file, row and column, nothing written.

Each case edits one cell (or column) of a small copy of an original records file, so the refusal is the only
thing wrong with it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli import main
from tests.unit.test_analysis_golden import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
Rows = list[dict[str, str]]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _rows(name: str, limit: int) -> Rows:
    with (FIXTURES / name).open(encoding="utf-8", newline="") as fh:
        return [dict(r) for _i, r in zip(range(limit), csv.DictReader(fh), strict=False)]


def _write(path: Path, rows: Rows) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _set(row: int, column: str, value: str) -> Callable[[Rows], Rows]:
    def edit(rows: Rows) -> Rows:
        rows[row][column] = value
        return rows

    return edit


def _drop(column: str) -> Callable[[Rows], Rows]:
    return lambda rows: [{k: v for k, v in r.items() if k != column} for r in rows]


def _duplicate(rows: Rows) -> Rows:
    return [*rows, dict(rows[1])]


MULTI = ("tr115v2_runtimes.csv", "tr115")
CALLS = ("tr111v2_rust_single_agent_calls.csv", "tr111")
AGENTS = ("tr109_python_single_agent.csv", "tr109")

CASES: list[tuple[str, tuple[str, str], Callable[[Rows], Rows], str]] = [
    ("no config column", MULTI, _drop("config"), "missing column(s) config"),
    ("no wall column", MULTI, _drop("concurrent_wall_s"), "missing column(s) concurrent_wall_s"),
    ("infinite duration", MULTI, _set(2, "a_exec_s", "inf"), "row 4, column a_exec_s: 'inf' is not a finite number"),
    ("NaN duration", MULTI, _set(0, "b_exec_s", "nan"), "row 2, column b_exec_s: 'nan' is not a finite number"),
    ("text for a number", MULTI, _set(5, "a_tps_avg", "fast"), "row 7, column a_tps_avg: 'fast' is not a number"),
    ("exec longer than wall", MULTI, _set(3, "a_exec_s", "1e9"), "row 5, column a_exec_s"),
    ("negative wall", MULTI, _set(1, "concurrent_wall_s", "-5"), "row 3, column concurrent_wall_s: -5 is not above 0"),
    ("zero duration", MULTI, _set(4, "b_exec_s", "0"), "row 6, column b_exec_s: 0 is not above 0"),
    ("fractional tokens", MULTI, _set(2, "a_tokens", "12.5"), "row 4, column a_tokens: 12.5 is not a non-negative"),
    ("negative tokens", MULTI, _set(2, "b_call1_tokens", "-3"), "row 4, column b_call1_tokens: -3 is not a non-neg"),
    ("duplicate run", MULTI, _duplicate, "row 12 repeats row 3"),
    ("another report", MULTI, _set(0, "report", "TR114_v2"), "row 2, column report: TR114_v2 is another report"),
    ("empty config cell", MULTI, _set(6, "config", ""), "row 8, column config: empty"),
    ("call: zero TTFT", CALLS, _set(3, "ttft_ms", "0"), "row 5, column ttft_ms: 0 is not above 0"),
    ("call: negative tokens", CALLS, _set(1, "tokens", "-1"), "row 3, column tokens: -1 is not a non-negative"),
    ("call: duplicate", CALLS, _duplicate, "row 12 repeats row 3"),
    ("agent run: no agent column", AGENTS, _drop("agent"), "missing column(s) agent"),
    ("agent run: negative duration", AGENTS, _set(0, "execution_time_s", "-1"), "row 2, column execution_time_s"),
]


@pytest.mark.parametrize(("name", "source", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_refusal_exits_2_names_row_and_column_and_writes_nothing(
    name: str,
    source: tuple[str, str],
    edit: Callable[[Rows], Rows],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv_name, report = source
    bad = _write(tmp_path / "bad.csv", edit(_rows(csv_name, 10)))
    out = tmp_path / "never"
    assert main(["analyze", "--import", str(bad), "--report", report, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and str(bad) in err and message in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_extra_columns_are_ignored_and_default_out_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{**r, "something_new": "x"} for r in _rows("tr115v2_runtimes.csv", 10)]
    good = _write(tmp_path / "good.csv", rows)
    monkeypatch.setenv("HARNESS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    assert main(["analyze", "--import", str(good), "--report", "tr115"]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "artifacts" / "tr115-import" / "verdicts.json").is_file()
    assert "tr115.async_std.mean" in printed and "report written to" in printed
