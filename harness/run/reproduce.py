"""The reproduction pipeline: executor and images → folder and model → provenance → sweep → report → manifest.

One function, :func:`reproduce`, serves both ``reproduce --report trNNN`` (a spec from ``experiments/``) and
``reproduce --bundle FILE`` (the bundled plan, spec and compose files with the bundle's exact images). The CLI
parses, builds Settings once and prints; everything between lives here, so a test or another front end runs the
same pipeline. Lines for a person go to ``progress``; per-run progress (a bar, in the CLI) to ``on_run``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shlex
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness import __version__
from harness.analysis.report import build_report
from harness.artifacts import ArtifactDir, ModelFacts, SweepSettings
from harness.atomic import write_text_atomic
from harness.containers.compose import COMPOSE_DIR
from harness.errors import BadInputError
from harness.evidence.manifest import write_manifest
from harness.evidence.provenance import collect, record_provenance
from harness.evidence.telemetry import Nvml, nvml_session
from harness.facts import Absent, absent
from harness.progress import Progress
from harness.protocol.plan import Plan, expand
from harness.protocol.spec import Config, Spec, load_spec, spec_path
from harness.run import bundle_compose, eta
from harness.run.destination import check_destination
from harness.run.model_prep import ModelRequest
from harness.run.orchestrator import (
    DockerExecutor,
    Executor,
    LocalSimExecutor,
    PreparedModel,
    ProgressHook,
    prepare,
    run_sweep,
    server_settings,
)
from harness.run.ray_executor import RayExecutor
from harness.run.sweep_guard import guarded, sigterm_as_interrupt
from harness.run.sweep_identity import settings_of
from harness.settings import Settings

if TYPE_CHECKING:
    from harness.containers.engine import Client

KIT_ROOT = Path(__file__).resolve().parents[2]
"""The kit's own tree (the repository, or site-packages when installed): no sweep writes into it."""

ExecutorKind = Literal["docker", "local", "ray"]
SIMULATED_NOTE = "SIMULATED: a rehearsal of the protocol against the simulated Ollama, not a measurement."
LLAMACPP_NOTE = (
    "llama.cpp: real tokens and engine timings, on this host's {where}; absolute figures are not comparable with "
    "the reports' Ollama numbers."
)


@dataclass(frozen=True)
class SpecRequest:
    """``reproduce --report trNNN``: which spec, which runs of its plan, where to write."""

    report: str
    executor: ExecutorKind = "docker"
    across_hosts: bool = False
    """Ray only: admit nodes of different environments and report the spread between hosts."""
    runs: int | None = None
    configs: str | None = None
    """A regular expression over config ids (``re.search``); None: every config."""
    include_isolated: bool = True
    interleave_seed: int | None = None
    out: Path | None = None
    command: tuple[str, ...] = ()
    """The command line as typed (recorded in sweep.json, provenance and the manifest)."""
    model: ModelRequest = dataclasses.field(default_factory=ModelRequest)
    extend: bool = False
    """Grow the sweep already in ``out`` (more repetitions or configs) instead of refusing the difference."""


@dataclass(frozen=True)
class BundleRequest:
    """``reproduce --bundle FILE``: re-run a bundle's plan as it was made."""

    bundle: Path
    executor: ExecutorKind = "docker"
    out: Path | None = None
    command: tuple[str, ...] = ()
    model: ModelRequest = dataclasses.field(default_factory=ModelRequest)
    accept_compose: bool = False
    """Run the bundle's compose files even where they differ from this kit's (after the difference is shown)."""


Request = SpecRequest | BundleRequest


@dataclass(frozen=True)
class Outcome:
    """What a reproduction left: the folder, its report and manifest, and how the runs went."""

    out_dir: Path
    report_markdown: Path
    manifest: Path
    planned_runs: int
    completed_runs: int
    runs_this_time: int
    failures: int
    """Runs that failed in this invocation (after their retries)."""


def reproduce(
    request: Request, settings: Settings, progress: Progress, *, on_run: ProgressHook | None = None
) -> Outcome:
    """Run a reproduction end to end; bad input raises before anything is built, pulled or written.

    SIGTERM is raised like Ctrl-C throughout (model preparation included), so every stack is torn down.
    """
    with sigterm_as_interrupt():
        if isinstance(request, BundleRequest):
            return _from_bundle(request, settings, progress, on_run)
        return _from_spec(request, settings, progress, on_run)


