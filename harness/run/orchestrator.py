"""Drives a reproduction: plan → per run (servers up → agents → records → servers down) → artifacts.

Each run gets fresh servers and writes its folder as soon as it finishes, so an interrupted sweep loses no
completed run and a re-invocation resumes where it stopped (completed runs are skipped by run id). A failed run
is retried up to ``retries`` times and then recorded with its cause; the sweep goes on.

How a run's servers and agents are started is an :class:`Executor`; this module holds both: the local
simulator executor (in-process simulated Ollama servers, Python agents on this loop), which rehearses the whole
protocol without Docker, and the container executor (one compose stack per run, agents in a container).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from harness import __version__
from harness.agents.runner import SingleAgent, Timeouts, run_multi, run_single
from harness.agents.workflow import Workload
from harness.artifacts import (
    ArtifactDir,
    Attempt,
    ContainerStats,
    LostAttempt,
    ModelFacts,
    RunNode,
    RunResult,
    Sweep,
    SweepSettings,
    load_plan,
    load_sweep,
)
from harness.errors import BadInputError
from harness.evidence.telemetry import TELEMETRY_FILE, GpuSampler, Nvml, telemetry_json
from harness.facts import Absent
from harness.protocol.plan import PYTHON_RUNTIMES, Plan, Run
from harness.protocol.spec import Spec
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord, parse_record
from harness.run import sweep_identity
from harness.run.agent_line import agent_command, is_multi
from harness.run.model_prep import ModelPolicy, PreparedModel, prepare_model
from harness.settings import OllamaServerSettings, Settings
from harness.sim.config import SimConfig
from harness.sim.server import SimServer

if TYPE_CHECKING:  # the Docker SDK is imported only when a container executor is used
    from harness.containers.compose import ComposeProject, Topology
    from harness.containers.engine import Client
    from harness.containers.stack import Stack
    from harness.run.llamacpp import ServerPlan

AnyRecord = CallRecord | AgentRunRecord | MultiRunRecord


@dataclass
class RunOutcome:
    records: list[AnyRecord] = field(default_factory=list)
    error: str | None = None
    extra_files: dict[str, bytes] = field(default_factory=dict)
    containers: list[ContainerStats] = field(default_factory=list)
    node: RunNode | None = None
    """Where the run was made, when an executor spreads runs over machines."""
    lost_attempts: list[LostAttempt] = field(default_factory=list)
    log_tail: dict[str, list[str]] = field(default_factory=dict)
    """On failure: container → its last log lines (kept in the run's attempt history)."""


class Executor(Protocol):
    """Starts one run's servers and agents, returns its records; must leave nothing running behind."""

    @property
    def backend(self) -> str: ...

    @property
    def time_scale(self) -> float: ...

    @property
    def seed(self) -> int:
        """The simulator's seed (recorded in the sweep's identity; unused by real servers)."""
        ...

    @property
    def parallel_runs(self) -> int:
        """How many runs may be in flight at once (1 on one host; a cluster's admitted capacity)."""
        ...

    def reap_own_leftovers(self) -> list[str]:
        """Remove what a dead earlier controller of this sweep left behind; the names removed."""
        ...

    @property
    def client(self) -> Client | None:
        """The Docker engine the runs execute on (provenance describes it); None when nothing runs in a container."""
        ...

    def image_ids(self) -> dict[str, str]:
        """Role → image ID of every image the runs execute (empty when nothing runs in a container)."""
        ...

    def check(self, plan: Plan) -> None:
        """Every run of ``plan`` can be executed here; bad input (exit 2) before anything starts otherwise."""
        ...

    async def prepare_model(self, spec: Spec) -> PreparedModel:
        """Make sure the spec's model is on the backend's model store (pull once) and describe it."""
        ...

    async def execute(self, run: Run, spec: Spec) -> RunOutcome: ...


PULL_TIMEOUT_S = 3600.0
"""A first pull downloads gigabytes; the per-request timeout of the agents does not apply to it."""


@dataclass(frozen=True)
class LocalSimExecutor:
    """Fresh in-process simulated servers per run; dual topology time-slices one simulated GPU."""

    workload: Workload
    seed: int
    time_scale: float
    timeouts: Timeouts = field(default_factory=Timeouts)
    backend: str = "sim"
    model_policy: ModelPolicy = field(default_factory=ModelPolicy)
    sim_store: tuple[str, ...] | None = None
    """Models in the simulated store at preparation; None: the spec's model (as a prepared volume holds it)."""
    sim_registry_reachable: bool = True

    @property
    def client(self) -> None:
        return None

    @property
    def parallel_runs(self) -> int:
        return 1

    def reap_own_leftovers(self) -> list[str]:
        """In-process servers end with their run: nothing can be left behind."""
        return []

    def image_ids(self) -> dict[str, str]:
        return {}

    def check(self, plan: Plan) -> None:
        rust = sorted({r.runtime for r in plan.runs if r.runtime not in PYTHON_RUNTIMES})
        if rust:
            raise BadInputError(
                f"{plan.report} runs Rust agents ({', '.join(rust)}), which need the container executor",
                hint="reproduce a Python report (tr108, tr109, tr110) locally, or build the Rust agent image",
            )

    async def prepare_model(self, spec: Spec) -> PreparedModel:
        config = SimConfig(
            seed=self.seed,
            time_scale=self.time_scale,
            preload=(spec.model.name,) if self.sim_store is None else self.sim_store,
            registry_reachable=self.sim_registry_reachable,
            flash_attention=spec.server.flash_attention,
            context_length=spec.server.context_length,
            num_parallel=spec.server.num_parallel,
            keep_alive=spec.server.keep_alive,
        )
        async with SimServer(config) as sim:
            return await prepare_model(
                sim.base_url, spec.model.name, self.model_policy, server_log=sim.log.text, read_timeout_s=60.0
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
        return SimServer(
            SimConfig(
                seed=run_seed(self.seed, run.run_id),
                time_scale=self.time_scale,
                num_parallel=spec.server.num_parallel,
                keep_alive=spec.server.keep_alive,
                context_length=spec.server.context_length,
                flash_attention=spec.server.flash_attention,
                preload=(run.model,),
                shared_device=f"run-{run.run_id}" if len(spec.topology.ports) > 1 else None,
                device_dir=device_dir if len(spec.topology.ports) > 1 else None,
                gpu_id=spec.topology.gpus()[index],
            )
        )

    async def _agents(self, run: Run, spec: Spec, urls: list[str], outcome: RunOutcome) -> None:
        sink = outcome.records.append
        agent_spec = spec.agent
        if is_multi(run):
            a, b = run.agents
            multi = await run_multi(
                urls[a.server_index],
                urls[b.server_index],
                self.workload,
                run.scenario,  # type: ignore[arg-type]
                a.wire_options(),
                b.wire_options(),
                run_id=run.run_id,
                sink=sink,
                timeouts=self.timeouts,
            )
            outcome.error = multi.error
        else:
            cooldown = (agent_spec.cooldown_s if agent_spec else 0.0) * self.time_scale
            records = await run_single(
                urls[run.agents[0].server_index],
                self.workload,
                [SingleAgent(role=a.role, options=a.wire_options()) for a in run.agents],
                cooldown_s=cooldown,
                unload_between_runs=bool(agent_spec and agent_spec.unload_between_runs),
                run_id=run.run_id,
                sink=sink,
                timeouts=self.timeouts,
            )
            errors = [r.error for r in records if r.error]
            outcome.error = "; ".join(errors) or None


def server_settings(spec: Spec) -> OllamaServerSettings:
    """The ``OLLAMA_*`` knobs a spec pins for its servers."""
    return OllamaServerSettings(
        num_parallel=spec.server.num_parallel,
        keep_alive=spec.server.keep_alive,
        context_length=spec.server.context_length,
        flash_attention=spec.server.flash_attention,
        gpus=tuple(spec.topology.gpus()),
    )


def run_seed(seed: int, run_id: str) -> int:
    """The simulator seed of one run: stable for the run, different between runs, whichever executor runs it."""
    return int(hashlib.sha256(f"{seed}:{run_id}".encode()).hexdigest()[:8], 16)


AGENT_TIMEOUT_REQUESTS = 4
"""An agent container's whole run may last this many request timeouts before it is stopped: a run makes several
calls, and a stuck call is ended by its own request timeout first, so only a hung agent process reaches this."""


@dataclass(frozen=True)
class DockerExecutor:
    """One fresh compose project per run (servers + agent container), torn down whatever happens.

    ``backend="ollama"`` runs the real server image with the GPU reservation of the compose file; ``"sim"``
    swaps only the server image and command (compose/sim*.override.yml) and drops the reservation. The agents
    reach the servers by service name on the project network.
    """

    client: Client
    harness_image: str
    kit_version: str
    seed: int
    time_scale: float
    ready_timeout_s: float = 120.0
    agent_timeout_s: float = 3600.0
    backend: str = "sim"
    rust_image: str = ""
    ollama_image: str = ""
    llamacpp_image: str = ""
    model_file: Path | None = None
    """llamacpp: the GGUF file every server mounts read-only; ``model_sha256`` is its digest."""
    model_sha256: str = ""
    engine_device: str = "cpu"
    """llamacpp: ``cpu``, or ``cuda`` (the CUDA image, the compose file's GPU reservation, layers offloaded)."""
    engine_build: Mapping[str, object] | None = None
    """llamacpp: how the server binary was built (sdist hash, llama.cpp commit, CMake flags): ``engine.json``."""
    read_timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    call_deadline_s: float = 1800.0
    compose_dir: Path | None = None
    """Where the compose files are read from (a bundle's own); None: the kit's ``compose/``."""
    model_policy: ModelPolicy = field(default_factory=ModelPolicy)
    stack_prefix: str = ""
    """Put before every run's project name, so a cluster executor can find the stacks of one sweep or node."""
    sweep: str | None = None
    """Key of the artifact folder the stacks run for: labelled on each, so a resume can reap its own leftovers."""
    _live: list[Stack] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_settings(
        cls,
        client: Client,
        settings: Settings,
        *,
        backend: str,
        harness_image: str = "",
        rust_image: str = "",
        ollama_image: str = "",
        compose_dir: Path | None = None,
    ) -> DockerExecutor:
        """The one way the kit builds a container executor: seed and timeouts from ``settings``; the time scale
        only applies to the simulator (the real server runs at its own speed)."""
        return cls(
            client=client,
            harness_image=harness_image,
            rust_image=rust_image,
            ollama_image=ollama_image,
            kit_version=__version__,
            seed=settings.sim_seed,
            time_scale=settings.time_scale if backend == "sim" else 1.0,
            agent_timeout_s=settings.call_deadline_s * AGENT_TIMEOUT_REQUESTS,
            read_timeout_s=settings.read_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            call_deadline_s=settings.call_deadline_s,
            backend=backend,
            compose_dir=compose_dir,
        )

    def check(self, plan: Plan) -> None:
        """Every run can be executed by this executor: the real backend needs its server image."""
        self.require_server_image()

    def require_server_image(self) -> None:
        if self.backend == "llamacpp" and not (self.llamacpp_image and self.model_file and self.model_sha256):
            raise BadInputError(
                "the llama.cpp backend needs its server image and a model file",
                hint="run `invoke build`, and pass --model-file PATH.gguf or run `invoke model.tiny`",
            )
        if self.backend == "ollama" and not self.ollama_image:
            raise BadInputError(
                "the Ollama backend needs the kit's Ollama image, which is built from ollama/ollama and so needs "
                "a registry (or an image loaded from a bundle)",
                hint="run `invoke images.lock` and `invoke build` on a host with registry access, or use --backend sim",
            )

    @property
    def parallel_runs(self) -> int:
        return 1

    def reap_own_leftovers(self) -> list[str]:
        """Remove what a dead earlier controller of this sweep's folder left on the engine; returns the names."""
        from harness.containers import leftovers

        return leftovers.reap_sweep(self.client, self.sweep) if self.sweep else []

    def image_ids(self) -> dict[str, str]:
        from harness.containers import engine

        refs = {
            "harness": self.harness_image,
            "rust-agent": self.rust_image,
            "ollama": self.ollama_image,
            "llamacpp": self.llamacpp_image,
        }
        return {role: engine.image_id(self.client, ref) for role, ref in refs.items() if ref}

    def project(
        self,
        server: OllamaServerSettings,
        *,
        topology: Topology,
        model: str,
        sim_seed: int,
        device_group: str,
        ports: Mapping[str, str] | None = None,
        engine_vars: Mapping[str, str] | None = None,
    ) -> ComposeProject:
        """The compose project of one stack: these server settings, this executor's images and backend."""
        from harness.containers import compose

        variables = compose.stack_variables(
            server,
            harness_image=self.harness_image,
            ollama_image=self.ollama_image or None,
        ) | {
            "SIM_SEED": str(sim_seed),
            "SIM_TIME_SCALE": repr(self.time_scale),
            "SIM_DEVICE_GROUP": device_group,
            "OLLAMA_MODEL": model,
            **(ports or {}),
            **(engine_vars or {}),
        }
        files = compose.compose_files(
            topology,
            "sim" if self.backend == "sim" else "llamacpp" if self.backend == "llamacpp" else "ollama",
            self.compose_dir or compose.COMPOSE_DIR,
        )
        gpu = self.backend == "ollama" or (self.backend == "llamacpp" and self.engine_device == "cuda")
        return compose.load_compose(files, variables, gpu=gpu)

    async def prepare_model(self, spec: Spec) -> PreparedModel:
        """Pull the model into the shared model volume once, through a single-server stack of this backend."""
        try:
            return await asyncio.to_thread(self._prepare_model, spec)
        except asyncio.CancelledError:
            self._down_live()
            raise

    def _llamacpp(self, spec: Spec, run: Run | None) -> ServerPlan | None:
        from harness.containers import model_volume
        from harness.run import llamacpp

        if self.backend != "llamacpp" or self.model_file is None:
            return None
        # the weights reach the servers through a volume (the container policy refuses host bind mounts)
        model_volume.ensure_gguf_volume(
            self.client,
            self.model_file,
            self.model_sha256,
            image=self.llamacpp_image,
            kit_version=self.kit_version,
        )
        return llamacpp.server_plan(
            spec,
            run,
            model_file=self.model_file,
            model_sha256=self.model_sha256,
            seed=self.seed,
            device=self.engine_device,
        )

    def _prepare_model(self, spec: Spec) -> PreparedModel:
        from harness.containers import stack

        engine_plan = self._llamacpp(spec, None)
        project = self.project(
            server_settings(spec),
            topology="single",
            model=spec.model.name,
            sim_seed=self.seed,
            device_group="prep",
            engine_vars=engine_plan.variables(self.llamacpp_image) if engine_plan else None,
        )
        started = time.monotonic()
        with stack.Stack(
            project,
            client=self.client,
            run_id="model-prep",
            kit_version=self.kit_version,
            ready_timeout_s=self.ready_timeout_s,
            handle_signals=False,
            sweep=self.sweep,
            writable_models=True,
        ) as live:
            self._live.append(live)
            try:
                if engine_plan is not None:
                    return asyncio.run(self._describe_llamacpp(live.url("ollama"), spec, time.monotonic() - started))
                return asyncio.run(
                    prepare_model(
                        live.url("ollama"),
                        spec.model.name,
                        self.model_policy,
                        server_log=lambda: live.logs("ollama"),
                        read_timeout_s=PULL_TIMEOUT_S,
                    )
                )
            finally:
                self._live.remove(live)

    async def _describe_llamacpp(self, base_url: str, spec: Spec, load_s: float) -> PreparedModel:
        from harness.run import llamacpp

        assert self.model_file is not None
        facts, server = await llamacpp.describe_server(
            base_url, spec.model.name, self.model_sha256, self.model_file.stat().st_size, load_s
        )
        return PreparedModel(facts, server)

    async def execute(self, run: Run, spec: Spec) -> RunOutcome:
        try:
            return await asyncio.to_thread(self._execute, run, spec)
        except asyncio.CancelledError:
            self._down_live()
            raise

    def _down_live(self) -> None:
        # Interrupted (Ctrl-C, SIGTERM): remove the stack now; the worker thread then sees its containers gone
        # and leaves its `with` block, whose own teardown finds nothing left to do.
        for live in list(self._live):
            with contextlib.suppress(Exception):
                live.down()

    def _execute(self, run: Run, spec: Spec) -> RunOutcome:
        from harness.containers import engine, stack

        engine_plan = self._llamacpp(spec, run)
        project = self.project(
            server_settings(spec),
            topology=spec.topology.ollama,
            model=run.model,
            sim_seed=run_seed(self.seed, run.run_id),
            device_group=f"run-{run.run_id}",
            engine_vars=engine_plan.variables(self.llamacpp_image) if engine_plan else None,
        )
        services = ["ollama", "ollama2"][: len(spec.topology.ports)]
        urls = [f"http://{name}:11434" for name in services]
        outcome = RunOutcome()
        if engine_plan is not None:
            outcome.extra_files["llamacpp.json"] = engine_plan.to_json()
        up_started = time.monotonic()
        with stack.Stack(
            project,
            client=self.client,
            run_id=run.run_id,
            kit_version=self.kit_version,
            ready_timeout_s=self.ready_timeout_s,
            handle_signals=False,
            name=f"{self.stack_prefix}{engine.project_name(run.run_id)}" if self.stack_prefix else None,
            sweep=self.sweep,
        ) as live:
            self._live.append(live)
            if engine_plan is not None:
                # load time on this engine: stack start to every server's /health answering 200
                stack_ready_s = time.monotonic() - up_started
                outcome.extra_files["llamacpp.json"] = engine_plan.to_json(stack_ready_s=stack_ready_s)
            rust = run.language == "rust"
            result = live.run_container(
                agent_command(
                    run,
                    spec,
                    urls,
                    self.time_scale,
                    timeouts=Timeouts(self.read_timeout_s, self.connect_timeout_s, self.call_deadline_s),
                    engine="llamacpp" if engine_plan is not None else "ollama",
                    max_tokens=engine_plan.max_tokens if engine_plan is not None else None,
                ),
                image=self.rust_image if rust else None,
                name=f"agent-{run.runtime}",
                timeout_s=self.agent_timeout_s,
            )
            for service in services:
                outcome.extra_files[f"{service}.log"] = live.logs(service).encode("utf-8", "replace")
            self._live.remove(live)
        outcome.extra_files["agent.stderr.log"] = result.stderr.encode("utf-8", "replace")
        for n, line in enumerate(result.stdout.splitlines(), 1):
            if line.strip():
                outcome.records.append(parse_record(line, where=f"agent stdout line {n}"))
        outcome.containers.append(
            ContainerStats(name="agent", memory_peak_bytes=result.memory_peak_bytes, exit_code=result.exit_code)
        )
        if result.timed_out:
            outcome.error = f"agent container timed out after {self.agent_timeout_s:.0f} s"
        elif result.exit_code != 0:
            failed = [r.error for r in outcome.records if getattr(r, "error", None)]
            outcome.error = "; ".join(str(f) for f in failed) or agent_exit_cause(
                result.exit_code, result.stderr, oom_killed=result.oom_killed
            )
        if outcome.error:
            outcome.log_tail = {"agent": tail_lines(result.stderr)} | {
                service: tail_lines(outcome.extra_files[f"{service}.log"].decode("utf-8", "replace"))
                for service in services
            }
        return outcome


LOG_TAIL_LINES = 20


def tail_lines(text: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last non-empty lines of a log, for a failed attempt's record."""
    return [line for line in text.splitlines() if line.strip()][-lines:]


def agent_exit_cause(exit_code: int | None, stderr: str, *, oom_killed: bool) -> str:
    """Why an agent container ended badly, in words, even when it wrote nothing (a kill leaves no stderr)."""
    last = tail_lines(stderr, 3)
    said = f": {' | '.join(last)[-300:]}" if last else " and wrote nothing on stderr"
    if oom_killed:
        return f"agent container was killed by the kernel for exceeding its memory limit (exit {exit_code}){said}"
    if exit_code is not None and exit_code > 128:
        try:
            name = signal.Signals(exit_code - 128).name
        except ValueError:
            name = f"signal {exit_code - 128}"
        return f"agent container was killed by {name} (exit {exit_code}, from outside the kit){said}"
    return f"agent container exited {exit_code}{said}"


def _request_lines(server: SimServer, index: int) -> bytes:
    return b"".join(
        (json.dumps({"server": index, **r.to_json()}, sort_keys=True) + "\n").encode() for r in server.requests
    )


ProgressHook = Callable[[int, int, Run, RunResult | None], None]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def prepare(
    out: ArtifactDir,
    spec: Spec,
    spec_bytes: bytes,
    plan: Plan,
    executor: Executor,
    command: list[str],
    model: Callable[[], ModelFacts] | None = None,
    *,
    settings: SweepSettings | None = None,
    extend: bool = False,
) -> Sweep:
    """Write sweep.json, spec.toml and plan.json, or check that an existing sweep is the same one (resume).

    ``model`` prepares the model (a pull) and is called only once the folder is known to be usable, so bad
    input costs no download; a resumed sweep must find the same settings (harness.run.sweep_identity) and the
    same model digest it started with. ``extend`` lets a resume grow the sweep, recorded in sweep.json.
    """
    spec_sha = hashlib.sha256(spec_bytes).hexdigest()
    images = executor.image_ids()
    settings = settings or sweep_identity.settings_of(
        executor="local" if not images else "docker",
        backend=executor.backend,
        sim_seed=executor.seed,
        interleave_seed=None,
        plan=plan,
        include_isolated=any(r.kind == "isolated" for r in plan.runs),
    )
    requested = sweep_identity.Requested(
        report=spec.id,
        spec_sha256=spec_sha,
        backend=executor.backend,
        time_scale=executor.time_scale,
        images=images,
        settings=settings,
    )
    if (out.root / "sweep.json").exists():
        before = load_sweep(out.root)
        recorded_plan = load_plan(out.root) if (out.root / "plan.json").exists() else None
        sweep, grown = sweep_identity.resume(
            str(out.root), before, recorded_plan, requested, plan, extend=extend, command=command
        )
        facts = model() if model else None
        if facts is not None and sweep.model is not None and facts.digest != sweep.model.digest:
            raise BadInputError(
                f"{out.root} was started with {sweep.model.name} {sweep.model.digest[:19]}…, the server now holds "
                f"{facts.digest[:19]}…: resuming would mix two models in one sweep",
                hint="pass a new --out folder",
            )
        if grown:
            out.write_plan(plan)
            out.write_json("sweep.json", sweep)
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
        images=images,
        model=model() if model else None,
        settings=settings,
    )
    out.root.mkdir(parents=True, exist_ok=True)
    (out.root / "spec.toml").write_bytes(spec_bytes)
    out.write_plan(plan)
    out.write_json("sweep.json", sweep)  # last: a folder without it is one a crash stopped before it began
    return sweep


async def run_sweep(
    out: ArtifactDir,
    spec: Spec,
    plan: Plan,
    executor: Executor,
    *,
    retries: int = 1,
    progress: ProgressHook | None = None,
    nvml: Nvml | Absent | None = None,
) -> list[RunResult]:
    """Every planned run not yet completed, in plan order; each written as soon as it ends.

    With ``nvml`` every run also gets ``telemetry.json``: the GPU sampled across the run (or, with no NVML,
    the reason there is no trace).
    """
    done = out.completed_run_ids()
    results: list[RunResult] = []
    todo = [r for r in plan.runs if r.run_id not in done]
    # A cluster executor runs several runs at once; this loop stays the only writer of the folder either way.
    slots = asyncio.Semaphore(max(1, executor.parallel_runs))

    async def one(run: Run) -> None:
        async with slots:
            if progress:
                progress(len(results), len(todo), run, None)
            result = await _one(out, spec, run, executor, retries, nvml)
            results.append(result)
            if progress:
                progress(len(results), len(todo), run, result)

    await asyncio.gather(*(one(run) for run in todo))
    return results


async def _one(
    out: ArtifactDir, spec: Spec, run: Run, executor: Executor, retries: int, nvml: Nvml | Absent | None
) -> RunResult:
    attempt = 0
    history: list[Attempt] = []
    while True:
        attempt += 1
        started, t0 = _now(), time.monotonic()
        sampler = GpuSampler(nvml) if nvml is not None else None
        try:
            if sampler is not None:
                sampler.start()
            outcome = await executor.execute(run, spec)
        except Exception as exc:  # a run's failure must not end the sweep; its cause is recorded
            outcome = RunOutcome(error=f"{type(exc).__name__}: {exc}")
        finally:
            trace = sampler.stop() if sampler is not None else None
        if trace is not None:
            outcome.extra_files[TELEMETRY_FILE] = telemetry_json(trace)
        ended = _now()
        history.append(
            Attempt(
                number=attempt,
                started_at=started,
                ended_at=ended,
                outcome="failed" if outcome.error else "ok",
                cause=outcome.error,
                log_tail=outcome.log_tail if outcome.error else {},
            )
        )
        result = RunResult(
            run=run,
            status="failed" if outcome.error else "ok",
            attempts=attempt,
            error=outcome.error,
            started_at=started,
            ended_at=ended,
            duration_s=time.monotonic() - t0,
            containers=outcome.containers,
            node=outcome.node,
            lost_attempts=outcome.lost_attempts,
            attempt_history=history,
        )
        if result.status == "ok" or attempt > retries:
            out.save_run(result, outcome.records, outcome.extra_files)
            return result
