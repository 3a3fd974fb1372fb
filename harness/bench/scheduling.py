"""Measurement 6: what scheduling one run costs under Ray, beside the local executor's loop.

Both executors get the same planned runs and a run body that does nothing but return a run's worth of files
(:data:`PAYLOAD_BYTES`), so a run's wall time is its scheduling and writing cost alone. Locally that is the
orchestrator's loop and the atomic write of the run folder; under Ray it is also the task submission, the
placement on the node, the worker and the result's trip back through the object store. The Ray path is the
real :class:`~harness.run.ray_executor.RayExecutor` (a local one-node Ray the bench starts), only its task body
swapped for the no-op; runs go one at a time so the figure is per run, not hidden by parallelism.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.artifacts import ArtifactDir, RunNode
from harness.bench.results import SchedulingOverhead
from harness.bench.spread import spread
from harness.errors import BenchError
from harness.protocol.plan import Plan, Run, expand
from harness.protocol.spec import Spec, load_spec, spec_path
from harness.run.orchestrator import DockerExecutor, Executor, PreparedModel, RunOutcome, run_sweep

Progress = Callable[[str], None]
PAYLOAD_BYTES = 64 * 1024
"""About what a simulated TR110 run sends back: records, three logs."""
REPORT = "tr110"


def noop_run(settings: Any, token: str, run: Run, spec: Spec, node: RunNode) -> RunOutcome:
    """The task body of the measurement: a run that takes no time and returns :data:`PAYLOAD_BYTES` of files."""
    return RunOutcome(extra_files={"agent.stderr.log": b"x" * PAYLOAD_BYTES}, node=node)


class _LocalNoop:
    """The local loop's side of the comparison: the Executor protocol with a run that does nothing."""

    backend, time_scale, seed, parallel_runs, client = "sim", 1.0, 1, 1, None

    def reap_own_leftovers(self) -> list[str]:
        return []

    def image_ids(self) -> dict[str, str]:
        return {}

    def check(self, plan: Plan) -> None:
        return None

    async def prepare_model(self, spec: Spec) -> PreparedModel:
        raise BenchError("the no-op executor serves no model", hint="it only times the sweep loop")

    async def execute(self, run: Run, spec: Spec) -> RunOutcome:
        return RunOutcome(extra_files={"agent.stderr.log": b"x" * PAYLOAD_BYTES})


def _per_run(executor: Executor, spec: Spec, plan: Plan) -> list[float]:
    out = ArtifactDir(Path(tempfile.mkdtemp(prefix="cfk-bench-sched-")))
    marks: list[float] = []
    try:
        asyncio.run(run_sweep(out, spec, plan, executor, retries=0, progress=lambda *_: marks.append(time.monotonic())))
    finally:
        shutil.rmtree(out.root, ignore_errors=True)
    return [end - start for start, end in zip(marks[::2], marks[1::2], strict=True)]


def _ray_executor(plan: Plan) -> Any:
    import ray

    from harness.run.ray_executor import RayExecutor
    from harness.run.ray_node import Admission

    engine: Any = None  # the no-op body never reaches an engine
    docker = DockerExecutor(client=engine, harness_image="", kit_version="bench", seed=1, time_scale=1.0)
    executor = RayExecutor(docker=docker, task_body=noop_run)
    executor.check(plan)
    node = str(ray.get_runtime_context().get_node_id())
    executor.admitted[node], executor.capacity[node] = Admission(node, "bench", "0" * 64, None), 1.0
    return executor


def measure_scheduling(*, experiments_dir: Path, quick: bool, progress: Progress) -> SchedulingOverhead:
    """Per-run wall of the no-op run through the local loop and through Ray, over the same runs."""
    try:
        import ray
    except ImportError:
        raise BenchError("Ray is not installed", hint="./kit cluster (the optional cluster extra)") from None
    spec = load_spec(spec_path(experiments_dir, REPORT))
    plan = expand(spec, runs_per_config=1)
    plan = plan.model_copy(update={"runs": plan.runs[: 20 if quick else 60]})
    progress(f"scheduling: {len(plan.runs)} no-op runs through the local executor")
    noop: Executor = _LocalNoop()  # typed: mypy holds the fake to the protocol the sweep loop uses
    local = _per_run(noop, spec, plan)
    progress(f"scheduling: {len(plan.runs)} no-op runs through Ray (a local one-node Ray)")
    started = time.monotonic()
    try:
        executor = _ray_executor(plan)
        ray_start_s = time.monotonic() - started
        _per_run(executor, spec, plan.model_copy(update={"runs": plan.runs[:1]}))  # starts the node's worker
        under_ray = _per_run(executor, spec, plan)
    finally:
        ray.shutdown()
    return SchedulingOverhead(
        runs=len(plan.runs),
        payload_bytes=PAYLOAD_BYTES,
        local_per_run_s=spread(local),
        ray_per_run_s=spread(under_ray),
        ray_start_s=ray_start_s,
    )