def destination(given: Path | None, settings: Settings, default: Path) -> Path:
    """``--out`` (or the default under HARNESS_ARTIFACTS_DIR) checked before anything runs or is written."""
    if given is None:
        check_destination(
            settings.artifacts_dir,
            what="HARNESS_ARTIFACTS_DIR",
            kit_root=KIT_ROOT,
            artifacts_dir=settings.artifacts_dir,
            parent_only=True,
        )
    return check_destination(
        given if given is not None else default,
        what="--out" if given is not None else "HARNESS_ARTIFACTS_DIR",
        kit_root=KIT_ROOT,
        artifacts_dir=settings.artifacts_dir,
    )


# ----------------------------------------------------------------------------------------------- executors


def docker_executor(settings: Settings, progress: Progress) -> DockerExecutor:
    """The container executor: Ollama when asked or when Docker sees an NVIDIA GPU (auto), else the simulator.

    The real backend is checked before anything is built or pulled: a GPU visible to Docker and a way to get
    the Ollama image (a registry, or the image already loaded).
    """
    from harness.containers import engine, images, pins

    client = engine.connect()
    backend = settings.backend
    if backend == "auto":
        backend = "ollama" if engine.gpu_visible(client) else "sim"
        if backend == "sim":
            progress("No NVIDIA GPU visible to Docker: using the simulated backend.")
    model_file: Path | None = None
    model_sha256 = ""
    device = "cpu"
    if backend == "llamacpp":
        from harness.digests import sha256_file
        from harness.run import llamacpp

        if settings.time_scale != 1.0:
            raise BadInputError("--time-scale applies to the simulator only", hint="drop it, or use --backend sim")
        if settings.model_file is not None:
            model_file = llamacpp.check_model_file(settings.model_file)
        else:
            model_file = llamacpp.ensure_tiny_model(progress=progress)
            progress(f"no --model-file: serving the kit's tiny test model {model_file} (random weights)")
        model_sha256 = sha256_file(model_file)
        device = llamacpp_device(settings.llamacpp_device, gpu=engine.gpu_visible(client), progress=progress)
        if device == "cuda":
            _require_cuda_path(client)
    elif settings.model_file is not None:
        raise BadInputError(
            "--model-file applies to --backend llamacpp only", hint="drop it, or add --backend llamacpp"
        )
    if backend == "ollama":
        if settings.time_scale != 1.0:
            raise BadInputError("--time-scale applies to the simulator only", hint="drop it, or use --backend sim")
        if not engine.gpu_visible(client):  # asking for what this host cannot do is bad input: exit 2
            raise BadInputError("no NVIDIA GPU visible to Docker", hint=engine.GPU_HINT)
        reason = images.ollama_unavailable(client, pins.load_pins())
        if reason:
            raise BadInputError(
                f"the Ollama backend needs the kit's Ollama image, built from ollama/ollama: {reason}",
                hint="run `invoke images.lock` and `invoke build` where a registry answers, load a bundle's images, "
                "or rehearse with --backend sim",
            )
    return dataclasses.replace(
        DockerExecutor.from_settings(client, settings, backend=backend),
        model_file=model_file,
        model_sha256=model_sha256,
        engine_device=device,
    )


def llamacpp_device(asked: str, *, gpu: bool, progress: Progress) -> str:
    """Where the llama.cpp servers compute: ``cuda`` when asked or (auto) when Docker sees an NVIDIA GPU.

    Asking for CUDA without a GPU is bad input; a GPU host that asks for ``cpu`` gets it, said out loud.
    """
    from harness.containers import engine

    if asked == "cuda" and not gpu:
        raise BadInputError("--llamacpp-device cuda: no NVIDIA GPU visible to Docker", hint=engine.GPU_HINT)
    device = ("cuda" if gpu else "cpu") if asked == "auto" else asked
    if device == "cpu" and gpu:
        progress("llama.cpp on CPU although Docker sees an NVIDIA GPU (--llamacpp-device cpu)")
    elif device == "cpu":
        progress("llama.cpp on CPU: no NVIDIA GPU visible to Docker")
    return device


