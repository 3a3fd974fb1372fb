"""GPU facts and GPU sampling over NVML: the only module that imports ``pynvml`` (package ``nvidia-ml-py``).

NVML is injected. :func:`load_nvml` imports and initialises the real ``pynvml`` module, or takes any object with
the same function names, constants and ``NVMLError`` hierarchy (the unit tests pass a fake). Nothing here raises
for a missing GPU: no library, no driver or no device comes back as :class:`harness.facts.Absent` with the
reason, and every query a GPU does not support is recorded as absent with NVML's own error, never guessed.

Two products:

- :func:`gpu_facts`: what the GPU *is* and how it is set up (name, UUID, driver, CUDA, memory, bus width and
  memory clock → peak bandwidth, power limits, persistence mode) plus its state right now (clocks, clock event
  ("throttle") reasons, other processes, free memory). Provenance and ``doctor`` read it.
- :class:`GpuSampler`: a thread started and stopped around one run that samples utilisation, memory, power,
  clocks, temperature and clock event reasons every ``period_s``, and takes the run's energy from the deltas of
  NVML's cumulative energy counter (not from integrated power samples, which miss what happens between them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from harness.artifacts import canonical_json
from harness.facts import Absent, absent
from harness.schemas import GpuDevice, GpuFacts, GpuProcess

TELEMETRY_FILE = "telemetry.json"
TELEMETRY_SCHEMA_VERSION = 1

CLOCK_EVENT_REASONS: tuple[tuple[int, str], ...] = (
    (0x0001, "gpu_idle"),
    (0x0002, "applications_clocks_setting"),
    (0x0004, "sw_power_cap"),
    (0x0008, "hw_slowdown"),
    (0x0010, "sync_boost"),
    (0x0020, "sw_thermal_slowdown"),
    (0x0040, "hw_thermal_slowdown"),
    (0x0080, "hw_power_brake_slowdown"),
    (0x0100, "display_clock_setting"),
    (0x0200, "board_limit"),
    (0x0400, "reliability"),
)
"""NVML's clock event (formerly "throttle") reason bits, named as nvidia-ml-py names its constants."""

SLOWDOWN_REASONS = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
        "board_limit",
        "reliability",
    }
)
"""Reasons that mean the GPU runs below the clocks it could reach (``gpu_idle`` only means it has no work)."""


# ---------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Nvml:
    """An initialised NVML: the module (real or fake) and how many devices it sees (at least one)."""

    module: Any
    device_count: int

    def handle(self, index: int) -> Any:
        return self.module.nvmlDeviceGetHandleByIndex(index)

    def query(self, name: str, *args: Any) -> Any:
        """``module.<name>(*args)``, or :class:`Absent` with NVML's error (or the missing binding) as reason."""
        fn = getattr(self.module, name, None)
        if fn is None:
            return absent(f"{name} is not in these NVML bindings (nvidia-ml-py too old for this query)")
        try:
            return fn(*args)
        except self.module.NVMLError as exc:
            return absent(nvml_error_text(exc))

    def query_first(self, names: Sequence[str], *args: Any) -> Any:
        """The first of several equivalent queries that answers (newer name first, the deprecated one after)."""
        first: Any = None
        for name in names:
            value = self.query(name, *args)
            if not isinstance(value, Absent):
                return value
            first = first or value
        return first

    def shutdown(self) -> None:
        with suppress(self.module.NVMLError):
            self.module.nvmlShutdown()


def nvml_error_text(exc: BaseException) -> str:
    """``NVMLError_NotSupported: Not Supported``: the class says which error, the text what NVML calls it."""
    try:
        text = str(exc)
    except Exception:  # str() of an NVMLError asks the library, which may be the thing that is broken
        text = f"code {getattr(exc, 'value', '?')}"
    return f"{type(exc).__name__}: {text}"


_INIT_HINTS = {
    "NVMLError_LibraryNotFound": "the NVML library (libnvidia-ml.so.1) is not installed: no NVIDIA driver on this host",
    "NVMLError_DriverNotLoaded": "the NVIDIA kernel driver is not loaded",
    "NVMLError_NoPermission": "no permission to open the NVIDIA device files",
    "NVMLError_LibRmVersionMismatch": "the NVML library and the loaded driver differ (reboot after a driver update)",
}


