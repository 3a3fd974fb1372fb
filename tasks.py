"""Invoke tasks: thin wrappers that call ``python -m harness …`` or a tool. Run them through ``./kit``."""

from __future__ import annotations

import shlex
import sys

from invoke import Collection, Context, task

PY = shlex.quote(sys.executable)


def _opt(flag: str, value: object) -> str:
    return f" {flag} {shlex.quote(str(value))}" if value not in (None, False, "") else ""


@task(
    help={
        "k": "pytest -k expression",
        "fast": "skip lint and type checks",
        "docker": "include Docker tests (default on)",
    }
)
def test(c: Context, k: str = "", fast: bool = False, docker: bool = True) -> None:
    """Lint and type-check (Python and Rust), check import layers, then cargo test and pytest (unit + Docker)."""
    if not fast:
        c.run(f"{PY} -m ruff check harness tests tasks.py", echo=True)
        c.run(f"{PY} -m ruff format --check harness tests tasks.py", echo=True)
        c.run(f"{PY} -m mypy", echo=True)
        c.run(f"{shlex.quote(sys.prefix)}/bin/lint-imports", echo=True)
        with c.cd("harness/rust"):
            c.run("cargo fmt --all --check", echo=True)
            c.run("cargo clippy --locked --all-targets --all-features -- -D warnings", echo=True)
    with c.cd("harness/rust"):
        c.run("cargo test --locked", echo=True, pty=False)
    marks = "not gpu" if docker else "not gpu and not docker"
    c.run(f"{PY} -m pytest -m {shlex.quote(marks)}" + _opt("-k", k), echo=True, pty=False)


@task
def lock(c: Context) -> None:
    """Regenerate the hash-locked requirements (runtime and dev) from pyproject.toml with pip-compile."""
    base = f"{PY} -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links"
    c.run(f"{base} --output-file requirements.lock pyproject.toml", echo=True)
    c.run(f"{base} --extra dev --output-file requirements-dev.lock pyproject.toml", echo=True)


@task
def specs(c: Context) -> None:
    """Validate every experiment spec and print its run counts."""
    c.run(f"{PY} -m harness specs")


@task(help={"report": "trNNN", "runs": "repetitions per config", "configs": "regex over config ids"})
def plan(c: Context, report: str, runs: int | None = None, configs: str | None = None) -> None:
    """List the runs a report expands to (protocol, isolated baselines, diagnostics)."""
    c.run(f"{PY} -m harness plan --report {shlex.quote(report)}" + _opt("--runs", runs) + _opt("--configs", configs))


@task(help={"write": "regenerate it instead of comparing (the default)"})
def corpus(c: Context, write: bool = False) -> None:
    """Check or regenerate the benchmark corpus under experiments/corpus."""
    c.run(f"{PY} -m harness corpus" + (" --write" if write else ""))


@task(help={"port": "port to listen on", "seed": "token seed", "time_scale": "multiply every delay"})
def sim(c: Context, port: int = 11434, seed: int = 1234, time_scale: float = 1.0) -> None:
    """Serve the simulated Ollama API on 127.0.0.1 (every response says SIMULATED)."""
    c.run(f"{PY} -m harness.sim --port {port} --seed {seed} --time-scale {time_scale} --preload gemma3:latest")


@task(
    help={
        "report": "trNNN",
        "backend": "auto | ollama | sim | llamacpp",
        "model_file": "llamacpp: GGUF weights to serve (default: the kit's tiny test model)",
        "runs": "repetitions per config (default: the spec's)",
        "configs": "regular expression over config ids",
        "time_scale": "simulator: multiply every delay (0.05 = 20x faster)",
        "out": "artifact folder (re-use it to resume)",
        "executor": "docker (one compose stack per run, default) or local (in-process simulator, no Docker)",
        "bundle": "re-run a bundle (from `bundle`) with its exact images instead of a report",
    }
)
def reproduce(
    c: Context,
    report: str = "",
    backend: str = "",
    runs: int | None = None,
    configs: str = "",
    time_scale: float | None = None,
    out: str = "",
    executor: str = "",
    bundle: str = "",
    model_file: str = "",
) -> None:
    """Run a report's protocol (or a bundle's plan), one fresh set of servers per run, and write artifacts."""
    c.run(
        f"{PY} -m harness reproduce"
        + _opt("--report", report)
        + _opt("--bundle", bundle)
        + _opt("--backend", backend)
        + _opt("--runs", runs)
        + _opt("--configs", configs)
        + _opt("--time-scale", time_scale)
        + _opt("--out", out)
        + _opt("--executor", executor)
        + _opt("--model-file", model_file),
        pty=False,
    )


@task
def build(c: Context) -> None:
    """Build the kit's images; with no registry it bootstraps a Debian base offline and says so."""
    c.run(f"{PY} -m harness build", pty=False)