def with_images(executor: DockerExecutor, progress: Progress, *, rust: bool) -> DockerExecutor:
    """Build (or find) the images the plan needs and point the executor at them by content-hashed tag."""
    from harness.containers import images

    report = images.build_all(
        executor.client,
        kit_version=__version__,
        python_exe=sys.executable,
        rust=rust,
        ollama=executor.backend == "ollama",
        progress=progress,
    )
    built = {i.name: i.tag for i in report.images}
    if not built.get("harness") or (rust and not built.get("rust-agent")):
        raise BadInputError("the agent images could not be built", hint="see the build output above")
    llamacpp_image = ""
    engine_build = None
    if executor.backend == "llamacpp" and executor.engine_device == "cuda":
        llamacpp_image, engine_build = _cuda_server_image(executor, report.base.tag, report.base.image_id, progress)
    elif executor.backend == "llamacpp":
        from harness.containers.llamacpp_image import build_llamacpp_image

        result, server = build_llamacpp_image(
            executor.client, base_tag=report.base.tag, kit_version=__version__, progress=progress
        )
        llamacpp_image = result.tag or ""
        engine_build = {**server.facts(), "image": llamacpp_image, "image_id": result.image_id}
    return dataclasses.replace(
        executor,
        harness_image=built["harness"] or "",
        rust_image=built.get("rust-agent") or "",
        ollama_image=(built.get("ollama") or "") if executor.backend == "ollama" else "",
        llamacpp_image=llamacpp_image,
        engine_build=engine_build,
    )


def _require_cuda_path(client: Client) -> None:
    """Before anything is built: the CUDA image is here, or a registry can give its NVIDIA bases."""
    from harness.containers.llamacpp_image import cuda_images_unreachable

    reason = cuda_images_unreachable(client)
    if reason:
        raise BadInputError(f"the llama.cpp CUDA image cannot be made here: {reason}", hint=CUDA_HINT)


CUDA_HINT = (
    "build it where a registry answers (`invoke images.lock`, then reproduce there), load a bundle that carries "
    "it, or pass --llamacpp-device cpu"
)


def _cuda_server_image(
    executor: DockerExecutor, base_tag: str, base_id: str, progress: Progress
) -> tuple[str, dict[str, object]]:
    """The llama.cpp CUDA image (registry path) and its facts; bad input when this host cannot make it."""
    from harness.containers import llamacpp_image as images

    plan = images.plan_cuda_image(base_tag=base_tag, base_id=base_id, kit_version=__version__)
    reason = images.cuda_image_unavailable(executor.client, plan)
    if reason:
        raise BadInputError(
            f"the llama.cpp CUDA image {plan.tag} is not here and cannot be built: {reason}", hint=CUDA_HINT
        )
    result, facts = images.build_llamacpp_cuda_image(executor.client, plan, progress=progress)
    return result.tag or plan.tag, facts


def local_executor(spec: Spec, settings: Settings) -> LocalSimExecutor:
    """In-process simulated servers and Python agents on the prompts and corpus of ``settings.experiments_dir``."""
    from harness.agents.runner import Timeouts
    from harness.agents.workflow import Workload

    return LocalSimExecutor(
        workload=Workload.load(
            model=spec.model.name,
            workflow=spec.agent.workflow if spec.agent else "single_call",
            streaming=spec.agent.streaming if spec.agent else True,
            prompts_dir=settings.experiments_dir / "prompts",
            corpus_dir=settings.experiments_dir / "corpus",
        ),
        seed=settings.sim_seed,
        time_scale=settings.time_scale,
        timeouts=Timeouts(settings.read_timeout_s, settings.connect_timeout_s, settings.call_deadline_s),
        sim_store=() if settings.sim_store == "empty" else None,
        sim_registry_reachable=settings.sim_registry == "reachable",
    )


REHEARSAL_TIME_SCALE = 0.01
"""The simulator's pace when the user names none: a full report's rehearsal in minutes, not hours. At this pace
the fresh stack of each run, not the simulated calls, is most of a run's time (run/eta.py)."""


def rehearsal_pace(settings: Settings, progress: Progress) -> Settings:
    """The simulator runs at the time scale the user gave (flag or HARNESS_TIME_SCALE), else at the rehearsal
    pace, said out loud: a rehearsal at real-time pace takes hours and measures nothing more."""
    if "time_scale" in settings.model_fields_set:
        return settings
    progress(
        f"time scale {REHEARSAL_TIME_SCALE:g}: the rehearsal pace, {1 / REHEARSAL_TIME_SCALE:g}× faster than real "
        "time (--time-scale 1 for real-time pace)"
    )
    return settings.model_copy(update={"time_scale": REHEARSAL_TIME_SCALE})


