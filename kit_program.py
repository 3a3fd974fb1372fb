"""``./kit``'s Invoke program: the tasks of ``tasks.py`` with the kit's exit codes.

Invoke exits 1 on a usage error and on Ctrl-C, which a script cannot tell from a failed run; the kit promises
2 for bad input (usage included) and 130 for an interrupt, and one ``Error:`` line instead of a traceback.
"""

from __future__ import annotations

import sys

from invoke import Collection, Program
from invoke.exceptions import ParseError

import tasks

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class KitProgram(Program):
    """Parse errors exit 2 with ``Error:``; an interrupt exits 130."""

    def _parsing(self, step: str, *args: object) -> None:
        try:
            getattr(super(), step)(*args)
        except (ParseError, ValueError) as exc:  # ValueError: a value that does not fit the option's type
            print(f"Error: {exc} (see ./kit --list, ./kit --help TASK)", file=sys.stderr)
            raise SystemExit(EXIT_BAD_INPUT) from None

    def parse_core(self, argv: list[str] | None) -> None:
        self._parsing("parse_core", argv)

    def parse_collection(self) -> None:
        self._parsing("parse_collection")

    def parse_tasks(self) -> None:
        self._parsing("parse_tasks")

    def parse_cleanup(self) -> None:
        self._parsing("parse_cleanup")

    def execute(self) -> None:
        try:
            super().execute()
        except KeyboardInterrupt:
            print("Error: interrupted", file=sys.stderr)
            raise SystemExit(EXIT_INTERRUPTED) from None


def main() -> None:
    program = KitProgram(name="kit", binary="./kit", namespace=Collection.from_module(tasks), version="0.1.0")
    program.run()


if __name__ == "__main__":
    main()
