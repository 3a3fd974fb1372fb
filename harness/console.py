"""How the CLI shows progress on a terminal: one line per pipeline step, one bar per sweep (rich, on stderr)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.progress import Progress

if TYPE_CHECKING:
    from rich.console import Console

    from harness.artifacts import RunResult
    from harness.protocol.plan import Run


def say(console: Console) -> Progress:
    """Progress lines on stderr, printed as they are (paths and names are not markup)."""
    return lambda line: console.print(line, markup=False, highlight=False)


class RunBar:
    """The sweep's progress bar (rich), started at the first run; counts the failures it is shown."""

    def __init__(self, console: Console, title: str) -> None:
        self._console, self._title, self.failures = console, title, 0
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int, run: Run, result: RunResult | None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        if self._bar is None:
            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[current]}"),
                console=self._console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self._title, total=None, current="")
        self.failures += int(result is not None and result.status == "failed")
        label = f"{run.kind} {run.config_id} {run.runtime} rep {run.repetition}"
        self._bar.update(self._task, completed=done, total=total, current=f"{label}  failures: {self.failures}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
