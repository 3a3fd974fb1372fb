"""The sweep's progress display: a live bar on a terminal, one plain line per finished run elsewhere."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from harness.console import RunBar

RUN = SimpleNamespace(kind="isolated", config_id="003-hetero-long-config-name", runtime="async-std", repetition=2)


def _shown(console: Console, buf: io.StringIO) -> list[str]:
    bar = RunBar(console, "tr114 runs")
    bar(0, 243, RUN, None)  # type: ignore[arg-type]
    bar(26, 243, RUN, SimpleNamespace(duration_s=2.4, status="ok", error=None))  # type: ignore[arg-type]
    bar(27, 243, RUN, SimpleNamespace(duration_s=2.6, status="failed", error="agent exited 1"))  # type: ignore[arg-type]
    bar.close()
    return [line for line in buf.getvalue().replace("\r", "\n").splitlines() if line.strip()]


@pytest.mark.parametrize("width", [60, 80, 160])
def test_a_narrow_terminal_cuts_the_run_label_never_the_counts(width: int) -> None:
    buf = io.StringIO()
    lines = _shown(Console(file=buf, width=width, force_terminal=True, color_system=None), buf)
    last = next(line for line in reversed(lines) if "27/243" in line)
    assert "ETA " in last and "failures 1" in last
    assert all(len(line.replace("\x1b[2K", "")) <= width for line in lines if "/243" in line)


def test_off_a_terminal_each_finished_run_is_one_plain_line_with_its_cause() -> None:
    buf = io.StringIO()
    lines = _shown(Console(file=buf, width=80, force_terminal=False), buf)
    assert lines[0].startswith("[26/243] isolated 003-hetero-long-config-name async-std rep 2: ok in 2.4 s")
    assert "FAILED (agent exited 1)" in lines[1] and "failures 1" in lines[1]
    assert len(lines) == 2