def load_nvml(module: Any | None = None) -> Nvml | Absent:
    """Initialise NVML (the real ``pynvml`` when ``module`` is None) and count its devices.

    Returns :class:`Absent` with a reason a person can act on when the bindings, the library, the driver or a
    device is missing; never raises.
    """
    if module is None:
        try:
            import pynvml
        except ImportError as exc:
            return absent(f"nvidia-ml-py is not installed ({exc})")
        module = pynvml
    try:
        module.nvmlInit()
    except module.NVMLError as exc:
        text = nvml_error_text(exc)
        hint = _INIT_HINTS.get(type(exc).__name__)
        return absent(f"{hint} ({text})" if hint else f"NVML could not be initialised ({text})")
    except Exception as exc:  # a broken installation must not end the run: it is a fact about the host
        return absent(f"NVML could not be initialised ({type(exc).__name__}: {exc})")
    try:
        count = int(module.nvmlDeviceGetCount())
    except module.NVMLError as exc:
        with suppress(module.NVMLError):
            module.nvmlShutdown()
        return absent(f"NVML cannot count devices ({nvml_error_text(exc)})")
    if count < 1:
        with suppress(module.NVMLError):
            module.nvmlShutdown()
        return absent("NVML is initialised but sees no NVIDIA device")
    return Nvml(module=module, device_count=count)


@contextmanager
def nvml_session(module: Any | None = None) -> Iterator[Nvml | Absent]:
    """:func:`load_nvml`, shut down again on exit (NVML counts initialisations, so nesting is safe)."""
    nvml = load_nvml(module)
    try:
        yield nvml
    finally:
        if isinstance(nvml, Nvml):
            nvml.shutdown()


# ---------------------------------------------------------------------------------------------- arithmetic


def peak_memory_bandwidth_gbps(bus_width_bits: int, max_memory_clock_mhz: int) -> float:
    """Theoretical peak memory bandwidth in GB/s (10⁹ bytes/s), rounded to 0.1.

    bytes per transfer (bus bits / 8) × transfers per second (NVML's max memory clock in MHz × 10⁶ × 2, the
    memory transferring on both clock edges). H100 SXM: 5120 / 8 × 2619 MHz × 2 = 3352.3 GB/s; RTX 4080:
    256 / 8 × 11201 MHz × 2 = 716.9 GB/s (docs/provenance.md lists more cards).
    """
    if bus_width_bits <= 0 or max_memory_clock_mhz <= 0:
        raise ValueError("bus width and memory clock must be positive")
    return round(bus_width_bits / 8 * max_memory_clock_mhz * 1e6 * 2 / 1e9, 1)


def decode_clock_event_reasons(mask: int) -> list[str]:
    """Names of the set bits of an NVML clock event reason mask; unknown bits are named ``unknown_0x…``."""
    names = [name for bit, name in CLOCK_EVENT_REASONS if mask & bit]
    known = 0
    for bit, _ in CLOCK_EVENT_REASONS:
        known |= bit
    rest = mask & ~known
    bit = 1
    while rest:
        if rest & bit:
            names.append(f"unknown_{bit:#x}")
            rest &= ~bit
        bit <<= 1
    return names


def cuda_version_text(value: int) -> str:
    """NVML's CUDA driver version integer (12040) as ``major.minor`` (``12.4``)."""
    return f"{value // 1000}.{(value % 1000) // 10}"


# ---------------------------------------------------------------------------------------------- static facts
# (their models, GpuFacts and GpuDevice, are provenance.json's and live in harness.schemas)


ECHO_REASON = "device 0 has no value (see gpu.devices.0)"


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, Absent) else str(value)


def _int(value: Any) -> Any:
    return value if isinstance(value, Absent) else int(value)


