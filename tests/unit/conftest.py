"""A small artifact folder made once per session by the local executor; tests that alter it work on a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ARGS = [
    "reproduce",
    "--report",
    "tr110",
    "--backend",
    "sim",
    "--runs",
    "1",
    "--configs",
    "^013$",
    "--time-scale",
    "0.01",
    "--executor",
    "local",
]


@pytest.fixture(scope="session")
def local_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tr110 config 013, one repetition, in-process simulator: three runs and a manifest. Do not modify."""
    out = tmp_path_factory.mktemp("made") / "tr110-local"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        assert main([*LOCAL_ARGS, "--out", str(out)]) == 0
    return out


@pytest.fixture
def artifact(local_artifact: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`local_artifact`."""
    copy = tmp_path / "mine" / local_artifact.name
    shutil.copytree(local_artifact, copy)
    return copy
