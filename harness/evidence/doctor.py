"""``harness doctor``: checks a host before its numbers are trusted.

Each check gives one :class:`Finding`: ``ok``, ``warn`` (numbers may be skewed; say so), ``fail`` (the kit
cannot measure here, or the numbers would not mean what the reports mean), or ``skip`` (not applicable: the
finding it depends on, e.g. "no NVIDIA GPU", is reported on its own line). Every finding is one line with a
fix. The exit code is 1 when something fails, else 0. A host without a GPU is a rehearsal host, not a broken
one: the GPU finding is a warning that says what the kit does instead (unless ``require_gpu``).

Everything is injected (NVML, the Docker connection, disk usage, tool lookups), so the checks are testable
without a GPU; the CLI passes the real ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

from harness.containers import engine as docker_engine
from harness.errors import EXIT_OK, EXIT_RUN_FAILURE, HarnessError
from harness.evidence.telemetry import SLOWDOWN_REASONS, GpuDevice, GpuFacts, Nvml, gpu_facts
from harness.facts import Absent
from harness.sim.catalog import lookup as catalog_lookup
from harness.sim.catalog import normalize_name

Status = Literal["ok", "warn", "fail", "skip"]
DOCTOR_SCHEMA_VERSION = 1

VRAM_HEADROOM_BYTES = 1 << 30
"""Per Ollama server, beyond the weights: CUDA context, KV cache at the reports' num_ctx, compute graph."""
IMAGE_HEADROOM_BYTES = 10 << 30
"""Docker disk beyond the model: the kit's images (the Ollama image is several GB) and build cache."""
MIN_DRIVER_MAJOR = 531
"""Ollama's hardware page of the 0.12 series: compute capability 5.0+ and driver 531+."""
RECOMMENDED_DRIVER_MAJOR = 550
"""What later Ollama releases ask for."""
MIN_COMPUTE_CAPABILITY = (5, 0)

NO_GPU_MEANS = (
    "this host cannot measure: `--backend auto` (the default) rehearses every report on the simulated Ollama "
    "instead and every output says SIMULATED; `--backend ollama` refuses"
)
GPU_SKIP = "needs an NVIDIA GPU (see nvidia_driver)"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Diagnosis:
    """The findings in check order, and whether NVML saw a GPU at all."""

    findings: list[Finding]
    gpu_present: bool

    @property
    def exit_code(self) -> int:
        """1 when any finding fails, else 0."""
        return EXIT_RUN_FAILURE if any(f.status == "fail" for f in self.findings) else EXIT_OK


@dataclass(frozen=True)
class ModelNeed:
    """The model a run will load, its size when known, and how many servers load it at once."""

    name: str
    size_bytes: int | None
    servers: int = 1

    @classmethod
    def of(cls, model: str, servers: int = 1) -> ModelNeed:
        spec = catalog_lookup(model)
        return cls(normalize_name(model), spec.size_bytes if spec else None, servers)


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f} GiB"


