"""The first run on an NVIDIA host (marked ``gpu``): the documented smoke command against the real Ollama.

    ./kit doctor --report tr114
    ./kit reproduce --report tr114 --runs 1 --configs 011 --pull

Skipped, with the reason, where there is no NVIDIA GPU that Docker can hand to containers. What it holds the real
server to: the model is prepared (pulled only with ``--pull``) and its registry digest recorded; the runs are
measured, not simulated; provenance records the server's own settings (its "server config" line, flash attention
left to the server, the load's offload) and each server's GPU; nothing of the kit is left running.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main
from harness.evidence.telemetry import Nvml, load_nvml
from harness.facts import Absent

pytestmark = [pytest.mark.gpu, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def gpu_host() -> Iterator[None]:
    loaded = load_nvml()
    if isinstance(loaded, Absent):
        pytest.skip(f"no NVIDIA GPU with NVML on this host: {loaded.reason}")
    assert isinstance(loaded, Nvml)
    loaded.shutdown()
    from harness.containers import engine

    client = engine.connect()
    if not engine.gpu_visible(client):
        pytest.skip("Docker cannot hand the GPU to containers (no NVIDIA Container Toolkit)")
    yield


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])


def test_doctor_report_checks_what_the_smoke_run_needs(gpu_host: None, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--report", "tr114", "--json"])
    findings = {f["check"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert {"nvidia_driver", "docker_gpu", "vram", "model_store"} <= set(findings)
    assert findings["nvidia_driver"]["status"] == "ok" and findings["docker_gpu"]["status"] == "ok"
    assert "2 servers ×" in findings["vram"]["detail"]  # the dual topology: both servers on GPU 0
    assert code == (1 if any(f["status"] == "fail" for f in findings.values()) else 0)


def test_the_smoke_command_measures_on_the_real_server(gpu_host: None, tmp_path: Path) -> None:
    out = tmp_path / "tr114-smoke"
    smoke = ["reproduce", "--report", "tr114", "--runs", "1", "--configs", "011", "--backend", "ollama", "--pull"]
    code = main([*smoke, "--out", str(out)])
    assert code == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["backend"] == "ollama" and not sweep["simulated"]
    assert sweep["model"]["server_version"] == "0.12.10" and len(sweep["model"]["digest"]) == 64
    provenance = json.loads((out / "provenance.json").read_text())
    runtime = provenance["ollama"]["runtime"]
    assert runtime["server_config"]["OLLAMA_NUM_PARALLEL"] == "1"
    assert isinstance(runtime["layers_on_gpu"], int) and runtime["loaded"]["size_vram_bytes"] > 0
    assert provenance["run"]["server_settings"]["flash_attention"] is None  # left to the server
    assert provenance["run"]["server_settings"]["gpus"] == ["0", "0"]
    runs = sorted((out / "runs").glob("*/run.json"))
    assert runs and all(json.loads(p.read_text())["status"] == "ok" for p in runs)
