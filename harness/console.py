"""How the CLI shows progress: one line per pipeline step, and per sweep either a live bar (a terminal) or one
plain line per finished run (CI, logs, a pipe). Both go to stderr: stdout carries results and paths only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.progress import Progress
from harness.run import eta

if TYPE_CHECKING:
    from rich.console import Console

    from harness.artifacts import RunResult
    from harness.protocol.plan import Run


def say(console: Console) -> Progress:
    """Progress lines on stderr, printed as they are (paths and names are not markup)."""
    return lambda line: console.print(line, markup=False, highlight=False)


BAR_WIDTH = 20
CLOCK_WIDTH = 7
MIN_LABEL_WIDTH = 24
"""Room kept for "ETA h:mm:ss  failures n" even on a terminal too narrow for the rest."""


def _label(run: Run) -> str:
    return f"{run.kind} {run.config_id} {run.runtime} rep {run.repetition}"


class RunBar:
    """The sweep's progress: done/total, the ETA from the run times observed so far, the run just finished and
    the failures. A live rich bar on a terminal; elsewhere one plain line per finished run."""

    def __init__(self, console: Console, title: str) -> None:
        self._console, self._title, self.failures = console, title, 0
        self._observed_s: list[float] = []
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int, run: Run, result: RunResult | None) -> None:
        if result is not None:
            self._observed_s.append(result.duration_s)
            self.failures += int(result.status == "failed")
        left = eta.clock(eta.remaining_s(0.0, self._observed_s, total - done)) if self._observed_s else "estimating"
        if not self._console.is_terminal:
            if result is not None:
                status = "ok" if result.status == "ok" else f"FAILED ({result.error or 'no cause recorded'})"
                self._console.print(
                    f"[{done}/{total}] {_label(run)}: {status} in {result.duration_s:.1f} s; "
                    f"failures {self.failures}; ETA {left}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,  # one line per run, whatever the width: logs are read by grep
                )
            return
        # ETA and failures first: on a narrow terminal the run's label is what gets cut, never the numbers
        self._live(done, total, f"ETA {left}  failures {self.failures}  {_label(run)}")

    def _live(self, done: int, total: int, current: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar
        from rich.table import Column

        if self._bar is None:
            # fixed widths for the title, bar, counts and clock; the rest of the line (ETA, failures, the run) is
            # cut at its end, so a narrow terminal still shows every number and no line wraps
            counts = 2 * len(str(total)) + 1
            fixed = len(self._title) + BAR_WIDTH + counts + CLOCK_WIDTH + 4  # four column gaps
            rest = max(MIN_LABEL_WIDTH, self._console.width - fixed - 1)
            self._bar = Bar(
                TextColumn("{task.description}", table_column=Column(no_wrap=True, min_width=len(self._title))),
                BarColumn(bar_width=BAR_WIDTH),
                MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=counts)),
                TimeElapsedColumn(table_column=Column(no_wrap=True, min_width=CLOCK_WIDTH)),
                TextColumn(
                    "{task.fields[current]}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=rest)
                ),
                console=self._console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self._title, total=total, current="")
        self._bar.update(self._task, completed=done, total=total, current=current)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