def _tool_version(cmd: Sequence[str]) -> str | None:
    """First line of ``cmd`` (e.g. ``cargo --version``), or None when it is missing or fails."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip().splitlines() or [""])[0] or None


# ---------------------------------------------------------------------------------------------- checks


def _docker(connect: Callable[[], docker_engine.Client]) -> tuple[Finding, docker_engine.EngineFacts | None]:
    try:
        engine = docker_engine.engine_facts(connect())
    except HarnessError as exc:
        hint = exc.hint or docker_engine.ENGINE_HINT
        return Finding("docker", "fail", f"Docker engine not reachable: {exc.message}", hint), None
    return (
        Finding(
            "docker",
            "ok",
            f"Docker {engine.server_version} (API {engine.api_version}) reachable; runtimes "
            f"{', '.join(engine.runtimes) or 'none'}, default {engine.default_runtime}",
        ),
        engine,
    )


def _disk(engine: docker_engine.EngineFacts | None, need: ModelNeed, disk_usage: Callable[[str], Any]) -> Finding:
    if engine is None:
        return Finding("docker_disk", "skip", "needs the Docker engine (see docker)")
    try:
        usage = disk_usage(engine.root_dir)
    except OSError as exc:
        return Finding(
            "docker_disk",
            "warn",
            f"cannot measure free space at the Docker root {engine.root_dir} from here ({exc.strerror or exc})",
            "check `df -h` on the engine's host: images and the model volume live there",
        )
    free = int(usage.free)
    model = need.size_bytes or 0
    what = f"{_gib(free)} free at {engine.root_dir}"
    if need.size_bytes is None:
        what += f" (size of {need.name} unknown to the kit)"
    if free < model:
        return Finding(
            "docker_disk",
            "fail",
            f"{what}: less than {need.name} itself ({_gib(model)})",
            "free disk space on the Docker root or move it (`data-root` in daemon.json)",
        )
    if free < model + IMAGE_HEADROOM_BYTES:
        return Finding(
            "docker_disk",
            "warn",
            f"{what}: the model ({_gib(model)}) fits, but images and build cache need about "
            f"{_gib(IMAGE_HEADROOM_BYTES)} more",
            "free disk space on the Docker root (`docker system df`, `docker builder prune`)",
        )
    return Finding("docker_disk", "ok", f"{what}: room for {need.name} ({_gib(model)}) and the kit's images")


def _driver(gpu: GpuFacts | Absent, require_gpu: bool) -> Finding:
    if isinstance(gpu, Absent):
        return Finding(
            "nvidia_driver",
            "fail" if require_gpu else "warn",
            f"no NVIDIA GPU visible: {gpu.reason}",
            "nothing to fix for a rehearsal: here `--backend auto` (the default) runs the simulated Ollama and every "
            "output says SIMULATED; to measure, use a host with an NVIDIA GPU and driver",
        )
    names = ", ".join(sorted({d.name for d in gpu.devices if isinstance(d.name, str)})) or "unnamed"
    version = gpu.driver_version if isinstance(gpu.driver_version, str) else None
    cuda = gpu.cuda_driver_version if isinstance(gpu.cuda_driver_version, str) else "unknown"
    detail = f"{gpu.device_count} GPU(s): {names}; driver {version or 'unknown'}, CUDA {cuda}"
    major = int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else None
    if major is None:
        return Finding("nvidia_driver", "warn", f"{detail}: driver version unreadable", "check `nvidia-smi`")
    if major < MIN_DRIVER_MAJOR:
        return Finding(
            "nvidia_driver",
            "fail",
            f"{detail}: Ollama 0.12 needs driver {MIN_DRIVER_MAJOR} or newer",
            f"install NVIDIA driver {RECOMMENDED_DRIVER_MAJOR}+",
        )
    if major < RECOMMENDED_DRIVER_MAJOR:
        return Finding(
            "nvidia_driver",
            "warn",
            f"{detail}: enough for Ollama 0.12; later Ollama releases need {RECOMMENDED_DRIVER_MAJOR}+",
            f"update the NVIDIA driver to {RECOMMENDED_DRIVER_MAJOR}+",
        )
    return Finding("nvidia_driver", "ok", detail)


def _capability(devices: Sequence[GpuDevice]) -> Finding:
    too_old, unknown = [], []
    for d in devices:
        if isinstance(d.compute_capability, Absent):
            unknown.append(f"GPU {d.index}")
            continue
        major, _, minor = d.compute_capability.partition(".")
        if (int(major), int(minor or 0)) < MIN_COMPUTE_CAPABILITY:
            too_old.append(f"GPU {d.index} ({d.compute_capability})")
    if too_old:
        return Finding(
            "compute_capability",
            "fail",
            f"Ollama's CUDA runners need compute capability 5.0+: {', '.join(too_old)} is older",
            "measure on a newer GPU",
        )
    if unknown:
        return Finding("compute_capability", "warn", f"compute capability unreadable on {', '.join(unknown)}")
    caps = ", ".join(f"GPU {d.index}: {d.compute_capability}" for d in devices)
    return Finding("compute_capability", "ok", caps)


def _docker_gpu(engine: docker_engine.EngineFacts | None, gpu: GpuFacts | Absent) -> Finding:
    if engine is None:
        return Finding("docker_gpu", "skip", "needs the Docker engine (see docker)")
    if engine.gpu_visible:
        how = "nvidia runtime registered" if engine.nvidia_runtime else "NVIDIA CDI devices discovered"
        return Finding("docker_gpu", "ok", f"Docker can hand the GPU to containers ({how})")
    if isinstance(gpu, Absent):
        return Finding("docker_gpu", "skip", "no NVIDIA runtime in Docker, and no GPU to hand to containers")
    return Finding(
        "docker_gpu",
        "fail",
        "the host has an NVIDIA GPU but Docker has no nvidia runtime: containers would not see it",
        "install the NVIDIA Container Toolkit, then `sudo nvidia-ctk runtime configure --runtime=docker` and "
        "restart Docker",
    )


def _persistence(devices: Sequence[GpuDevice]) -> Finding:
    off = [f"GPU {d.index}" for d in devices if d.persistence_mode is False]
    unknown = [
        f"GPU {d.index} ({d.persistence_mode.reason})" for d in devices if isinstance(d.persistence_mode, Absent)
    ]
    if off:
        return Finding(
            "persistence_mode",
            "warn",
            f"persistence mode off on {', '.join(off)}: the driver unloads when idle, so a cold start pays its "
            "re-initialisation on top of the model load",
            "sudo nvidia-smi -pm 1",
        )
    if unknown:
        return Finding(
            "persistence_mode",
            "warn",
            f"persistence mode unreadable on {', '.join(unknown)}",
            "not settable on this platform (Windows/WSL); cold-start figures include driver start-up",
        )
    return Finding("persistence_mode", "ok", "persistence mode on")


def _power(devices: Sequence[GpuDevice]) -> Finding:
    parts, capped, unknown = [], [], []
    for d in devices:
        enforced, default = d.enforced_power_limit_mw, d.default_power_limit_mw
        if isinstance(enforced, Absent):
            unknown.append(f"GPU {d.index} ({enforced.reason})")
            continue
        text = f"GPU {d.index}: {enforced / 1000:.0f} W"
        if isinstance(default, int):
            text += f" (default {default / 1000:.0f} W)"
            if enforced < default:
                capped.append(text)
        parts.append(text)
    if capped:
        return Finding(
            "power_limit",
            "warn",
            f"power limit below the default: {'; '.join(capped)}: throughput will be lower than the card's",
            "sudo nvidia-smi -pl <default watts> (or record the cap beside the results)",
        )
    if unknown:
        return Finding(
            "power_limit", "warn", f"power limit unreadable: {', '.join(unknown)}", "laptops often hide it; say so"
        )
    return Finding("power_limit", "ok", "; ".join(parts))


def _clocks(devices: Sequence[GpuDevice]) -> Finding:
    parts, unknown = [], []
    for d in devices:
        fields = (d.sm_clock_mhz, d.max_sm_clock_mhz, d.memory_clock_mhz, d.max_memory_clock_mhz)
        if any(isinstance(f, Absent) for f in fields):
            unknown.append(f"GPU {d.index}")
            continue
        sm, sm_max, mem, mem_max = fields
        parts.append(f"GPU {d.index}: SM {sm}/{sm_max} MHz, memory {mem}/{mem_max} MHz")
    if unknown:
        return Finding("clocks", "warn", f"clocks unreadable on {', '.join(unknown)}", "check `nvidia-smi -q -d CLOCK`")
    return Finding("clocks", "ok", "; ".join(parts) + " (current/max; low clocks at idle are normal)")


def _throttle(devices: Sequence[GpuDevice]) -> Finding:
    slowed, app_clocks, unknown = [], [], []
    for d in devices:
        if isinstance(d.clock_event_reasons, Absent):
            unknown.append(f"GPU {d.index}")
            continue
        bad = [r for r in d.clock_event_reasons if r in SLOWDOWN_REASONS or r.startswith("unknown_")]
        if bad:
            slowed.append(f"GPU {d.index}: {', '.join(bad)}")
        if "applications_clocks_setting" in d.clock_event_reasons:
            app_clocks.append(f"GPU {d.index}")
    if slowed:
        return Finding(
            "throttle",
            "warn",
            f"clocks held down right now: {'; '.join(slowed)}",
            "let the GPU cool, check the power cap and airflow (`nvidia-smi -q -d PERFORMANCE`)",
        )
    if app_clocks:
        return Finding(
            "throttle",
            "warn",
            f"application clocks set on {', '.join(app_clocks)}: clocks are pinned, not the card's defaults",
            "sudo nvidia-smi -rac (or record the setting beside the results)",
        )
    if unknown:
        return Finding("throttle", "warn", f"clock event reasons unreadable on {', '.join(unknown)}")
    reasons = sorted({r for d in devices if isinstance(d.clock_event_reasons, list) for r in d.clock_event_reasons})
    return Finding("throttle", "ok", "no slowdown reason active" + (f" ({', '.join(reasons)})" if reasons else ""))


def _processes(devices: Sequence[GpuDevice]) -> Finding:
    found, unknown = [], []
    for d in devices:
        if isinstance(d.processes, Absent):
            unknown.append(f"GPU {d.index} ({d.processes.reason})")
            continue
        for p in d.processes:
            memory = _gib(p.used_memory_bytes) if p.used_memory_bytes is not None else "memory unknown"
            found.append(f"GPU {d.index}: pid {p.pid} {p.kind} ({memory})")
    if found:
        return Finding(
            "gpu_processes",
            "warn",
            f"{len(found)} other process(es) on the GPU: {'; '.join(found)}",
            "stop them before measuring: they share compute, memory and bandwidth with Ollama",
        )
    if unknown:
        return Finding("gpu_processes", "warn", f"process list unreadable: {', '.join(unknown)}")
    return Finding("gpu_processes", "ok", "no other process on the GPU")


def _vram(devices: Sequence[GpuDevice], need: ModelNeed) -> Finding:
    frees = [(d.memory_free_bytes, d) for d in devices if isinstance(d.memory_free_bytes, int)]
    if not frees:
        return Finding("vram", "warn", "free GPU memory unreadable", "check `nvidia-smi`")
    free, best = max(frees, key=lambda x: x[0])
    servers = f"{need.servers} servers × " if need.servers > 1 else ""
    if need.size_bytes is None:
        return Finding(
            "vram",
            "warn",
            f"{_gib(free)} free on GPU {best.index}; the size of {need.name} is unknown to the kit",
            "compare with the model's size in `ollama list`",
        )
    weights = need.size_bytes * need.servers
    wanted = weights + VRAM_HEADROOM_BYTES * need.servers
    what = f"{_gib(free)} free on GPU {best.index}; {need.name} needs {servers}{_gib(need.size_bytes)}"
    if free < weights:
        return Finding(
            "vram",
            "fail",
            f"{what}: it would not fit, Ollama would offload layers to the CPU and the figures would not be the "
            "reports' (full offload)",
            "free GPU memory (see gpu_processes) or use a GPU with more memory",
        )
    if free < wanted:
        return Finding(
            "vram",
            "warn",
            f"{what}: the weights fit, but less than {_gib(VRAM_HEADROOM_BYTES)} per server is left for the KV "
            "cache and CUDA",
            "free GPU memory (see gpu_processes)",
        )
    return Finding("vram", "ok", f"{what} plus headroom")


def _python(version: tuple[int, int, int]) -> Finding:
    text = ".".join(map(str, version))
    if version[:2] < (3, 11):
        return Finding("python", "fail", f"Python {text}: the kit needs 3.11+", "use Python 3.11 or newer")
    return Finding("python", "ok", f"Python {text}")


def _rust(version: str | None) -> Finding:
    if version is None:
        return Finding(
            "rust",
            "warn",
            "cargo not found: the Rust agent image (TR111 onwards) is built from host-compiled binaries",
            "install Rust 1.90.0 with rustup",
        )
    return Finding("rust", "ok", version)


# ---------------------------------------------------------------------------------------------- entry


def diagnose(
    *,
    nvml: Nvml | Absent,
    connect: Callable[[], docker_engine.Client],
    need: ModelNeed,
    require_gpu: bool = False,
    disk_usage: Callable[[str], Any] = shutil.disk_usage,
    tool_version: Callable[[Sequence[str]], str | None] = _tool_version,
    python_version: tuple[int, int, int] = (sys.version_info[0], sys.version_info[1], sys.version_info[2]),
) -> Diagnosis:
    """Every check, in a fixed order; GPU checks are ``skip`` (not missing) when there is no GPU."""
    docker_finding, engine = _docker(connect)
    gpu = gpu_facts(nvml)
    findings = [docker_finding, _disk(engine, need, disk_usage), _driver(gpu, require_gpu)]
    if isinstance(gpu, Absent):
        gpu_checks = [
            Finding(name, "skip", GPU_SKIP)
            for name in ("compute_capability", "persistence_mode", "power_limit", "clocks", "throttle",
                         "gpu_processes", "vram")
        ]  # fmt: skip
    else:
        gpu_checks = [
            _capability(gpu.devices),
            _persistence(gpu.devices),
            _power(gpu.devices),
            _clocks(gpu.devices),
            _throttle(gpu.devices),
            _processes(gpu.devices),
            _vram(gpu.devices, need),
        ]
    findings += [_docker_gpu(engine, gpu), *gpu_checks]
    findings += [_python(python_version), _rust(tool_version(["cargo", "--version"]))]
    return Diagnosis(findings=findings, gpu_present=not isinstance(gpu, Absent))


def summary(diagnosis: Diagnosis) -> str:
    """Counts per status, the verdict, and what the kit does on a host without a GPU."""
    counts = {s: sum(1 for f in diagnosis.findings if f.status == s) for s in ("ok", "warn", "fail", "skip")}
    line = ", ".join(f"{n} {s}" for s, n in counts.items())
    verdict = "something fails: fix it before trusting numbers from this host" if counts["fail"] else "nothing fails"
    out = f"{line}: {verdict}"
    if not diagnosis.gpu_present:
        out += f".\nNo NVIDIA GPU is visible, so {NO_GPU_MEANS}."
    return out


def render_plain(diagnosis: Diagnosis) -> str:
    """One line per finding (``STATUS check: detail``) and its fix indented below: readable when piped."""
    width = max(len(f.check) for f in diagnosis.findings)
    lines = []
    for f in diagnosis.findings:
        lines.append(f"{f.status.upper():<4}  {f.check:<{width}}  {f.detail}")
        if f.fix and f.status != "ok":
            lines.append(f"{'':<4}  {'':<{width}}  fix: {f.fix}")
    return "\n".join([*lines, "", summary(diagnosis)]) + "\n"


def render_json(diagnosis: Diagnosis) -> str:
    doc = {
        "schema_version": DOCTOR_SCHEMA_VERSION,
        "exit_code": diagnosis.exit_code,
        "gpu_present": diagnosis.gpu_present,
        "findings": [asdict(f) for f in diagnosis.findings],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def render_rich(diagnosis: Diagnosis, console: Any) -> None:
    """A table for a terminal (``console`` is a rich Console)."""
    from rich.table import Table

    style = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
    table = Table(title="harness doctor", show_lines=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("finding")
    table.add_column("fix")
    for f in diagnosis.findings:
        table.add_row(f"[{style[f.status]}]{f.status.upper()}[/]", f.check, f.detail, f.fix if f.status != "ok" else "")
    console.print(table)
    console.print(summary(diagnosis), markup=False)
