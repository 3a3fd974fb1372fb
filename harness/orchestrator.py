"""Drives a reproduction: plan → per run (servers up → agents → records → servers down) → artifacts.

Each run gets fresh servers and writes its folder as soon as it finishes, so an interrupted sweep loses no
completed run and a re-invocation resumes where it stopped (completed runs are skipped by run id). A failed run
is retried up to ``retries`` times and then recorded with its cause; the sweep goes on.

How a run's servers and agents are started is an :class:`Executor`. This module ships the local simulator
executor (in-process simulated Ollama servers, Python agents on this loop): it rehearses the whole protocol
without Docker. The container executor (one compose stack per run) plugs in behind the same interface.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness import __version__
from harness.agents.runner import SingleAgent, Timeouts, run_multi, run_single
from harness.agents.workflow import Identity, Workload, process_start_monotonic_ns, run_agent
from harness.artifacts import ArtifactDir, RunResult, Sweep, load_sweep
from harness.errors import BadInputError
from harness.ollama import OllamaClient
from harness.plan import PYTHON_RUNTIMES, Plan, Run
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord
from harness.sim.config import SimConfig
from harness.sim.server import SimServer
from harness.spec import Spec

AnyRecord = CallRecord | AgentRunRecord | MultiRunRecord


@dataclass
class RunOutcome:
    records: list[AnyRecord] = field(default_factory=list)
    error: str | None = None
    extra_files: dict[str, bytes] = field(default_factory=dict)


class Executor(Protocol):
    """Starts one run's servers and agents, returns its records; must leave nothing running behind."""

    @property
    def backend(self) -> str: ...

    @property
    def time_scale(self) -> float: ...

    async def execute(self, run: Run, spec: Spec) -> RunOutcome: ...


@dataclass(frozen=True)
class LocalSimExecutor:
    """Fresh in-process simulated servers per run; dual topology time-slices one simulated GPU."""

    workload: Workload
    seed: int
    time_scale: float
    timeouts: Timeouts = field(default_factory=Timeouts)
    backend: str = "sim"

    def check(self, plan: Plan) -> None:
        rust = sorted({r.runtime for r in plan.runs if r.runtime not in PYTHON_RUNTIMES})
        if rust:
            raise BadInputError(
                f"{plan.report} runs Rust agents ({', '.join(rust)}), which need the container executor",
                hint="reproduce a Python report (tr108, tr109, tr110) locally, or build the Rust agent image",
            )

    async def execute(self, run: Run, spec: Spec) -> RunOutcome:
        outcome = RunOutcome()
        device_dir = Path(tempfile.mkdtemp(prefix="cfk-device-"))
        servers = [self._server(run, spec, index, device_dir) for index in range(len(spec.topology.ports))]
        try:
            for server in servers:
                await server.start()
            urls = [s.base_url for s in servers]
            await self._agents(run, spec, urls, outcome)
        finally:
            for server in servers:
                with contextlib.suppress(Exception):
                    await server.stop()
            shutil.rmtree(device_dir, ignore_errors=True)
        outcome.extra_files["server-requests.jsonl"] = b"".join(
            _request_lines(server, index) for index, server in enumerate(servers)
        )
        return outcome

    def _server(self, run: Run, spec: Spec, index: int, device_dir: Path) -> SimServer:
        run_seed = int(hashlib.sha256(f"{self.seed}:{run.run_id}".encode()).hexdigest()[:8], 16)
        return SimServer(
            SimConfig(
                seed=run_seed,
                time_scale=self.time_scale,
                num_parallel=spec.server.num_parallel,
                keep_alive=spec.server.keep_alive,
                context_length=spec.server.context_length,
                flash_attention=spec.server.flash_attention,
                preload=(run.model,),
                shared_device=f"run-{run.run_id}" if len(spec.topology.ports) > 1 else None,
                device_dir=device_dir if len(spec.topology.ports) > 1 else None,
            )
        )

    async def _agents(self, run: Run, spec: Spec, urls: list[str], outcome: RunOutcome) -> None:
        sink = outcome.records.append
        agent_spec = spec.agent
        if run.kind == "isolated":
            side = run.agents[0]
            async with OllamaClient(urls[side.server_index], request_timeout_s=self.timeouts.request_timeout_s) as c:
                record = await run_agent(
                    c,
                    self.workload,
                    Identity(role=side.role, run_id=run.run_id),
                    side.options,
                    process_start_ns=process_start_monotonic_ns(),
                    sink=sink,
                )
            outcome.error = record.error
        elif len(run.agents) == 2 and run.agents[0].role == "collector":
            a, b = run.agents
            multi = await run_multi(
                urls[a.server_index],
                urls[b.server_index],
                self.workload,
                run.scenario,  # type: ignore[arg-type]
                a.options,
                b.options,
                run_id=run.run_id,
                sink=sink,
                timeouts=self.timeouts,
            )
            outcome.error = multi.error
        else:
            cooldown = (agent_spec.cooldown_s if agent_spec else 0.0) * self.time_scale
            records = await run_single(
                urls[0],
                self.workload,
                [SingleAgent(role=a.role, options=a.options) for a in run.agents],  # type: ignore[arg-type]
                cooldown_s=cooldown,
                unload_between_runs=bool(agent_spec and agent_spec.unload_between_runs),
                run_id=run.run_id,
                sink=sink,
                timeouts=self.timeouts,
            )
            errors = [r.error for r in records if r.error]
            outcome.error = "; ".join(errors) or None


