"""``harness doctor`` on this machine, with its real NVML (or its absence) and the real engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.containers import engine
from harness.evidence.doctor import IMAGE_HEADROOM_BYTES, DiskUsage, ModelNeed, diagnose
from harness.evidence.telemetry import load_nvml, nvml_session
from harness.facts import Absent

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parents[2]


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "doctor", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doctor_exit_code_matches_its_findings() -> None:
    done = doctor()
    assert done.returncode in (0, 1), done.stderr
    lines = done.stdout.splitlines()
    statuses = [line.split()[0] for line in lines if line[:4] in ("OK  ", "WARN", "FAIL", "SKIP")]
    assert len(statuses) == 13, done.stdout
    assert done.returncode == (1 if "FAIL" in statuses else 0)
    assert any(line.startswith("OK    docker ") for line in lines), done.stdout
    nvml = load_nvml()
    if isinstance(nvml, Absent):
        assert "No NVIDIA GPU is visible" in done.stdout and "SIMULATED" in done.stdout
        assert any(line.startswith("WARN  nvidia_driver") for line in lines)
    else:
        nvml.shutdown()


def test_doctor_json_agrees_with_the_text() -> None:
    done = doctor("--json", "--report", "tr110")
    body = json.loads(done.stdout)
    assert body["exit_code"] == done.returncode
    assert done.returncode == (1 if any(f["status"] == "fail" for f in body["findings"]) else 0)
    assert body["gpu_present"] == (not isinstance(load_nvml(), Absent))


def test_doctor_require_gpu_fails_without_one() -> None:
    if not isinstance(load_nvml(), Absent):
        pytest.skip("this host has an NVIDIA GPU")
    done = doctor("--require-gpu")
    assert done.returncode == 1 and "FAIL  nvidia_driver" in done.stdout


def test_doctor_bad_input_exits_2() -> None:
    done = doctor("--report", "tr110", "--model", "gemma3")
    assert done.returncode == 2 and done.stderr.startswith("Error:") and done.stdout == ""


@pytest.mark.parametrize(
    ("free", "status"),
    [(100 << 30, "ok"), (3_338_801_804 + IMAGE_HEADROOM_BYTES // 2, "warn"), (1 << 30, "fail")],
)
def test_disk_check_against_the_docker_root(free: int, status: str) -> None:
    seen: list[str] = []

    def usage(path: str) -> DiskUsage:
        seen.append(path)
        return DiskUsage(total=200 << 30, used=(200 << 30) - free, free=free)

    with nvml_session() as nvml:
        d = diagnose(nvml=nvml, connect=engine.connect, need=ModelNeed.of("gemma3"), disk_usage=usage)
    disk = next(f for f in d.findings if f.check == "docker_disk")
    assert disk.status == status, disk
    assert seen == [engine.engine_facts(engine.connect()).root_dir]
