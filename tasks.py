"""Invoke tasks: thin wrappers that call ``python -m harness …`` or a tool. Run them through ``./kit``."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import os
import shlex
import sys
import types
import typing
from pathlib import Path
from typing import Any

from invoke import Collection, Context, Task
from invoke import task as invoke_task

PY = shlex.quote(sys.executable)


class _TypedTask(Task):
    """Invoke infers an option's type from its default, so ``runs: int | None = None`` would read as STRING and
    no default would show in ``--help``: take the type from the annotation and append the default to the help."""

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        hint = typing.get_type_hints(self.body).get(name)
        if isinstance(hint, types.UnionType):
            kinds = [k for k in typing.get_args(hint) if k is not type(None)]
            if len(kinds) == 1 and kinds[0] in (int, float, str):
                opts["kind"] = kinds[0]
        if opts.get("kind") is float and "help" in opts:  # Invoke's help names STRING and INT only
            opts["help"] = f"(a number) {opts['help']}"
        if default not in (None, "", False, inspect.Signature.empty) and "help" in opts:
            opts["help"] += f" (default: {default})"
        return opts


task = functools.partial(invoke_task, klass=_TypedTask)
"""``invoke.task`` making :class:`_TypedTask` tasks."""


def _opt(flag: str, value: object) -> str:
    # `is` checks: 0 and 0.0 are values to pass on (and refuse there), not "unset"
    return "" if value is None or value is False or value == "" else f" {flag} {shlex.quote(str(value))}"


def _harness(c: Context, command: str) -> None:
    """Become ``python -m harness …``: Ctrl-C and SIGTERM reach it directly, its exit code and one ``Error:``
    line are the task's (no Invoke traceback, whether or not a terminal is attached)."""
    if c.config.run.dry:
        c.run(command)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    argv = shlex.split(command)
    os.execv(argv[0], argv)


@task(
    help={
        "k": "pytest -k expression",
        "fast": "skip lint and type checks",
        "docker": "include Docker tests (default on)",
    }
)
def test(c: Context, k: str = "", fast: bool = False, docker: bool = True) -> None:
    """Lint and type-check (Python and Rust), check import layers, then cargo test and pytest (unit + Docker)."""
    cluster(c)
    if not fast:
        c.run(f"{PY} -m ruff check harness tests tasks.py kit_program.py", echo=True)
        c.run(f"{PY} -m ruff format --check harness tests tasks.py kit_program.py", echo=True)
        c.run(f"{PY} -m mypy", echo=True)
        c.run(f"{PY} -m mypy tasks.py kit_program.py", echo=True)
        c.run(f"{shlex.quote(sys.prefix)}/bin/lint-imports", echo=True)
        with c.cd("harness/rust"):
            c.run("cargo fmt --all --check", echo=True)
            c.run("cargo clippy --locked --all-targets --all-features -- -D warnings", echo=True)
    with c.cd("harness/rust"):
        c.run("cargo test --locked", echo=True, pty=False)
    marks = "not gpu" if docker else "not gpu and not docker"
    c.run(f"{PY} -m pytest -m {shlex.quote(marks)}" + _opt("-k", k), echo=True, pty=False)


@task
def cluster(c: Context) -> None:
    """Install the optional `cluster` extra (Ray, for --executor ray) from its hash-locked requirements."""
    lock_file = Path("requirements-cluster.lock")
    stamp = Path(sys.prefix) / ".cluster-lock.sha256"  # reinstall when the lock changes, as ./kit does for its own
    want = hashlib.sha256(lock_file.read_bytes()).hexdigest()
    if importlib.util.find_spec("ray") is None or not stamp.exists() or stamp.read_text().strip() != want:
        c.run(f"{PY} -m pip install --quiet --disable-pip-version-check --require-hashes -r {lock_file}")
        stamp.write_text(want + "\n")


@task
def lock(c: Context) -> None:
    """Regenerate the hash-locked requirements (runtime, dev, and dev + cluster) from pyproject.toml."""
    base = f"{PY} -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links"
    c.run(f"{base} --output-file requirements.lock pyproject.toml", echo=True)
    c.run(f"{base} --extra dev --output-file requirements-dev.lock pyproject.toml", echo=True)
    # The cluster lock adds Ray to the dev lock without moving any of its pins (installed over it by `test`).
    c.run(
        f"{base} --extra dev --extra cluster -c requirements-dev.lock --output-file requirements-cluster.lock "
        "pyproject.toml",
        echo=True,
    )


