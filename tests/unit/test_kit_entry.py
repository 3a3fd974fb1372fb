"""``./kit``'s Invoke program: typed options with defaults in --help, usage errors exit 2, exit codes passed on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def kit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "kit_program.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_help_types_options_and_shows_defaults() -> None:
    out = kit("--help", "reproduce").stdout
    assert "--runs=INT" in out and "--report=STRING" in out
    assert "(a number) simulator" in out
    assert "(default: 11434)" in kit("--help", "sim").stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["nosuchtask"],
        ["reproduce", "--runs", "abc"],
        ["verify"],
        ["plan", "--report", "tr110", "--bogus"],
        ["--no-such-core-flag"],
    ],
)
def test_usage_errors_exit_2_with_one_error_line(argv: list[str]) -> None:
    res = kit(*argv)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("Error: ") and "Traceback" not in res.stderr


def test_the_harness_exit_code_is_passed_on() -> None:
    res = kit("plan", "--report", "tr999")
    assert res.returncode == 2
    assert res.stderr.startswith("Error: no experiment spec")


def test_a_closed_pipe_is_not_a_traceback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "kit_program.py", "plan", "--report", "tr114"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err