def _processes(nvml: Nvml, handle: Any) -> list[GpuProcess] | Absent:
    found: list[GpuProcess] = []
    missing: list[str] = []
    for kind, fn in (
        ("compute", "nvmlDeviceGetComputeRunningProcesses"),
        ("graphics", "nvmlDeviceGetGraphicsRunningProcesses"),
    ):
        procs = nvml.query(fn, handle)
        if isinstance(procs, Absent):
            missing.append(f"{kind}: {procs.reason}")
            continue
        for p in procs:
            used = getattr(p, "usedGpuMemory", None)
            found.append(GpuProcess(pid=int(p.pid), kind=kind, used_memory_bytes=None if used is None else int(used)))
    if missing:
        return absent("; ".join(missing))
    return sorted(found, key=lambda p: (p.pid, p.kind))


def device_facts(nvml: Nvml, index: int) -> GpuDevice:
    """One device's facts; each unsupported query becomes :class:`Absent` with NVML's error."""
    m = nvml.module
    handle = nvml.handle(index)
    memory = nvml.query("nvmlDeviceGetMemoryInfo", handle)
    bus = _int(nvml.query("nvmlDeviceGetMemoryBusWidth", handle))
    max_mem = _int(nvml.query("nvmlDeviceGetMaxClockInfo", handle, m.NVML_CLOCK_MEM))
    if isinstance(bus, Absent) or isinstance(max_mem, Absent):
        bandwidth: float | Absent = absent(
            "needs memory bus width and max memory clock: "
            + "; ".join(f.reason for f in (bus, max_mem) if isinstance(f, Absent))
        )
    else:
        bandwidth = peak_memory_bandwidth_gbps(bus, max_mem)
    capability = nvml.query("nvmlDeviceGetCudaComputeCapability", handle)
    persistence = nvml.query("nvmlDeviceGetPersistenceMode", handle)
    mask = _int(
        nvml.query_first(
            ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"), handle
        )
    )
    return GpuDevice(
        index=index,
        name=_text(nvml.query("nvmlDeviceGetName", handle)),
        uuid=_text(nvml.query("nvmlDeviceGetUUID", handle)),
        compute_capability=capability if isinstance(capability, Absent) else f"{capability[0]}.{capability[1]}",
        memory_total_bytes=memory if isinstance(memory, Absent) else int(memory.total),
        memory_used_bytes=memory if isinstance(memory, Absent) else int(memory.used),
        memory_free_bytes=memory if isinstance(memory, Absent) else int(memory.free),
        memory_bus_width_bits=bus,
        max_memory_clock_mhz=max_mem,
        max_sm_clock_mhz=_int(nvml.query("nvmlDeviceGetMaxClockInfo", handle, m.NVML_CLOCK_SM)),
        memory_bandwidth_gbps=bandwidth,
        enforced_power_limit_mw=_int(nvml.query("nvmlDeviceGetEnforcedPowerLimit", handle)),
        default_power_limit_mw=_int(nvml.query("nvmlDeviceGetPowerManagementDefaultLimit", handle)),
        persistence_mode=persistence if isinstance(persistence, Absent) else bool(persistence),
        sm_clock_mhz=_int(nvml.query("nvmlDeviceGetClockInfo", handle, m.NVML_CLOCK_SM)),
        memory_clock_mhz=_int(nvml.query("nvmlDeviceGetClockInfo", handle, m.NVML_CLOCK_MEM)),
        graphics_clock_mhz=_int(nvml.query("nvmlDeviceGetClockInfo", handle, m.NVML_CLOCK_GRAPHICS)),
        clock_event_reasons_mask=mask,
        clock_event_reasons=mask if isinstance(mask, Absent) else decode_clock_event_reasons(mask),
        processes=_processes(nvml, handle),
    )


def gpu_facts(nvml: Nvml | Absent) -> GpuFacts | Absent:
    """Driver-wide facts and every device's; :class:`Absent` (the load reason) when there is no NVML."""
    if isinstance(nvml, Absent):
        return nvml
    cuda = nvml.query_first(("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"))
    devices = [device_facts(nvml, i) for i in range(nvml.device_count)]
    first = devices[0]
    return GpuFacts(
        driver_version=_text(nvml.query("nvmlSystemGetDriverVersion")),
        cuda_driver_version=cuda if isinstance(cuda, Absent) else cuda_version_text(int(cuda)),
        nvml_version=_text(nvml.query("nvmlSystemGetNVMLVersion")),
        device_count=nvml.device_count,
        gpu_name=first.name if not isinstance(first.name, Absent) else absent(ECHO_REASON),
        memory_bandwidth_gbps=(
            first.memory_bandwidth_gbps if not isinstance(first.memory_bandwidth_gbps, Absent) else absent(ECHO_REASON)
        ),
        devices=devices,
    )