@task
def clean(c: Context) -> None:
    """Remove every container, network and run volume labelled by the kit (what a crash left behind)."""
    c.run(f"{PY} -m harness clean")


@task(name="base")
def images_base(c: Context) -> None:
    """Bootstrap the Debian base image (debootstrap → docker import); needs root, skips when present."""
    c.run(f"{PY} -m harness images base", pty=False)


@task(name="tiny")
def model_tiny(c: Context) -> None:
    """Write the deterministic tiny GGUF test model (llama architecture, real vocabulary, seeded weights)."""
    c.run(f"{PY} -m harness model tiny", pty=False)


@task(name="lock")
def images_lock(c: Context) -> None:
    """Resolve the pinned image tags to digests where a registry answers; write docker/images.lock.json."""
    c.run(f"{PY} -m harness images lock")


@task(
    name="up",
    help={
        "topology": "single | dual",
        "backend": "auto | ollama | sim",
        "model": "model the simulator preloads",
        "port": "host port of the first server (127.0.0.1)",
        "port2": "host port of the second server (dual)",
    },
)
def stack_up(
    c: Context, topology: str = "single", backend: str = "", model: str = "", port: int = 11434, port2: int = 11435
) -> None:
    """Start a kit stack by hand (Ollama or the simulator, OLLAMA_* settings from the environment); it stays up."""
    c.run(
        f"{PY} -m harness stack up --topology {shlex.quote(topology)} --port {port} --port2 {port2}"
        + _opt("--backend", backend)
        + _opt("--model", model),
        pty=False,
    )


@task(name="down", help={"name": "only this stack (default: every stack started by stack.up)"})
def stack_down(c: Context, name: str = "") -> None:
    """Remove stacks started by stack.up."""
    c.run(f"{PY} -m harness stack down" + _opt("--name", name))


@task(help={"dir": "artifact folder", "against": "another artifact folder: show the environment drift"})
def verify(c: Context, dir: str, against: str = "") -> None:
    """Re-hash an artifact folder against its manifest, check schema versions, show the environment fingerprint."""
    c.run(f"{PY} -m harness verify {shlex.quote(dir)}" + _opt("--against", against))


@task(help={"dir": "artifact folder", "out": "bundle file: .tar.gz (default <dir>.bundle.tar.gz) or .tar (faster)"})
def bundle(c: Context, dir: str, out: str = "") -> None:
    """Pack a verified artifact folder with its exact images, locks and inputs for a reviewer."""
    c.run(f"{PY} -m harness bundle {shlex.quote(dir)}" + _opt("--out", out), pty=False)


@task(help={"csv": "originals' per-run CSV (shared/reference/data)", "report": "trNNN", "out": "report folder"})
def analyze(c: Context, csv: str, report: str, out: str = "") -> None:
    """Recompute a report's published figures from the originals' records and judge its claims."""
    c.run(f"{PY} -m harness analyze --import {shlex.quote(csv)} --report {shlex.quote(report)}" + _opt("--out", out))


@task(name="report", help={"dir": "artifact folder"})
def report_(c: Context, dir: str) -> None:
    """Rebuild report.md, report.html and the figures from an artifact folder alone."""
    c.run(f"{PY} -m harness report {shlex.quote(dir)}")


@task(
    help={
        "report": "trNNN: check free VRAM against its model and topology",
        "model": "model to check free VRAM against (default gemma3:latest)",
        "require_gpu": "no NVIDIA GPU is a failure, not a warning",
        "json": "machine-readable findings",
    }
)
def doctor(c: Context, report: str = "", model: str = "", require_gpu: bool = False, json: bool = False) -> None:
    """Check this host before its numbers are trusted: GPU, driver, Docker's NVIDIA runtime, clocks, VRAM, disk."""
    c.run(
        f"{PY} -m harness doctor"
        + _opt("--report", report)
        + _opt("--model", model)
        + (" --require-gpu" if require_gpu else "")
        + (" --json" if json else ""),
        pty=False,
    )


@task(
    help={
        "quick": "fewer repetitions: a smoke run that publishes nothing",
        "only": "comma-separated sections: clients, peer, efficiency, stack, report",
        "out": "write the results file here instead of benchmarks/results/ (publishes nothing)",
    }
)
def bench(c: Context, quick: bool = False, only: str = "", out: str = "") -> None:
    """Measure the kit's own TTFT, throughput and efficiency error and its overhead (benchmarks/results/)."""
    sections = "".join(f" --only {shlex.quote(s.strip())}" for s in only.split(",") if s.strip())
    c.run(f"{PY} -m harness bench" + (" --quick" if quick else "") + sections + _opt("--out", out), pty=False)


ns = Collection(
    test, lock, specs, plan, corpus, sim, reproduce, build, clean, analyze, report_, doctor, verify, bundle, bench
)
ns.add_collection(Collection("images", images_base, images_lock))
ns.add_collection(Collection("stack", stack_up, stack_down))
ns.add_collection(Collection("model", model_tiny))
