"""The results file: ``benchmarks/results/<UTC timestamp>.json`` and ``latest.json``, one schema.

Every figure carries its unit in its name; the file says which machine made it (CPU, cores, memory, kernel,
Docker, the load average around the run), with which command and kit commit, and judges each target.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.bench.spread import Spread
from harness.errors import SchemaVersionError

SCHEMA_VERSION = 1
RESULTS_DIR = Path("benchmarks/results")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Machine(_Model):
    cpu_model: str
    cores: int
    memory_bytes: int | None
    kernel: str
    os: str
    python: str
    docker_version: str | None
    load_avg_start: tuple[float, float, float]
    load_avg_end: tuple[float, float, float] | None = None


class Kit(_Model):
    version: str
    commit: str | None
    dirty: bool | None


class ClientRow(_Model):
    """One agent (or the peer) at one decode rate: TTFT and throughput error against the simulator."""

    agent: str
    rate_tps: float
    tokens: int
    calls: int
    ttft_error_ms: Spread
    true_ttft_ms: Spread
    throughput_error_pct: Spread = Field(description="client tok/s vs the rate the simulator really emitted")
    pacing_error_pct: Spread = Field(description="emitted tok/s vs the configured rate: the simulator's own error")
    flaw: str | None = None
    error: str | None = None


class EfficiencyRow(_Model):
    """One agent, one set-up, one formula: measured efficiency against its true value (pp = percentage points)."""

    agent: str
    setup: Literal["two_servers", "one_server"]
    formula: Literal["original", "true"]
    runs: int
    true_pct: float
    measured_pct: Spread
    error_pp: Spread
    flaw: str | None = None
    error: str | None = None


class StackOverhead(_Model):
    """create → ready → removed of the single-Ollama simulated stack through ``harness.containers.stack.Stack``."""

    image: str
    repetitions: int
    total_s: Spread
    up_s: Spread
    down_s: Spread
    image_check_s: float


class ReportTime(_Model):
    command: list[str]
    time_scale: float
    configs: str
    planned_runs: int
    failed_runs: int
    wall_s: float
    run_s: Spread
    exit_code: int


class PeerResult(_Model):
    name: str
    version: str
    status: Literal["ok", "unavailable"]
    reason: str | None = None
    setup_s: float | None = None
    rows: list[ClientRow] = Field(default_factory=list)


class Verdict(_Model):
    target: str
    rule: str
    measured: str
    met: bool | None = Field(description="None: not measured in this run")


class SchedulingOverhead(_Model):
    """Wall time per no-op run: the local executor's loop beside the Ray executor's (harness.bench.scheduling)."""

    runs: int
    payload_bytes: int
    local_per_run_s: Spread
    ray_per_run_s: Spread
    ray_start_s: float


class BenchResults(_Model):
    schema_version: Literal[1] = 1
    kind: Literal["chimeraforge-bench"] = "chimeraforge-bench"
    created_at: str
    command: list[str]
    quick: bool
    only: list[str]
    duration_s: float
    kit: Kit
    machine: Machine
    clients: list[ClientRow] = Field(default_factory=list)
    efficiency: list[EfficiencyRow] = Field(default_factory=list)
    stack: StackOverhead | None = None
    stack_llamacpp: StackOverhead | None = None
    """The same create → ready → removed with llama.cpp servers loading the tiny GGUF model (a real engine)."""
    report: ReportTime | None = None
    peer: PeerResult | None = None
    scheduling: SchedulingOverhead | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def utc_stamp(now: dt.datetime | None = None) -> str:
    """``20261123T130102Z``: sortable, and safe in a file name."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")


def write_results(results: BenchResults, directory: Path) -> tuple[Path, Path]:
    """Write the timestamped file and ``latest.json`` (same bytes); returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    text = results.model_dump_json(indent=2) + "\n"
    stamp = utc_stamp(dt.datetime.fromisoformat(results.created_at))
    stamped = directory / f"{stamp}.json"
    for path in (stamped, directory / "latest.json"):
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return stamped, directory / "latest.json"


def load_results(path: Path) -> BenchResults:
    """Read a results file back, refusing other schema versions with a message that says what to do."""
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path}: bench results schema_version {data.get('schema_version') if isinstance(data, dict) else None!r}"
            f" is not supported (this kit reads {SCHEMA_VERSION})",
            hint="re-run `invoke bench` with this kit",
        )
    return BenchResults.model_validate(data)


# -- machine and kit description ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _load() -> tuple[float, float, float]:
    try:
        a, b, c = os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)
    return (round(a, 2), round(b, 2), round(c, 2))


def describe_machine(docker_version: str | None) -> Machine:
    return Machine(
        cpu_model=_cpu_model(),
        cores=os.cpu_count() or 0,
        memory_bytes=_memory_bytes(),
        kernel=platform.release(),
        os=platform.platform(terse=True),
        python=platform.python_version(),
        docker_version=docker_version,
        load_avg_start=_load(),
    )


def finish_machine(machine: Machine) -> Machine:
    return machine.model_copy(update={"load_avg_end": _load()})


def describe_kit(version: str, repo_root: Path) -> Kit:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return Kit(version=version, commit=commit, dirty=None if status is None else bool(status))