def planned(
    plan: Plan, spec: Spec, *, executor: str, backend: str, time_scale: float, out: Path, progress: Progress
) -> eta.Estimate:
    """Say what is about to run before anything is built or run: the runs by kind, the pace, the ETA, the folder."""
    done = frozenset(ArtifactDir(out).completed_run_ids()) if (out / "sweep.json").is_file() else frozenset()
    kinds = Counter(r.kind for r in plan.runs)
    est = eta.estimate(plan, spec, executor=executor, time_scale=time_scale, skip=done)
    progress(
        f"plan: {spec.id.upper()} {spec.version}, {len(plan.runs)} runs ({kinds['protocol']} protocol, "
        f"{kinds['isolated']} isolated, {kinds['diagnostic']} diagnostic) on the {backend} backend, "
        f"{executor} executor, time scale {time_scale:g}"
    )
    where = f"resuming {out}: {len(done)} of {len(plan.runs)} runs already complete" if done else f"new folder {out}"
    progress(f"output: {where}")
    progress(f"ETA about {eta.clock(est.total_s)} for the runs ({est.basis}), plus image builds on first use")
    return est


def select_configs(configs: Sequence[Config], pattern: str | None) -> set[str] | None:
    """Config ids matching ``pattern`` (``re.search``); None for every config. No match is bad input."""
    if pattern is None:
        return None
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise BadInputError(f"--configs: invalid regular expression {pattern!r}: {exc}") from None
    ids = {c.id for c in configs if regex.search(c.id)}
    if not ids:
        raise BadInputError(f"--configs {pattern!r} matches no config", hint="list them with `harness plan`")
    return ids


# ----------------------------------------------------------------------------------------------- spec


def _from_spec(request: SpecRequest, settings: Settings, progress: Progress, on_run: ProgressHook | None) -> Outcome:
    path = spec_path(settings.experiments_dir, request.report)
    spec = load_spec(path)
    spec.server.require_reasons(str(path))
    plan = expand(
        spec,
        runs_per_config=request.runs,
        config_ids=select_configs(spec.configs, request.configs),
        include_isolated=request.include_isolated,
        interleave_seed=request.interleave_seed,
    )
    if request.across_hosts and request.executor != "ray":
        raise BadInputError("--across-hosts needs --executor ray", hint="add --executor ray, or drop --across-hosts")
    guess = "sim" if request.executor == "local" or settings.backend == "auto" else settings.backend
    out_root = destination(request.out, settings, settings.artifacts_dir / f"{spec.id}-{guess}")
    docker: DockerExecutor | None = None
    if request.executor in ("docker", "ray"):
        docker = docker_executor(settings, progress)
    elif settings.backend == "ollama":
        raise BadInputError("the local executor only runs the simulator", hint="use --executor docker")
    if docker is None or docker.backend == "sim":
        progress(SIMULATED_NOTE)
        settings = rehearsal_pace(settings, progress)
        if docker is not None:
            docker = replace(docker, time_scale=settings.time_scale)
    elif docker.backend == "llamacpp":
        progress(LLAMACPP_NOTE.format(where="GPU" if docker.engine_device == "cuda" else "CPU"))
    planned(
        plan,
        spec,
        executor="local" if docker is None else "docker",
        backend="sim" if docker is None else docker.backend,
        time_scale=settings.time_scale if docker is None or docker.backend == "sim" else 1.0,
        out=out_root,
        progress=progress,
    )
    policy = request.model.policy(spec, settings)
    executor: Executor
    if docker is None:
        executor = replace(local_executor(spec, settings), model_policy=policy)
    else:
        progress("checking the kit's images (built on first use; offline when no registry answers)")
        built = replace(
            with_images(docker, progress, rust=any(r.language == "rust" for r in plan.runs)), model_policy=policy
        )
        executor = RayExecutor(docker=built, across_hosts=request.across_hosts) if request.executor == "ray" else built
    executor.check(plan)
    if request.out is None and guess != executor.backend:  # auto found a GPU: the default folder follows it
        out_root = destination(None, settings, settings.artifacts_dir / f"{spec.id}-{executor.backend}")
    identity = settings_of(
        executor=request.executor,
        backend=executor.backend,
        sim_seed=settings.sim_seed,
        interleave_seed=request.interleave_seed,
        plan=plan,
        include_isolated=request.include_isolated,
    )
    return _run_and_record(
        SweepJob(
            ArtifactDir(out_root),
            spec,
            path,
            plan,
            executor,
            settings,
            progress,
            on_run,
            list(request.command),
            identity=identity,
            extend=request.extend,
        )
    )