@task
def specs(c: Context) -> None:
    """Validate every experiment spec and print its run counts."""
    _harness(c, f"{PY} -m harness specs")


@task(help={"report": "trNNN", "runs": "repetitions per config", "configs": "regex over config ids"})
def plan(c: Context, report: str, runs: int | None = None, configs: str | None = None) -> None:
    """List the runs a report expands to (protocol, isolated baselines, diagnostics)."""
    _harness(
        c, f"{PY} -m harness plan --report {shlex.quote(report)}" + _opt("--runs", runs) + _opt("--configs", configs)
    )


@task(help={"write": "regenerate it instead of comparing (the default)"})
def corpus(c: Context, write: bool = False) -> None:
    """Check or regenerate the benchmark corpus under experiments/corpus."""
    _harness(c, f"{PY} -m harness corpus" + (" --write" if write else ""))


@task(help={"port": "port to listen on", "seed": "token seed", "time_scale": "multiply every delay"})
def sim(c: Context, port: int = 11434, seed: int = 1234, time_scale: float = 1.0) -> None:
    """Serve the simulated Ollama API on 127.0.0.1 (every response says SIMULATED)."""
    _harness(c, f"{PY} -m harness.sim --port {port} --seed {seed} --time-scale {time_scale} --preload gemma3:latest")


