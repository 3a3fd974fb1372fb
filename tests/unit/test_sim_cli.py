"""``python -m harness.sim`` as a process: help, start on a free port, answer, clean up on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from harness.errors import SettingsError
from harness.settings import OllamaServerSettings
from harness.sim.__main__ import config_from_args
from harness.sim.config import SimConfig


def test_help_lists_the_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "harness.sim", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for flag in ("--port", "--seed", "--time-scale", "--preload", "--fault", "--shared-device", "--record"):
        assert flag in out


def test_flags_win_over_ollama_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "3")
    monkeypatch.setenv("OLLAMA_CONTEXT_LENGTH", "2048")
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:9999")
    config = config_from_args(["--port", "0", "--context-length", "1024", "--fault", "drop:0.1"])
    assert (config.num_parallel, config.context_length, config.host) == (3, 1024, "127.0.0.1")
    assert config.faults[0].kind == "drop"
    with pytest.raises(SettingsError):
        config_from_args(["--fault", "explode"])


def test_from_server_settings_maps_ollama_knobs(tmp_path: Path) -> None:
    settings = OllamaServerSettings(num_parallel=2, keep_alive="10m", models=tmp_path, flash_attention=True)
    config = SimConfig.from_server_settings(settings, seed=9)
    assert (config.num_parallel, config.keep_alive, config.models_dir, config.seed) == (2, "10m", tmp_path, 9)
    assert config.flash_attention


def test_process_serves_on_a_free_port_and_cleans_up(tmp_path: Path) -> None:
    env = {**os.environ, "OLLAMA_MODELS": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.sim", "--port", "0", "--preload", "gemma3", "--shared-device", "g"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base_url = line.strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:"), line
        with urllib.request.urlopen(base_url + "/api/version", timeout=10) as resp:
            assert resp.headers["X-Chimeraforge-Simulated"] == "1"
            assert json.loads(resp.read())["version"] == "0.12.10"
        assert list((tmp_path / ".sim-device" / "g").glob("*.json"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert not list((tmp_path / ".sim-device" / "g").glob("*.json"))