# ----------------------------------------------------------------------------------------------- bundle


def _from_bundle(
    request: BundleRequest, settings: Settings, progress: Progress, on_run: ProgressHook | None
) -> Outcome:
    """The bundle is verified in full before anything is loaded or written; its images are loaded only when the
    engine lacks them (an image ID is a content hash), checked by ID, and their tags given back."""
    from harness.containers import engine, images
    from harness.evidence import bundle

    if request.out is not None:  # a bad --out costs no bundle read
        destination(request.out, settings, request.out)
    verified = bundle.verify_bundle(request.bundle)
    index, ids = verified.index, verified.image_ids
    progress(f"bundle {request.bundle} verified: {len(index.members)} files, sha256 {verified.sha256}")
    if request.executor == "local" and ids:
        raise BadInputError("this bundle holds images: it re-runs in containers", hint="drop --executor local")
    client = None
    if ids:
        client = engine.connect()
        if index.backend == "ollama" and not engine.gpu_visible(client):
            raise BadInputError(
                "this bundle was made with the real Ollama backend: re-running it needs an NVIDIA GPU visible to "
                "Docker, and there is none here",
                hint="run it on an NVIDIA host with the NVIDIA Container Toolkit",
            )
    else:
        progress("this bundle holds no images (made in-process): re-running in-process with this kit's agents")
    if index.kit_version != __version__:
        progress(f"bundle made by kit {index.kit_version}, re-run by kit {__version__} (the images are exact)")
    recorded = verified.statement.predicate.settings
    carried: dict[str, Any] = {
        k: recorded[k]
        for k in ("sim_seed", "read_timeout_s", "connect_timeout_s", "call_deadline_s", "retries_per_run")
        if k in recorded
    }
    if "request_timeout_s" in recorded and "read_timeout_s" not in recorded:  # its name before 0.2: a read timeout
        carried["read_timeout_s"] = recorded["request_timeout_s"]
    out = ArtifactDir(destination(request.out, settings, settings.artifacts_dir / f"{index.artifact_id}-rerun"))
    with tempfile.TemporaryDirectory(prefix="cfk-bundle-") as tmp:
        to_load = bundle.missing_images(client, verified) if client is not None else []
        if to_load:
            progress(f"loading {len(to_load)} image(s) from the bundle")
        loader = client
        unpacked = bundle.unpack(
            verified,
            Path(tmp),
            load=(lambda chunks: images.load_images(loader, chunks)) if loader and to_load else None,
        )
        if client is not None:
            for note in bundle.restore_images(client, verified, unpacked.loaded_image_ids):
                progress(note)
        bundle_compose.check(
            unpacked.compose_dir, COMPOSE_DIR, accept=request.accept_compose, show=progress, kit_version=__version__
        )
        rerun = _bundle_settings(
            settings, backend=index.backend, time_scale=index.time_scale, experiments_dir=unpacked.experiments_dir
        ).model_copy(update=carried)
        spec = load_spec(unpacked.spec_path)
        executor: Executor
        if client is not None:
            executor = DockerExecutor.from_settings(
                client,
                rerun,
                backend=index.backend,
                harness_image=ids.get("harness", ""),
                rust_image=ids.get("rust-agent", ""),
                ollama_image=ids.get("ollama", ""),
                compose_dir=unpacked.compose_dir,
            )
        else:
            executor = local_executor(spec, rerun)
        executor = replace(executor, model_policy=request.model.policy(spec, rerun))
        executor.check(verified.plan)
        if index.simulated:
            progress("SIMULATED: a rehearsal against the simulated Ollama, not a measurement.")
        origin = {
            "bundle": str(request.bundle),
            "bundle_sha256": verified.sha256,
            "artifact_id": index.artifact_id,
            "kit_version": index.kit_version,
            "images": ids,
        }
        return _run_and_record(
            SweepJob(
                out,
                spec,
                unpacked.spec_path,
                verified.plan,
                executor,
                rerun,
                progress,
                on_run,
                list(request.command),
                origin=origin,
                expected_model=verified.sweep.model,
            )
        )


def _bundle_settings(settings: Settings, **update: object) -> Settings:
    """The settings a bundle re-runs with: the caller's, with what the bundle fixes (None: keep the caller's)."""
    return settings.model_copy(update={k: v for k, v in update.items() if v is not None})


# ----------------------------------------------------------------------------------------------- record