@task(
    help={
        "report": "trNNN",
        "backend": "auto | ollama | sim | llamacpp",
        "model_file": "llamacpp: GGUF weights to serve (default: the kit's tiny test model)",
        "llamacpp_device": "llamacpp: auto | cpu | cuda (auto: cuda when Docker sees an NVIDIA GPU)",
        "runs": "repetitions per config (default: the spec's)",
        "configs": "regular expression over config ids",
        "time_scale": "simulator: multiply every delay (0.05 = 20x faster)",
        "out": "artifact folder (re-use it to resume)",
        "executor": "docker (one compose stack per run, default), local (in-process simulator, no Docker) or ray "
        "(each run's stack on a node of the Ray cluster at RAY_ADDRESS; `./kit cluster` installs Ray)",
        "across_hosts": "ray: admit nodes of different environments; report the spread between hosts",
        "bundle": "re-run a bundle (from `bundle`) with its exact images instead of a report",
        "extend": "grow the sweep in --out (more runs or configs); recorded in its sweep.json",
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
    across_hosts: bool = False,
    extend: bool = False,
    model_file: str = "",
    llamacpp_device: str = "",
) -> None:
    """Run a report's protocol (or a bundle's plan), one fresh set of servers per run, and write artifacts."""
    _harness(
        c,
        f"{PY} -m harness reproduce"
        + _opt("--report", report)
        + _opt("--bundle", bundle)
        + _opt("--backend", backend)
        + _opt("--runs", runs)
        + _opt("--configs", configs)
        + _opt("--time-scale", time_scale)
        + _opt("--out", out)
        + _opt("--executor", executor)
        + _opt("--model-file", model_file)
        + _opt("--llamacpp-device", llamacpp_device)
        + (" --across-hosts" if across_hosts else "")
        + (" --extend" if extend else ""),
    )


@task(help={"install_debootstrap": "install debootstrap with apt-get if the offline base needs it (changes the host)"})
def build(c: Context, install_debootstrap: bool = False) -> None:
    """Build the kit's images; with no registry it bootstraps a Debian base offline and says so."""
    _harness(c, f"{PY} -m harness build" + (" --install-debootstrap" if install_debootstrap else ""))


@task(
    help={
        "all": "also stacks whose controller is running, on another host, or unnamed (older kits)",
        "dry_run": "list what would be removed and what is kept; remove nothing",
    }
)
def clean(c: Context, all: bool = False, dry_run: bool = False) -> None:
    """Remove the kit stacks whose controlling process is gone (what a crash left); running sweeps are kept."""
    _harness(c, f"{PY} -m harness clean" + (" --all" if all else "") + (" --dry-run" if dry_run else ""))


@task(
    name="base",
    help={"install_debootstrap": "install debootstrap with apt-get if it is missing (changes the host)"},
)
def images_base(c: Context, install_debootstrap: bool = False) -> None:
    """Bootstrap the Debian base image (debootstrap → docker import); needs root, skips when present."""
    _harness(c, f"{PY} -m harness images base" + (" --install-debootstrap" if install_debootstrap else ""))


@task(name="tiny")
def model_tiny(c: Context) -> None:
    """Write the deterministic tiny GGUF test model (llama architecture, real vocabulary, seeded weights)."""
    _harness(c, f"{PY} -m harness model tiny")


@task(name="lock")
def images_lock(c: Context) -> None:
    """Resolve the pinned image tags to digests where a registry answers; write docker/images.lock.json."""
    _harness(c, f"{PY} -m harness images lock")


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
    _harness(
        c,
        f"{PY} -m harness stack up --topology {shlex.quote(topology)} --port {port} --port2 {port2}"
        + _opt("--backend", backend)
        + _opt("--model", model),
    )


@task(name="down", help={"name": "only this stack (default: every stack started by stack.up)"})
def stack_down(c: Context, name: str = "") -> None:
    """Remove stacks started by stack.up."""
    _harness(c, f"{PY} -m harness stack down" + _opt("--name", name))


@task(help={"dir": "artifact folder", "against": "another artifact folder: show the environment drift"})
def verify(c: Context, dir: str, against: str = "") -> None:
    """Re-hash an artifact folder against its manifest, check schema versions, show the environment fingerprint."""
    _harness(c, f"{PY} -m harness verify {shlex.quote(dir)}" + _opt("--against", against))


@task(
    help={
        "a": "artifact folder A (the reference)",
        "b": "artifact folder B (B − A)",
        "out": "also write comparison.md and comparison.json here",
        "json": "print JSON instead of Markdown",
        "allow_mixed": "compare a SIMULATED rehearsal with a measurement",
    }
)
def compare(c: Context, a: str, b: str, out: str = "", json: bool = False, allow_mixed: bool = False) -> None:
    """Two reproductions of one report: per claim and metric, B − A with an interval, tests, effect size, drift."""
    _harness(
        c,
        f"{PY} -m harness compare {shlex.quote(a)} {shlex.quote(b)}"
        + _opt("--out", out)
        + (" --json" if json else "")
        + (" --allow-mixed" if allow_mixed else ""),
    )


@task(help={"dir": "artifact folder", "out": "bundle file: .tar.gz (default <dir>.bundle.tar.gz) or .tar (faster)"})
def bundle(c: Context, dir: str, out: str = "") -> None:
    """Pack a verified artifact folder with its exact images, locks and inputs for a reviewer."""
    _harness(c, f"{PY} -m harness bundle {shlex.quote(dir)}" + _opt("--out", out))


@task(help={"csv": "originals' per-run CSV (shared/reference/data)", "report": "trNNN", "out": "report folder"})
def analyze(c: Context, csv: str, report: str, out: str = "") -> None:
    """Recompute a report's published figures from the originals' records and judge its claims."""
    _harness(
        c, f"{PY} -m harness analyze --import {shlex.quote(csv)} --report {shlex.quote(report)}" + _opt("--out", out)
    )


@task(name="report", help={"dir": "artifact folder"})
def report_(c: Context, dir: str) -> None:
    """Rebuild report.md, report.html and the figures from an artifact folder alone."""
    _harness(c, f"{PY} -m harness report {shlex.quote(dir)}")


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
    _harness(
        c,
        f"{PY} -m harness doctor"
        + _opt("--report", report)
        + _opt("--model", model)
        + (" --require-gpu" if require_gpu else "")
        + (" --json" if json else ""),
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
    _harness(c, f"{PY} -m harness bench" + (" --quick" if quick else "") + sections + _opt("--out", out))


ns = Collection(
    test,
    cluster,
    lock,
    specs,
    plan,
    corpus,
    sim,
    reproduce,
    build,
    clean,
    analyze,
    report_,
    doctor,
    verify,
    bundle,
    compare,
    bench,
)
ns.add_collection(Collection("images", images_base, images_lock))
ns.add_collection(Collection("stack", stack_up, stack_down))
ns.add_collection(Collection("model", model_tiny))