def _request_lines(server: SimServer, index: int) -> bytes:
    import json

    return b"".join(
        (json.dumps({"server": index, **r.to_json()}, sort_keys=True) + "\n").encode() for r in server.requests
    )


ProgressHook = Callable[[int, int, Run, RunResult | None], None]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def prepare(
    out: ArtifactDir, spec: Spec, spec_bytes: bytes, plan: Plan, executor: Executor, command: list[str]
) -> Sweep:
    """Write sweep.json, spec.toml and plan.json, or check that an existing sweep is the same one (resume)."""
    spec_sha = hashlib.sha256(spec_bytes).hexdigest()
    if (out.root / "sweep.json").exists():
        sweep = load_sweep(out.root)
        if sweep.spec_sha256 != spec_sha or sweep.backend != executor.backend:
            raise BadInputError(
                f"{out.root} holds a sweep of another spec or backend (spec sha256 {sweep.spec_sha256[:12]}…)",
                hint="pass a new --out folder, or restore the spec it was started with to resume",
            )
        return sweep
    sweep = Sweep(
        artifact_id=out.root.name,
        report=spec.id,
        backend=executor.backend,
        simulated=executor.backend == "sim",
        time_scale=executor.time_scale,
        kit_version=__version__,
        spec_sha256=spec_sha,
        command=command,
        started_at=_now(),
        planned_runs=len(plan.runs),
    )
    out.root.mkdir(parents=True, exist_ok=True)
    (out.root / "spec.toml").write_bytes(spec_bytes)
    out.write_plan(plan)
    out.write_json("sweep.json", sweep)
    return sweep


async def run_sweep(
    out: ArtifactDir,
    spec: Spec,
    plan: Plan,
    executor: Executor,
    *,
    retries: int = 1,
    progress: ProgressHook | None = None,
) -> list[RunResult]:
    """Every planned run not yet completed, in plan order; each written as soon as it ends."""
    done = out.completed_run_ids()
    results: list[RunResult] = []
    todo = [r for r in plan.runs if r.run_id not in done]
    for position, run in enumerate(todo, 1):
        if progress:
            progress(position - 1, len(todo), run, None)
        result = await _one(out, spec, run, executor, retries)
        results.append(result)
        if progress:
            progress(position, len(todo), run, result)
    return results


async def _one(out: ArtifactDir, spec: Spec, run: Run, executor: Executor, retries: int) -> RunResult:
    attempt = 0
    while True:
        attempt += 1
        started, t0 = _now(), time.monotonic()
        try:
            outcome = await executor.execute(run, spec)
        except Exception as exc:  # a run's failure must not end the sweep; its cause is recorded
            outcome = RunOutcome(error=f"{type(exc).__name__}: {exc}")
        result = RunResult(
            run=run,
            status="failed" if outcome.error else "ok",
            attempts=attempt,
            error=outcome.error,
            started_at=started,
            ended_at=_now(),
            duration_s=time.monotonic() - t0,
        )
        if result.status == "ok" or attempt > retries:
            out.save_run(result, outcome.records, outcome.extra_files)
            return result
