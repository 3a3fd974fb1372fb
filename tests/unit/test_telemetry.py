"""NVML facts and the GPU sampler, against the fake NVML (tests/fakes/nvml.py), and the fake against pynvml."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pynvml  # the real bindings import without a GPU; only their surface is compared here
import pytest

from harness.evidence.telemetry import (
    CLOCK_EVENT_REASONS,
    GpuFacts,
    GpuSampler,
    Nvml,
    cuda_version_text,
    decode_clock_event_reasons,
    energy_between,
    gpu_facts,
    load_nvml,
    nvml_session,
    peak_memory_bandwidth_gbps,
    telemetry_json,
)
from harness.facts import Absent
from tests.fakes import nvml as fake
from tests.fakes.nvml import FakeGpu, FakeNvml

HARNESS = Path(__file__).resolve().parents[2] / "harness"


def loaded(module: FakeNvml) -> Nvml:
    nvml = load_nvml(module)
    assert isinstance(nvml, Nvml), nvml
    return nvml


def facts(module: FakeNvml) -> GpuFacts:
    result = gpu_facts(loaded(module))
    assert isinstance(result, GpuFacts), result
    return result


# ---------------------------------------------------------------------------------------------- the fake


def test_fake_has_pynvml_surface() -> None:
    """Every function, constant and error class of the fake exists in pynvml with the same value."""
    functions = [n for n in vars(FakeNvml) if n.startswith("nvml")]
    assert len(functions) >= 25
    missing = [n for n in functions if not callable(getattr(pynvml, n, None))]
    assert not missing, f"pynvml has no {missing}"
    constants = [n for n in vars(fake) if n.startswith("NVML_")]
    wrong = [n for n in constants if getattr(pynvml, n, None) != getattr(fake, n)]
    assert not wrong, f"constants differ from pynvml: {wrong}"
    for name in [n for n in vars(FakeNvml) if n.startswith("NVMLError_")]:
        ours = getattr(FakeNvml, name)
        theirs = getattr(pynvml, name)
        assert issubclass(ours, FakeNvml.NVMLError) and issubclass(theirs, pynvml.NVMLError)
        code = ours().value
        assert type(pynvml.NVMLError(code)).__name__ == name == type(FakeNvml.NVMLError(code)).__name__


def test_fake_errors_behave_like_pynvml() -> None:
    err = FakeNvml.NVMLError(fake.NVML_ERROR_NOT_SUPPORTED)
    assert isinstance(err, FakeNvml.NVMLError_NotSupported) and err.value == fake.NVML_ERROR_NOT_SUPPORTED
    assert str(err) == str(pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)) == "Not Supported"
    module = FakeNvml()
    with pytest.raises(FakeNvml.NVMLError_Uninitialized):
        module.nvmlDeviceGetCount()


def test_only_telemetry_imports_pynvml() -> None:
    pattern = re.compile(r"^\s*(import pynvml|from pynvml)", re.M)
    users = sorted(str(p.relative_to(HARNESS)) for p in HARNESS.rglob("*.py") if pattern.search(p.read_text()))
    assert users == ["evidence/telemetry.py"]


# ---------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (fake.NVML_ERROR_LIBRARY_NOT_FOUND, "libnvidia-ml.so.1"),
        (fake.NVML_ERROR_DRIVER_NOT_LOADED, "driver is not loaded"),
        (fake.NVML_ERROR_UNKNOWN, "NVMLError_Unknown"),
    ],
)
def test_load_nvml_absent_with_reason(code: int, words: str) -> None:
    result = load_nvml(FakeNvml(init_error=code))
    assert isinstance(result, Absent)
    assert words in result.reason


def test_load_nvml_without_devices_shuts_down() -> None:
    module = FakeNvml(gpus=[])
    result = load_nvml(module)
    assert isinstance(result, Absent) and "no NVIDIA device" in result.reason
    assert module.initialised == 0 and module.shutdown_calls == 1


def test_nvml_session_balances_init_and_shutdown() -> None:
    module = FakeNvml(gpus=[FakeGpu(), FakeGpu(name="NVIDIA GeForce RTX 4080")])
    with nvml_session(module) as nvml:
        assert isinstance(nvml, Nvml) and nvml.device_count == 2
        assert module.initialised == 1
    assert module.initialised == 0


def test_real_pynvml_without_gpu_is_absent_not_an_exception() -> None:
    """On this machine (no driver) the real bindings must give a reason, whatever it is; on a GPU host, NVML."""
    result = load_nvml()
    if isinstance(result, Nvml):
        result.shutdown()
    else:
        assert result.reason


# ---------------------------------------------------------------------------------------------- static facts


def test_gpu_facts_every_key() -> None:
    gpu = FakeGpu(
        compute_processes=[(4242, 2 << 30), (17, None)],
        graphics_processes=[(99, 64 << 20)],
        clock_event_reasons=0x1 | 0x4,
    )
    f = facts(FakeNvml([gpu], driver_version="550.54.15", cuda_driver_version=12040))
    assert (f.driver_version, f.cuda_driver_version, f.nvml_version) == ("550.54.15", "12.4", "12.550.54.15")
    assert f.device_count == 1 and f.gpu_name == "NVIDIA H100 80GB HBM3" and f.memory_bandwidth_gbps == 3352.3
    d = f.devices[0]
    assert d.model_dump(exclude={"processes"}) == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-00000000-1111-2222-3333-444444444444",
        "compute_capability": "9.0",
        "memory_total_bytes": 85_520_809_984,
        "memory_used_bytes": 1_048_576_000,
        "memory_free_bytes": 85_520_809_984 - 1_048_576_000,
        "memory_bus_width_bits": 5120,
        "max_memory_clock_mhz": 2619,
        "max_sm_clock_mhz": 1980,
        "memory_bandwidth_gbps": 3352.3,
        "enforced_power_limit_mw": 700_000,
        "default_power_limit_mw": 700_000,
        "persistence_mode": True,
        "sm_clock_mhz": 345,
        "memory_clock_mhz": 2619,
        "graphics_clock_mhz": 345,
        "clock_event_reasons_mask": 0x5,
        "clock_event_reasons": ["gpu_idle", "sw_power_cap"],
    }
    assert isinstance(d.processes, list)
    assert [(p.pid, p.kind, p.used_memory_bytes) for p in d.processes] == [
        (17, "compute", None),
        (99, "graphics", 64 << 20),
        (4242, "compute", 2 << 30),
    ]


def test_unsupported_query_is_absent_with_the_nvml_error() -> None:
    gpu = FakeGpu(
        errors={
            "nvmlDeviceGetMemoryBusWidth": fake.NVML_ERROR_NOT_SUPPORTED,
            "nvmlDeviceGetPersistenceMode": fake.NVML_ERROR_NOT_SUPPORTED,
            "nvmlDeviceGetName": fake.NVML_ERROR_NO_PERMISSION,
            "nvmlDeviceGetGraphicsRunningProcesses": fake.NVML_ERROR_NOT_SUPPORTED,
        }
    )
    f = facts(FakeNvml([gpu]))
    d = f.devices[0]
    assert isinstance(d.memory_bus_width_bits, Absent)
    assert d.memory_bus_width_bits.reason == "NVMLError_NotSupported: Not Supported"
    assert isinstance(d.memory_bandwidth_gbps, Absent) and "bus width" in d.memory_bandwidth_gbps.reason
    assert isinstance(d.persistence_mode, Absent)
    assert isinstance(d.name, Absent) and "NoPermission" in d.name.reason
    assert isinstance(d.processes, Absent) and d.processes.reason.startswith("graphics: NVMLError_NotSupported")
    # what the GPU does support is still there, and the report's keys say why they are missing
    assert d.max_memory_clock_mhz == 2619 and d.enforced_power_limit_mw == 700_000
    assert isinstance(f.gpu_name, Absent) and isinstance(f.memory_bandwidth_gbps, Absent)
    dumped = json.loads(f.model_dump_json())
    assert dumped["devices"][0]["memory_bus_width_bits"] == {
        "present": False,
        "reason": "NVMLError_NotSupported: Not Supported",
    }


def test_system_query_unsupported() -> None:
    module = FakeNvml(system_errors={"nvmlSystemGetCudaDriverVersion_v2": fake.NVML_ERROR_NOT_SUPPORTED,
                                     "nvmlSystemGetCudaDriverVersion": fake.NVML_ERROR_NOT_SUPPORTED})  # fmt: skip
    f = facts(module)
    assert isinstance(f.cuda_driver_version, Absent) and "NotSupported" in f.cuda_driver_version.reason


def test_old_bindings_fall_back_to_deprecated_names() -> None:
    module = FakeNvml(
        [FakeGpu(clock_event_reasons=0x40)],
        cuda_driver_version=11080,
        missing={"nvmlDeviceGetCurrentClocksEventReasons", "nvmlSystemGetCudaDriverVersion_v2"},
    )
    f = facts(module)
    assert f.cuda_driver_version == "11.8"
    assert f.devices[0].clock_event_reasons == ["hw_thermal_slowdown"]


def test_missing_binding_is_absent_not_an_exception() -> None:
    f = facts(FakeNvml(missing={"nvmlDeviceGetMemoryBusWidth"}))
    bus = f.devices[0].memory_bus_width_bits
    assert isinstance(bus, Absent) and "not in these NVML bindings" in bus.reason


def test_gpu_facts_of_absent_nvml_is_that_absence() -> None:
    reason = Absent(reason="no GPU here")
    assert gpu_facts(reason) == reason


def test_gpu_facts_round_trip_keeps_absent_fields() -> None:
    f = facts(FakeNvml([FakeGpu(errors={"nvmlDeviceGetUUID": fake.NVML_ERROR_NOT_SUPPORTED})]))
    again = GpuFacts.model_validate_json(f.model_dump_json())
    assert again == f and isinstance(again.devices[0].uuid, Absent)


# ---------------------------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("card", "bus_bits", "mem_clock_mhz", "gbps"),
    [
        ("H100 SXM5 80GB (HBM3)", 5120, 2619, 3352.3),
        ("H100 PCIe 80GB (HBM2e)", 5120, 1593, 2039.0),
        ("A100 SXM4 40GB (HBM2)", 5120, 1215, 1555.2),
        ("RTX 4090 (GDDR6X)", 384, 10501, 1008.1),
        ("RTX 4080 (GDDR6X)", 256, 11201, 716.9),
        ("RTX 4080 Laptop (GDDR6)", 192, 9001, 432.0),
    ],
)
def test_peak_bandwidth_matches_known_cards(card: str, bus_bits: int, mem_clock_mhz: int, gbps: float) -> None:
    assert peak_memory_bandwidth_gbps(bus_bits, mem_clock_mhz) == gbps, card


def test_peak_bandwidth_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        peak_memory_bandwidth_gbps(0, 2619)


def test_decode_clock_event_reasons() -> None:
    assert decode_clock_event_reasons(0) == []
    assert decode_clock_event_reasons(0x1) == ["gpu_idle"]
    assert decode_clock_event_reasons(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert decode_clock_event_reasons(0x8 | 0x1000) == ["hw_slowdown", "unknown_0x1000"]


def test_every_pynvml_reason_bit_has_a_name() -> None:
    bits = {
        value
        for name, value in vars(pynvml).items()
        if re.match(r"nvmlClocks(Event|Throttle)Reason", name) and isinstance(value, int) and value & (value - 1) == 0
    }
    assert bits, "pynvml names no reason bits"
    named = {bit for bit, _ in CLOCK_EVENT_REASONS}
    assert bits - {0} <= named


def test_cuda_version_text() -> None:
    assert [cuda_version_text(v) for v in (12040, 11080, 13000, 12090)] == ["12.4", "11.8", "13.0", "12.9"]


# ---------------------------------------------------------------------------------------------- energy


def test_energy_is_the_counter_delta() -> None:
    energy = energy_between((1_000_000, 10.0), (1_300_000, 12.0))
    assert not isinstance(energy, Absent)
    assert (energy.energy_mj, energy.duration_s, energy.mean_power_w) == (300_000, 2.0, 150.0)


def test_energy_absent_when_unreadable_or_backwards() -> None:
    start = energy_between(Absent(reason="NVMLError_NotSupported: Not Supported"), (5, 1.0))
    assert isinstance(start, Absent) and "at start" in start.reason and "NotSupported" in start.reason
    stop = energy_between((5, 1.0), Absent(reason="NVMLError_GpuIsLost: GPU is lost"))
    assert isinstance(stop, Absent) and "at stop" in stop.reason
    back = energy_between((5000, 1.0), (10, 2.0))
    assert isinstance(back, Absent) and "backwards" in back.reason


def test_energy_without_elapsed_time_has_no_mean_power() -> None:
    energy = energy_between((10, 3.0), (10, 3.0))
    assert not isinstance(energy, Absent) and energy.energy_mj == 0 and energy.mean_power_w is None


# ---------------------------------------------------------------------------------------------- sampler


def test_sampler_samples_and_takes_energy_from_the_counter() -> None:
    gpus = [
        FakeGpu(utilization=(87, 41), power_mw=301_000, energy_readings_mj=[1_000_000, 1_250_000]),
        FakeGpu(
            name="NVIDIA GeForce RTX 4080",
            errors={
                "nvmlDeviceGetTotalEnergyConsumption": fake.NVML_ERROR_NOT_SUPPORTED,
                "nvmlDeviceGetPowerUsage": fake.NVML_ERROR_NOT_SUPPORTED,
            },
        ),
    ]
    module = FakeNvml(gpus)
    nvml = loaded(module)
    with GpuSampler(nvml, period_s=0.01) as sampler:
        time.sleep(0.08)
    trace = sampler.trace
    assert trace is not None and trace.present and trace.period_s == 0.01 and trace.error is None
    first, second = trace.devices
    assert len(first.samples) >= 2  # the start and stop samples at least
    assert all(s.gpu_util_pct == 87 and s.memory_util_pct == 41 and s.power_mw == 301_000 for s in first.samples)
    assert [s.t_s for s in first.samples] == sorted(s.t_s for s in first.samples)
    assert not isinstance(first.energy, Absent)
    assert (first.energy.counter_start_mj, first.energy.counter_end_mj, first.energy.energy_mj) == (
        1_000_000,
        1_250_000,
        250_000,
    )
    assert first.energy.duration_s > 0 and first.energy.mean_power_w is not None
    assert first.unsupported == {} and first.clock_event_reasons_seen == ["gpu_idle"]
    # the unsupported counter and power query: absent with the NVML error, queried once, fields None
    assert isinstance(second.energy, Absent) and "NotSupported" in second.energy.reason
    assert second.unsupported == {"power_mw": "NVMLError_NotSupported: Not Supported"}
    assert all(s.power_mw is None and s.sm_clock_mhz == 345 for s in second.samples)
    assert gpus[0].energy_reads == 2
    assert not any(t.name == "gpu-sampler" for t in threading.enumerate())


def test_sampler_without_nvml_is_absent_with_reason() -> None:
    sampler = GpuSampler(Absent(reason="the NVML library is not installed"), period_s=0.5)
    with sampler:
        pass
    assert sampler.trace is not None
    assert (sampler.trace.present, sampler.trace.reason, sampler.trace.devices) == (
        False,
        "the NVML library is not installed",
        [],
    )


def test_sampler_samples_one_run_only() -> None:
    sampler = GpuSampler(loaded(FakeNvml()), period_s=0.05)
    with sampler:
        pass
    with pytest.raises(RuntimeError):
        sampler.start()
    with pytest.raises(ValueError):
        GpuSampler(loaded(FakeNvml()), period_s=0)


def test_telemetry_json_is_canonical_and_versioned() -> None:
    sampler = GpuSampler(loaded(FakeNvml()), period_s=0.05)
    with sampler:
        pass
    assert sampler.trace is not None
    data = telemetry_json(sampler.trace)
    body = json.loads(data)
    assert data.endswith(b"\n") and body["schema_version"] == 1 and body["present"] is True
    assert data.decode().rstrip("\n") == json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert body["devices"][0]["energy"]["energy_mj"] == 250_000