# ---------------------------------------------------------------------------------------------- sampling


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuSample(_Model):
    """One reading of one device; a field is None when its query is unsupported (see ``DeviceTrace.unsupported``)."""

    t_s: float
    gpu_util_pct: int | None = None
    memory_util_pct: int | None = None
    memory_used_bytes: int | None = None
    power_mw: int | None = None
    sm_clock_mhz: int | None = None
    memory_clock_mhz: int | None = None
    temperature_c: int | None = None
    clock_event_reasons_mask: int | None = None


class DeviceEnergy(_Model):
    """The energy counter (mJ since the driver loaded) read at start and stop, and what it says about the run."""

    counter_start_mj: int
    counter_end_mj: int
    energy_mj: int
    duration_s: float
    mean_power_w: float | None


class DeviceTrace(_Model):
    index: int
    uuid: str | Absent
    energy: DeviceEnergy | Absent
    unsupported: dict[str, str]
    """sample field → NVML error of its first failed query (the field is not queried again)."""
    clock_event_reasons_seen: list[str]
    samples: list[GpuSample]


class TelemetryTrace(_Model):
    """A run's GPU trace (``telemetry.json``); ``present`` false with ``reason`` when there was no NVML."""

    schema_version: Literal[1] = 1
    present: bool
    reason: str | None = None
    period_s: float
    duration_s: float | None = None
    error: str | None = None
    devices: list[DeviceTrace] = []


def telemetry_json(trace: TelemetryTrace) -> bytes:
    """The bytes of a run's ``telemetry.json`` (canonical JSON, like every artifact), for ``RunOutcome.extra_files``."""
    return (canonical_json(trace.model_dump(mode="json")) + "\n").encode("utf-8")


