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
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness import __version__
from harness.analysis.report import build_report
from harness.artifacts import ArtifactDir, ModelFacts
from harness.errors import BadInputError
from harness.evidence.manifest import write_manifest
from harness.evidence.provenance import collect, record_provenance
from harness.evidence.telemetry import Nvml, nvml_session
from harness.facts import Absent, absent
from harness.progress import Progress
from harness.protocol.plan import Plan, expand
from harness.protocol.spec import Config, Spec, load_spec, spec_path
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
from harness.settings import Settings

ExecutorKind = Literal["docker", "local"]
SIMULATED_NOTE = "SIMULATED: a rehearsal of the protocol against the simulated Ollama, not a measurement."
LLAMACPP_NOTE = (
    "llama.cpp: real tokens and engine timings, on this host's CPU; absolute figures are not comparable with the "
    "reports' GPU numbers."
)


@dataclass(frozen=True)
class SpecRequest:
    """``reproduce --report trNNN``: which spec, which runs of its plan, where to write."""

    report: str
    executor: ExecutorKind = "docker"
    runs: int | None = None
    configs: str | None = None
    """A regular expression over config ids (``re.search``); None: every config."""
    include_isolated: bool = True
    interleave_seed: int | None = None
    out: Path | None = None
    command: tuple[str, ...] = ()
    """The command line as typed (recorded in sweep.json, provenance and the manifest)."""


@dataclass(frozen=True)
class BundleRequest:
    """``reproduce --bundle FILE``: re-run a bundle's plan as it was made."""

    bundle: Path
    executor: ExecutorKind = "docker"
    out: Path | None = None
    command: tuple[str, ...] = ()


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
    """Run a reproduction end to end; bad input raises before anything is built, pulled or written."""
    if isinstance(request, BundleRequest):
        return _from_bundle(request, settings, progress, on_run)
    return _from_spec(request, settings, progress, on_run)


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
    if backend == "llamacpp":
        from harness.engines.tiny_model import file_sha256
        from harness.run import llamacpp

        if settings.time_scale != 1.0:
            raise BadInputError("--time-scale applies to the simulator only", hint="drop it, or use --backend sim")
        if settings.model_file is not None:
            model_file = llamacpp.check_model_file(settings.model_file)
        else:
            model_file = llamacpp.ensure_tiny_model(progress=progress)
            progress(f"no --model-file: serving the kit's tiny test model {model_file} (random weights)")
        model_sha256 = file_sha256(model_file)
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
    )


def with_images(executor: DockerExecutor, progress: Progress, *, rust: bool) -> DockerExecutor:
    """Build (or find) the images the plan needs and point the executor at them by content-hashed tag."""
    from harness.containers import images

    report = images.build_all(
        executor.client, kit_version=__version__, python_exe=sys.executable, rust=rust, progress=progress
    )
    built = {i.name: i.tag for i in report.images}
    if not built.get("harness") or (rust and not built.get("rust-agent")):
        raise BadInputError("the agent images could not be built", hint="see the build output above")
    llamacpp_image = ""
    engine_build = None
    if executor.backend == "llamacpp":
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
        timeouts=Timeouts(settings.request_timeout_s, settings.connect_timeout_s),
    )


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
    if request.runs is not None and request.runs < 1:
        raise BadInputError("--runs must be at least 1")
    path = spec_path(settings.experiments_dir, request.report)
    spec = load_spec(path)
    plan = expand(
        spec,
        runs_per_config=request.runs,
        config_ids=select_configs(spec.configs, request.configs),
        include_isolated=request.include_isolated,
        interleave_seed=request.interleave_seed,
    )
    docker: DockerExecutor | None = None
    if request.executor == "docker":
        docker = docker_executor(settings, progress)
    elif settings.backend == "ollama":
        raise BadInputError("the local executor only runs the simulator", hint="use --executor docker")
    if docker is None or docker.backend == "sim":
        progress(SIMULATED_NOTE)
    elif docker.backend == "llamacpp":
        progress(LLAMACPP_NOTE)
    executor: Executor
    if docker is None:
        executor = local_executor(spec, settings)
    else:
        progress("checking the kit's images (built on first use; offline when no registry answers)")
        executor = with_images(docker, progress, rust=any(r.language == "rust" for r in plan.runs))
    executor.check(plan)
    out = ArtifactDir(request.out or settings.artifacts_dir / f"{spec.id}-{executor.backend}")
    return _run_and_record(out, spec, path, plan, executor, settings, progress, on_run, list(request.command))


