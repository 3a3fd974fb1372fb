"""NVML on a real NVIDIA GPU (marked ``gpu``): skipped, with the reason NVML gave, on hosts without one."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from harness.evidence.doctor import ModelNeed, diagnose
from harness.evidence.telemetry import GpuFacts, GpuSampler, Nvml, gpu_facts, load_nvml
from harness.facts import Absent

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def nvml() -> Iterator[Nvml]:
    loaded = load_nvml()
    if isinstance(loaded, Absent):
        pytest.skip(f"no NVIDIA GPU with NVML on this host: {loaded.reason}")
    yield loaded
    loaded.shutdown()


@pytest.fixture(scope="module")
def facts(nvml: Nvml) -> GpuFacts:
    result = gpu_facts(nvml)
    assert isinstance(result, GpuFacts), result
    return result


def test_driver_facts(facts: GpuFacts) -> None:
    assert isinstance(facts.driver_version, str) and re.fullmatch(r"\d+\.\d+(\.\d+)?", facts.driver_version)
    assert isinstance(facts.cuda_driver_version, str) and re.fullmatch(r"\d+\.\d", facts.cuda_driver_version)
    assert facts.device_count == len(facts.devices) >= 1


def test_device_facts(facts: GpuFacts) -> None:
    for d in facts.devices:
        assert isinstance(d.name, str) and d.name.strip(), d
        assert isinstance(d.uuid, str) and d.uuid.startswith(("GPU-", "MIG-")), d
        assert isinstance(d.memory_total_bytes, int) and d.memory_total_bytes > 1 << 30
        assert isinstance(d.compute_capability, str) and re.fullmatch(r"\d+\.\d+", d.compute_capability)
        if isinstance(d.memory_bandwidth_gbps, Absent):
            assert "NVMLError" in d.memory_bandwidth_gbps.reason  # unsupported, said, not guessed
        else:
            assert 100 < d.memory_bandwidth_gbps < 20_000
        if not isinstance(d.enforced_power_limit_mw, Absent):
            assert 10_000 < d.enforced_power_limit_mw < 2_000_000
        assert isinstance(d.clock_event_reasons, Absent) or not any(
            r.startswith("unknown_") for r in d.clock_event_reasons
        ), d.clock_event_reasons
    assert facts.gpu_name == facts.devices[0].name


def test_energy_counter_is_monotonic(nvml: Nvml) -> None:
    handle = nvml.handle(0)
    first = nvml.query("nvmlDeviceGetTotalEnergyConsumption", handle)
    if isinstance(first, Absent):
        pytest.skip(f"this GPU has no energy counter: {first.reason}")
    time.sleep(0.5)
    second = nvml.query("nvmlDeviceGetTotalEnergyConsumption", handle)
    assert isinstance(second, int) and second >= first


def test_sampler_on_the_real_gpu(nvml: Nvml) -> None:
    with GpuSampler(nvml, period_s=0.1) as sampler:
        time.sleep(1.0)
    trace = sampler.trace
    assert trace is not None and trace.present and trace.error is None
    for device in trace.devices:
        assert len(device.samples) >= 3  # start, stop and at least one tick of the thread
        used = [s.memory_used_bytes for s in device.samples if s.memory_used_bytes is not None]
        assert used and all(u > 0 for u in used)
        if not isinstance(device.energy, Absent):
            assert device.energy.energy_mj >= 0 and device.energy.duration_s >= 0.9
            assert device.energy.mean_power_w is not None and 0 < device.energy.mean_power_w < 2000


def test_doctor_sees_the_gpu(nvml: Nvml) -> None:
    from harness.containers import engine

    d = diagnose(nvml=nvml, connect=engine.connect, need=ModelNeed.of("gemma3"))
    driver = next(f for f in d.findings if f.check == "nvidia_driver")
    assert d.gpu_present and "no NVIDIA GPU" not in driver.detail
    assert all(f.status != "skip" for f in d.findings if f.check in ("clocks", "vram", "power_limit"))
