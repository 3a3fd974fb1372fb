"""doctor's GPU and toolchain checks against the fake NVML; the engine is unreachable here (a real refusal)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from rich.console import Console

from harness.containers import engine
from harness.errors import EXIT_OK, EXIT_RUN_FAILURE
from harness.evidence.doctor import (
    NO_GPU_MEANS,
    VRAM_HEADROOM_BYTES,
    Diagnosis,
    Finding,
    ModelNeed,
    diagnose,
    render_json,
    render_plain,
    render_rich,
    summary,
)
from harness.evidence.telemetry import Nvml, load_nvml
from harness.sim.catalog import CATALOG
from tests.fakes.nvml import NVML_ERROR_LIBRARY_NOT_FOUND, NVML_ERROR_NOT_SUPPORTED, FakeGpu, FakeNvml

GEMMA = ModelNeed.of("gemma3")
CHECKS = [
    "docker",
    "docker_disk",
    "nvidia_driver",
    "docker_gpu",
    "compute_capability",
    "persistence_mode",
    "power_limit",
    "clocks",
    "throttle",
    "gpu_processes",
    "vram",
    "python",
    "rust",
]


def unreachable_engine() -> engine.Client:
    """A real connection attempt to a socket nobody serves: the engine is down, as far as doctor can tell."""
    return engine.connect("unix:///nonexistent/docker.sock", timeout_s=2)


def run(
    module: FakeNvml,
    *,
    need: ModelNeed = GEMMA,
    require_gpu: bool = False,
    cargo: str | None = "cargo 1.90.0",
    python: tuple[int, int, int] = (3, 11, 7),
) -> Diagnosis:
    nvml = load_nvml(module)
    try:

        def tool(cmd: Sequence[str]) -> str | None:
            return cargo if cmd[0] == "cargo" else None

        return diagnose(
            nvml=nvml,
            connect=unreachable_engine,
            need=need,
            require_gpu=require_gpu,
            tool_version=tool,
            python_version=python,
        )
    finally:
        if isinstance(nvml, Nvml):
            nvml.shutdown()


def by_check(diagnosis: Diagnosis) -> dict[str, Finding]:
    return {f.check: f for f in diagnosis.findings}


def test_healthy_gpu_every_gpu_check_ok() -> None:
    d = run(FakeNvml())
    assert [f.check for f in d.findings] == CHECKS
    found = by_check(d)
    for name in CHECKS[4:]:
        assert found[name].status == "ok", found[name]
    assert found["nvidia_driver"].status == "ok" and "NVIDIA H100 80GB HBM3" in found["nvidia_driver"].detail
    assert "driver 550.54.15, CUDA 12.4" in found["nvidia_driver"].detail
    assert found["power_limit"].detail == "GPU 0: 700 W (default 700 W)"
    assert "SM 345/1980 MHz, memory 2619/2619 MHz" in found["clocks"].detail
    # the engine is unreachable here: docker fails, what needs it is skipped, and the exit code says so
    assert found["docker"].status == "fail" and found["docker"].fix
    assert found["docker_disk"].status == found["docker_gpu"].status == "skip"
    assert d.gpu_present and d.exit_code == EXIT_RUN_FAILURE


def test_no_gpu_explains_the_simulator_and_skips_gpu_checks() -> None:
    d = run(FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND))
    found = by_check(d)
    assert not d.gpu_present
    assert found["nvidia_driver"].status == "warn" and "no NVIDIA GPU visible" in found["nvidia_driver"].detail
    assert "SIMULATED" in (found["nvidia_driver"].fix or "")
    for name in (
        "compute_capability",
        "persistence_mode",
        "power_limit",
        "clocks",
        "throttle",
        "gpu_processes",
        "vram",
    ):
        assert found[name].status == "skip"
    assert "No NVIDIA GPU is visible" in summary(d) and NO_GPU_MEANS in summary(d)
    required = by_check(run(FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND), require_gpu=True))
    assert required["nvidia_driver"].status == "fail"


@pytest.mark.parametrize(
    ("gpu", "check", "status", "words"),
    [
        (FakeGpu(persistence_mode=0), "persistence_mode", "warn", "nvidia-smi -pm 1"),
        (
            FakeGpu(errors={"nvmlDeviceGetPersistenceMode": NVML_ERROR_NOT_SUPPORTED}),
            "persistence_mode",
            "warn",
            "NotSupported",
        ),
        (FakeGpu(enforced_power_limit_mw=450_000), "power_limit", "warn", "450 W (default 700 W)"),
        (FakeGpu(clock_event_reasons=0x1 | 0x20), "throttle", "warn", "sw_thermal_slowdown"),
        (FakeGpu(clock_event_reasons=0x2), "throttle", "warn", "application clocks"),
        (FakeGpu(clock_event_reasons=0x1), "throttle", "ok", "gpu_idle"),
        (FakeGpu(compute_processes=[(4242, 2 << 30)]), "gpu_processes", "warn", "pid 4242 compute (2.0 GiB)"),
        (
            FakeGpu(errors={"nvmlDeviceGetComputeRunningProcesses": NVML_ERROR_NOT_SUPPORTED}),
            "gpu_processes",
            "warn",
            "unreadable",
        ),
        (FakeGpu(compute_capability=(3, 7)), "compute_capability", "fail", "3.7"),
        (FakeGpu(errors={"nvmlDeviceGetClockInfo": NVML_ERROR_NOT_SUPPORTED}), "clocks", "warn", "unreadable"),
    ],
)
def test_gpu_findings(gpu: FakeGpu, check: str, status: str, words: str) -> None:
    finding = by_check(run(FakeNvml([gpu])))[check]
    assert finding.status == status, finding
    assert words in finding.detail + (finding.fix or ""), finding


@pytest.mark.parametrize(
    ("driver", "status"),
    [("525.147.05", "fail"), ("535.161.08", "warn"), ("550.54.15", "ok"), ("580.65.06", "ok")],
)
def test_driver_versions(driver: str, status: str) -> None:
    assert by_check(run(FakeNvml(driver_version=driver)))["nvidia_driver"].status == status


def test_vram_against_the_model_and_topology() -> None:
    size = CATALOG["gemma3:latest"].size_bytes
    total = 12 << 30  # a 12 GiB card, as the originals' laptop

    def vram(used: int, servers: int = 1) -> Finding:
        gpu = FakeGpu(name="NVIDIA GeForce RTX 4080 Laptop GPU", memory_total=total, memory_used=used)
        return by_check(run(FakeNvml([gpu]), need=ModelNeed.of("gemma3:latest", servers=servers)))["vram"]

    assert vram(0).status == "ok"
    assert vram(total - size - VRAM_HEADROOM_BYTES // 2).status == "warn"
    assert vram(total - size // 2).status == "fail"
    # dual topology: two servers load the model at once
    two = vram(total - 2 * size - 2 * VRAM_HEADROOM_BYTES + (1 << 20), servers=2)
    assert two.status == "warn" and "2 servers ×" in two.detail
    unknown = by_check(run(FakeNvml(), need=ModelNeed.of("mystery:7b")))["vram"]
    assert unknown.status == "warn" and "unknown" in unknown.detail


def test_toolchains() -> None:
    found = by_check(run(FakeNvml(), cargo=None, python=(3, 10, 12)))
    assert found["rust"].status == "warn" and "rustup" in (found["rust"].fix or "")
    assert found["python"].status == "fail"


def test_model_need_from_the_catalog() -> None:
    assert ModelNeed("gemma3:latest", CATALOG["gemma3:latest"].size_bytes, 1) == GEMMA
    assert ModelNeed.of("mystery:7b").size_bytes is None


def test_exit_code_follows_failures() -> None:
    ok = Diagnosis([Finding("a", "ok", "x"), Finding("b", "warn", "y"), Finding("c", "skip", "z")], True)
    assert ok.exit_code == EXIT_OK
    assert Diagnosis([*ok.findings, Finding("d", "fail", "w", "fix it")], True).exit_code == EXIT_RUN_FAILURE


def test_renderings_carry_every_finding() -> None:
    d = run(FakeNvml([FakeGpu(persistence_mode=0)]))
    plain = render_plain(d)
    lines = plain.splitlines()
    for f in d.findings:
        assert any(line.startswith(f"{f.status.upper():<4}  {f.check}") for line in lines), f.check
    assert "fix: sudo nvidia-smi -pm 1" in plain and "\x1b[" not in plain
    body = json.loads(render_json(d))
    assert body["schema_version"] == 1 and body["exit_code"] == d.exit_code and body["gpu_present"] is True
    assert [f["check"] for f in body["findings"]] == CHECKS
    console = Console(record=True, width=200, force_terminal=False)
    render_rich(d, console)
    text = console.export_text()
    assert all(check in text for check in CHECKS) and "nothing fails" not in text


def test_docker_unreachable_is_a_finding_not_an_exception() -> None:
    found = by_check(run(FakeNvml()))["docker"]
    assert found.status == "fail" and "not reachable" in found.detail