class GpuSampler:
    """Samples every device every ``period_s`` on a thread between :meth:`start` and :meth:`stop`.

    Use as ``with GpuSampler(nvml) as sampler: …`` then ``sampler.trace``, or call start/stop. With no NVML it
    samples nothing and its trace is absent with the reason. The first and last samples are taken at start and
    stop themselves, so even a run shorter than the period has two.
    """

    def __init__(
        self, nvml: Nvml | Absent, *, period_s: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if period_s <= 0:
            raise ValueError("period_s must be positive")
        self.nvml = nvml
        self.period_s = period_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._handles: list[Any] = []
        self._samples: list[list[GpuSample]] = []
        self._unsupported: list[dict[str, str]] = []
        self._energy_start: list[tuple[int, float] | Absent] = []
        self._error: str | None = None
        self._lock = threading.Lock()
        self.trace: TelemetryTrace | None = None

    def __enter__(self) -> GpuSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None or self.trace is not None:
            raise RuntimeError("a GpuSampler samples one run: create another for the next")
        if isinstance(self.nvml, Absent):
            return
        nvml = self.nvml
        self._t0 = self._clock()
        self._handles = [nvml.handle(i) for i in range(nvml.device_count)]
        self._samples = [[] for _ in self._handles]
        self._unsupported = [{} for _ in self._handles]
        self._energy_start = [self._read_energy(h) for h in self._handles]
        self._sample_all()
        self._thread = threading.Thread(target=self._loop, name="gpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> TelemetryTrace:
        """Stop sampling (idempotent) and build the trace."""
        if self.trace is not None:
            return self.trace
        if isinstance(self.nvml, Absent):
            self.trace = TelemetryTrace(present=False, reason=self.nvml.reason, period_s=self.period_s)
            return self.trace
        if self._thread is None:
            raise RuntimeError("stop() before start()")
        self._stop.set()
        self._thread.join()
        self._sample_all()
        end = self._clock()
        devices = []
        for i, handle in enumerate(self._handles):
            devices.append(
                DeviceTrace(
                    index=i,
                    uuid=_text(self.nvml.query("nvmlDeviceGetUUID", handle)),
                    energy=energy_between(self._energy_start[i], self._read_energy(handle)),
                    unsupported=dict(self._unsupported[i]),
                    clock_event_reasons_seen=_reasons_seen(self._samples[i]),
                    samples=list(self._samples[i]),
                )
            )
        self.trace = TelemetryTrace(
            present=True,
            period_s=self.period_s,
            duration_s=round(end - self._t0, 6),
            error=self._error,
            devices=devices,
        )
        return self.trace

    # -- internals

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.period_s):
                self._sample_all()
        except Exception as exc:  # a sampler bug must not take the run down; the trace says it stopped early
            self._error = f"sampling stopped early: {type(exc).__name__}: {exc}"

    def _read_energy(self, handle: Any) -> tuple[int, float] | Absent:
        assert isinstance(self.nvml, Nvml)
        value = self.nvml.query("nvmlDeviceGetTotalEnergyConsumption", handle)
        return value if isinstance(value, Absent) else (int(value), self._clock())

    def _sample_all(self) -> None:
        with self._lock:
            for i, handle in enumerate(self._handles):
                self._samples[i].append(self._sample(handle, self._unsupported[i]))

    def _sample(self, handle: Any, unsupported: dict[str, str]) -> GpuSample:
        assert isinstance(self.nvml, Nvml)
        nvml, m = self.nvml, self.nvml.module
        values: dict[str, Any] = {"t_s": round(self._clock() - self._t0, 6)}

        def read(fields: Sequence[str], name: str, *args: Any) -> Any:
            if all(f in unsupported for f in fields):
                return None
            value = nvml.query(name, *args)
            if isinstance(value, Absent):
                for f in fields:
                    unsupported.setdefault(f, value.reason)
                return None
            return value

        util = read(("gpu_util_pct", "memory_util_pct"), "nvmlDeviceGetUtilizationRates", handle)
        if util is not None:
            values["gpu_util_pct"], values["memory_util_pct"] = int(util.gpu), int(util.memory)
        memory = read(("memory_used_bytes",), "nvmlDeviceGetMemoryInfo", handle)
        if memory is not None:
            values["memory_used_bytes"] = int(memory.used)
        for field, name, args in (
            ("power_mw", "nvmlDeviceGetPowerUsage", ()),
            ("sm_clock_mhz", "nvmlDeviceGetClockInfo", (m.NVML_CLOCK_SM,)),
            ("memory_clock_mhz", "nvmlDeviceGetClockInfo", (m.NVML_CLOCK_MEM,)),
            ("temperature_c", "nvmlDeviceGetTemperature", (m.NVML_TEMPERATURE_GPU,)),
        ):
            value = read((field,), name, handle, *args)
            if value is not None:
                values[field] = int(value)
        if "clock_event_reasons_mask" not in unsupported:
            mask = nvml.query_first(
                ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"), handle
            )
            if isinstance(mask, Absent):
                unsupported["clock_event_reasons_mask"] = mask.reason
            else:
                values["clock_event_reasons_mask"] = int(mask)
        return GpuSample(**values)


def energy_between(start: tuple[int, float] | Absent, end: tuple[int, float] | Absent) -> DeviceEnergy | Absent:
    """The run's energy from two ``(counter mJ, clock s)`` readings; absent when either failed or it ran back."""
    if isinstance(start, Absent):
        return absent(f"energy counter unreadable at start: {start.reason}")
    if isinstance(end, Absent):
        return absent(f"energy counter unreadable at stop: {end.reason}")
    (e0, t0), (e1, t1) = start, end
    if e1 < e0:
        return absent(f"energy counter went backwards ({e0} → {e1} mJ): was the driver reloaded during the run?")
    duration = max(t1 - t0, 0.0)
    return DeviceEnergy(
        counter_start_mj=e0,
        counter_end_mj=e1,
        energy_mj=e1 - e0,
        duration_s=round(duration, 6),
        mean_power_w=round((e1 - e0) / 1000 / duration, 3) if duration > 0 else None,
    )


def _reasons_seen(samples: Sequence[GpuSample]) -> list[str]:
    mask = 0
    for s in samples:
        mask |= s.clock_event_reasons_mask or 0
    return decode_clock_event_reasons(mask)