@dataclass(frozen=True)
class SweepJob:
    """One sweep to record: the folder, what runs there and on what, how to report, and what the folder must
    agree with (a bundle's origin and model, the sweep's settings identity, whether it may grow)."""

    out: ArtifactDir
    spec: Spec
    spec_file: Path
    plan: Plan
    executor: Executor
    settings: Settings
    progress: Progress
    on_run: ProgressHook | None
    command: list[str]
    origin: dict[str, Any] | None = None
    expected_model: ModelFacts | None = None
    identity: SweepSettings | None = None
    extend: bool = False


def _run_and_record(job: SweepJob) -> Outcome:
    """Lock the folder and reap this sweep's own leftovers for the whole of :func:`_record`."""
    if isinstance(job.executor, DockerExecutor):
        from harness.containers.controller import sweep_key

        job = replace(job, executor=replace(job.executor, sweep=sweep_key(job.out.root)))
    with guarded(
        job.out.root,
        command=shlex.join(["harness", *job.command]),
        say=job.progress,
        reap_own=job.executor.reap_own_leftovers,
    ):
        return _record(job)


def _record(job: SweepJob) -> Outcome:
    """Prepare the folder and the model, record provenance, run what is left, then report and manifest (last)."""
    out, spec, plan, executor, settings = job.out, job.spec, job.plan, job.executor, job.settings
    progress, command, origin, expected_model = job.progress, job.command, job.origin, job.expected_model
    with nvml_session() as nvml:
        prepared: list[PreparedModel] = []

        def pull_model() -> ModelFacts:
            progress(
                f"preparing {spec.model.name} on the {executor.backend} backend (from the server's store; a pull "
                "only when allowed)"
            )
            prepared.append(asyncio.run(executor.prepare_model(spec)))
            facts = prepared[0].facts
            progress(f"model {facts.name} {facts.digest[:19]}… served by {facts.server_version}")
            return facts

        spec_bytes = job.spec_file.read_bytes()
        prepare(
            out,
            spec,
            spec_bytes,
            plan,
            executor,
            ["harness", *command],
            model=pull_model,
            settings=job.identity,
            extend=job.extend,
        )
        model = prepared[0].facts
        if expected_model is not None and expected_model.digest != model.digest:
            progress(
                f"model {model.name} is {model.digest[:19]}… here, the bundle ran "
                f"{expected_model.digest[:19]}…: the model is not in the bundle, this re-run uses another one"
            )
        provenance = collect(
            nvml=nvml,
            docker=executor.client or _NO_CONTAINER,
            images=executor.image_ids(),
            ollama=prepared[0].server,
            settings=settings,
            command=["harness", *command],
            server_settings=server_settings(spec),
            spec_path=job.spec_file,
            spec_bytes=spec_bytes,
        )
        record_provenance(out, provenance)
        if isinstance(executor, DockerExecutor) and executor.engine_build is not None:
            doc = {"schema_version": 1, **executor.engine_build, "model_file": str(executor.model_file)}
            write_text_atomic(out.root / "engine.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")
        progress(f"environment fingerprint {provenance.fingerprint_sha256[:16]}… (provenance.json)")
        cluster = executor if isinstance(executor, RayExecutor) else None
        if cluster is not None:
            cluster.record(out)  # which nodes run the sweep, and which were refused (cluster.json)
        try:
            this_time, failures = _sweep(out, spec, plan, executor, settings, job.on_run, nvml)
        finally:
            if cluster is not None:
                cluster.finish()
    completed = len(out.completed_run_ids())
    progress("writing the report and the manifest")
    report = build_report(out.root, spec)
    manifest = write_manifest(out.root, command=["harness", *command], settings=settings, origin=origin)
    return Outcome(
        out_dir=out.root,
        report_markdown=report.markdown,
        manifest=manifest,
        planned_runs=len(plan.runs),
        completed_runs=completed,
        runs_this_time=this_time,
        failures=failures,
    )


_NO_CONTAINER: Absent = absent("the local executor runs no container")


def _sweep(
    out: ArtifactDir,
    spec: Spec,
    plan: Plan,
    executor: Executor,
    settings: Settings,
    on_run: ProgressHook | None,
    nvml: Nvml | Absent,
) -> tuple[int, int]:
    """Run what is left of the sweep; returns (runs this time, of which failed)."""
    results = asyncio.run(
        run_sweep(out, spec, plan, executor, retries=settings.retries_per_run, progress=on_run, nvml=nvml)
    )
    return len(results), sum(r.status == "failed" for r in results)
