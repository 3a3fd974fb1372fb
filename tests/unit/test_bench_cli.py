"""`harness bench` refuses bad input with exit code 2 and an Error: line before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main


def test_unknown_section_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--only", "clients", "--only", "speed"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: --only: unknown section(s) speed") and "clients, peer, efficiency" in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_out_must_be_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
