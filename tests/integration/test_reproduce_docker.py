"""`harness reproduce` through the container executor on the real engine: one compose stack per run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import docker
import pytest

from harness.artifacts import ArtifactDir, load_sweep
from harness.cli import main
from harness.containers.controller import LABEL_SWEEP, sweep_key
from harness.containers.engine import LABEL_PROJECT, gpu_visible
from harness.records import CallRecord, MultiRunRecord
from tests.integration.conftest import KitImages, kit_leftovers

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
ARGS = ["reproduce", "--report", "tr110", "--backend", "sim", "--runs", "1", "--time-scale", "0.02"]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_each_run_gets_a_fresh_stack_and_leaves_nothing(
    tmp_path: Path, docker_client: docker.DockerClient, kit_images: KitImages
) -> None:
    out = tmp_path / "tr110"
    assert main([*ARGS, "--configs", "^202$", "--out", str(out)]) == 0
    assert load_sweep(out).simulated
    runs = ArtifactDir(out).load_runs()
    assert sorted(r.run.kind for r, _ in runs) == ["isolated", "isolated", "protocol"]
    for result, records in runs:
        assert result.status == "ok", result.error
        agent = result.containers[0]
        assert agent.exit_code == 0
        calls = [r for r in records if isinstance(r, CallRecord)]
        assert calls and all(c.ok and c.server_simulated for c in calls)
        folder = out / "runs" / result.run.run_id
        assert (folder / "ollama.log").stat().st_size > 0 and (folder / "ollama2.log").exists()
    protocol = next(recs for r, recs in runs if r.run.kind == "protocol")
    multi = next(r for r in protocol if isinstance(r, MultiRunRecord))
    assert multi.ok and multi.collector_url == "http://ollama:11434" and multi.insight_url == "http://ollama2:11434"
    assert kit_leftovers(docker_client, f"{LABEL_SWEEP}={sweep_key(out)}") == []
    assert (out / "report" / "report.md").read_text().count("SIMULATED") >= 1


def test_sigterm_tears_down_and_keeps_completed_runs(
    tmp_path: Path, docker_client: docker.DockerClient, kit_images: KitImages
) -> None:
    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "harness", *ARGS, "--configs", "^00[1-6]$", "--no-isolated", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("runs/*/run.json")):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no run completed in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr.decode()
    assert "re-run the same command to resume" in stderr.decode()
    assert kit_leftovers(docker_client, f"{LABEL_SWEEP}={sweep_key(out)}") == []
    done = ArtifactDir(out).completed_run_ids()
    assert 1 <= len(done) < 6
    assert not list((out / "runs").glob(".*")), "no half-written run folder is left"


def test_the_ollama_backend_without_a_gpu_exits_2_before_anything_happens(
    tmp_path: Path, docker_client: docker.DockerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    if gpu_visible(docker_client):
        pytest.skip("this engine sees an NVIDIA GPU: the real backend is allowed here")
    out = tmp_path / "never"
    assert main(["reproduce", "--report", "tr110", "--backend", "ollama", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no NVIDIA GPU visible to Docker" in err and "--backend sim" in err
    assert not out.exists()


def test_stack_up_by_hand_stays_up_until_stack_down(
    docker_client: docker.DockerClient, kit_images: KitImages, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["stack", "up", "--backend", "sim", "--port", str(port)]) == 0
    printed = capsys.readouterr().out
    name = next(line.split()[1] for line in printed.splitlines() if line.startswith("stack ") and " is up " in line)
    try:
        assert f"ollama: http://127.0.0.1:{port}" in printed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=5) as resp:
            assert "simulated" in json.loads(resp.read())
        assert kit_leftovers(docker_client, f"{LABEL_PROJECT}={name}")
    finally:  # only this test's stack: another user's by-hand stack on this engine is not ours to remove
        assert main(["stack", "down", "--name", name]) == 0
    assert kit_leftovers(docker_client, f"{LABEL_PROJECT}={name}") == []