# ----------------------------------------------------------------------------------------------- bundle


def _from_bundle(
    request: BundleRequest, settings: Settings, progress: Progress, on_run: ProgressHook | None
) -> Outcome:
    """The bundle is verified in full before anything is loaded or written; its images are loaded only when the
    engine lacks them (an image ID is a content hash), checked by ID, and their tags given back."""
    from harness.containers import engine, images
    from harness.evidence import bundle

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
        for k in ("sim_seed", "request_timeout_s", "connect_timeout_s", "retries_per_run")
        if k in recorded
    }
    out = ArtifactDir(request.out or settings.artifacts_dir / f"{index.artifact_id}-rerun")
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


def _bundle_settings(settings: Settings, **update: object) -> Settings:
    """The settings a bundle re-runs with: the caller's, with what the bundle fixes (None: keep the caller's)."""
    return settings.model_copy(update={k: v for k, v in update.items() if v is not None})


# ----------------------------------------------------------------------------------------------- record


def _run_and_record(
    out: ArtifactDir,
    spec: Spec,
    spec_file: Path,
    plan: Plan,
    executor: Executor,
    settings: Settings,
    progress: Progress,
    on_run: ProgressHook | None,
    command: list[str],
    *,
    origin: dict[str, Any] | None = None,
    expected_model: ModelFacts | None = None,
) -> Outcome:
    """Prepare the folder and the model, record provenance, run what is left, then report and manifest (last)."""
    with nvml_session() as nvml:
        prepared: list[PreparedModel] = []

        def pull_model() -> ModelFacts:
            progress(f"preparing {spec.model.name} on the {executor.backend} backend (pulled once, then reused)")
            prepared.append(asyncio.run(executor.prepare_model(spec)))
            facts = prepared[0].facts
            progress(f"model {facts.name} {facts.digest[:19]}… served by {facts.server_version}")
            return facts

        spec_bytes = spec_file.read_bytes()
        prepare(out, spec, spec_bytes, plan, executor, ["harness", *command], model=pull_model)
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
            spec_path=spec_file,
            spec_bytes=spec_bytes,
        )
        record_provenance(out, provenance)
        if isinstance(executor, DockerExecutor) and executor.engine_build is not None:
            doc = {"schema_version": 1, **executor.engine_build, "model_file": str(executor.model_file)}
            (out.root / "engine.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        progress(f"environment fingerprint {provenance.fingerprint_sha256[:16]}… (provenance.json)")
        this_time, failures = _sweep(out, spec, plan, executor, settings, on_run, nvml)
    completed = len(out.completed_run_ids())
    progress(f"{completed}/{len(plan.runs)} runs complete in {out.root} ({this_time} this time, {failures} failed)")
    report = build_report(out.root, spec)
    progress(f"report: {report.markdown}")
    manifest = write_manifest(out.root, command=["harness", *command], settings=settings, origin=origin)
    progress(f"manifest: {manifest}")
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
    if threading.current_thread() is threading.main_thread():
        # SIGTERM is handled like Ctrl-C: the in-flight run's stack is torn down, completed runs stay on disk.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    results = asyncio.run(
        run_sweep(out, spec, plan, executor, retries=settings.retries_per_run, progress=on_run, nvml=nvml)
    )
    return len(results), sum(r.status == "failed" for r in results)
