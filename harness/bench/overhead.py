"""Measurement 4: what the kit's containers cost per run, and how long a whole simulated report takes.

Stack overhead is create → ready → removed of the single-Ollama simulated stack through
:class:`harness.containers.stack.Stack`, as every containerised run pays it. The whole-report time runs
``python -m harness reproduce`` as a user would (a subprocess: start-up, image check, every run, the report).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from harness import __version__
from harness.artifacts import ArtifactDir, load_run_result
from harness.bench.results import ReportTime, StackOverhead
from harness.bench.spread import spread
from harness.errors import BenchError
from harness.progress import Progress

REPORT = "tr114"
REPORT_CONFIGS = "^20[0-2]$"
"""TR114's phase-3 configs: one per scenario (homo, hetero, baseline vs chimera) with their isolated baselines."""
REPORT_TIME_SCALE = 0.02


def harness_image(client: Any, progress: Progress) -> tuple[str, float]:
    """The harness image of this checkout (built when missing, cached by content hash) and the time it took."""
    from harness.containers import images

    start = time.monotonic()
    report = images.build_all(client, kit_version=__version__, python_exe=sys.executable, rust=True, progress=progress)
    tag = next((i.tag for i in report.images if i.name == "harness" and i.tag), None)
    if tag is None:
        raise BenchError("the harness image could not be built", hint="run `invoke build` and read its output")
    return tag, time.monotonic() - start


def llamacpp_stack_variables(client: Any, progress: Progress) -> tuple[dict[str, str], str, float]:
    """Compose variables of a llama.cpp stack serving the tiny model, its image, and the time to get both."""
    from harness.containers import images, model_volume
    from harness.containers.llamacpp_image import build_llamacpp_image
    from harness.digests import sha256_file
    from harness.run import llamacpp

    start = time.monotonic()
    base = images.load_pins().debian.tag
    result, _server = build_llamacpp_image(client, base_tag=base, kit_version=__version__, progress=progress)
    model = llamacpp.ensure_tiny_model(progress=progress)
    sha = sha256_file(model)
    plan = llamacpp.ServerPlan(1, str(model), sha, 4096, 1, llamacpp.threads_per_server(1), 0, 1, [])
    if result.tag is None:
        raise BenchError("the llama.cpp image could not be built", hint="run `invoke build` and read its output")
    # the servers mount the weights from the volume named by their sha256, as a reproduce run's do
    model_volume.ensure_gguf_volume(client, model, sha, image=result.tag, kit_version=__version__)
    return {"OLLAMA_MODEL": "tiny", **plan.variables(result.tag)}, result.tag, time.monotonic() - start


def measure_stack(
    client: Any,
    image: str,
    image_check_s: float,
    *,
    repetitions: int,
    progress: Progress,
    backend: str = "sim",
    engine_vars: dict[str, str] | None = None,
) -> StackOverhead:
    """``backend="llamacpp"``: the servers are llama.cpp loading a real GGUF file (``engine_vars``), ready on
    ``/health``; otherwise the simulated Ollama."""
    from harness.containers import compose, stack
    from harness.settings import OllamaServerSettings

    variables = compose.stack_variables(OllamaServerSettings(), harness_image=image) | {
        "SIM_SEED": "1234",
        "SIM_TIME_SCALE": "1",
        "SIM_DEVICE_GROUP": "bench",
        "OLLAMA_MODEL": "gemma3:latest",
        **(engine_vars or {}),
    }
    files_backend: Literal["llamacpp", "sim"] = "llamacpp" if backend == "llamacpp" else "sim"
    ups: list[float] = []
    downs: list[float] = []
    for rep in range(1, repetitions + 1):
        progress(f"stack overhead: {rep}/{repetitions}")
        project = compose.load_compose(compose.compose_files("single", files_backend), variables, gpu=False)
        live = stack.Stack(project, client=client, run_id=f"bench-stack-{backend}-{rep}", kit_version=__version__,
                           ready_timeout_s=60, handle_signals=False)  # fmt: skip
        start = time.monotonic()
        try:
            live.up()
            ready = time.monotonic()
        finally:
            before_down = time.monotonic()
            live.down()
        ups.append(ready - start)
        downs.append(time.monotonic() - before_down)
    return StackOverhead(
        image=image,
        repetitions=repetitions,
        total_s=spread([u + d for u, d in zip(ups, downs, strict=True)]),
        up_s=spread(ups),
        down_s=spread(downs),
        image_check_s=image_check_s,
    )


def measure_report(*, cwd: Path, progress: Progress, time_scale: float = REPORT_TIME_SCALE) -> ReportTime:
    """``reproduce --report tr114 --backend sim --runs 1`` over :data:`REPORT_CONFIGS`, timed end to end."""
    import subprocess

    out = Path(tempfile.mkdtemp(prefix="cfk-bench-report-"))
    command = [
        "python", "-m", "harness", "reproduce", "--report", REPORT, "--backend", "sim", "--runs", "1",
        "--configs", REPORT_CONFIGS, "--time-scale", repr(time_scale), "--out", str(out / REPORT),
    ]  # fmt: skip
    progress(f"whole report: {' '.join(command)}")
    try:
        start = time.monotonic()
        done = subprocess.run([sys.executable, *command[1:]], cwd=cwd, capture_output=True, text=True, timeout=1200)
        wall = time.monotonic() - start
        results = [load_run_result(p) for p in sorted(ArtifactDir(out / REPORT).runs_dir.glob("*/run.json"))]
    except subprocess.TimeoutExpired:
        raise BenchError("the whole-report run took longer than 20 minutes") from None
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if not results:
        raise BenchError(f"reproduce wrote no run (exit {done.returncode}): {done.stderr.strip()[-400:]}")
    return ReportTime(
        command=command,
        time_scale=time_scale,
        configs=REPORT_CONFIGS,
        planned_runs=len(results),
        failed_runs=sum(r.status == "failed" for r in results),
        wall_s=wall,
        run_s=spread([r.duration_s for r in results]),
        exit_code=done.returncode,
    )
