"""The bench from start to finish: measure, judge, write the results file, regenerate the docs table.

A full run (no ``--quick``, ``--only`` or ``--out``) writes ``benchmarks/results/<UTC>.json``, ``latest.json`` and
the block of ``docs/bench.md``; any other run writes only its own results file, so a smoke run never replaces the
published figures.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.bench import clients as clients_mod
from harness.bench import efficiency as efficiency_mod
from harness.bench import overhead, peer, scheduling, table
from harness.bench.agents import AGENTS, PYTHON, AgentCommands
from harness.bench.fidelity import TruthError
from harness.bench.results import (
    RESULTS_DIR,
    BenchResults,
    ClientRow,
    PeerResult,
    ReportTime,
    StackOverhead,
    describe_kit,
    describe_machine,
    finish_machine,
    utc_stamp,
    write_results,
)
from harness.bench.targets import judge
from harness.errors import BadInputError, BenchError, HarnessError
from harness.progress import Progress

SECTIONS = ("clients", "peer", "efficiency", "stack", "report", "scheduling")
DOCS = Path("docs/bench.md")


@dataclass(frozen=True)
class BenchOptions:
    repo_root: Path
    command: list[str]
    quick: bool = False
    only: tuple[str, ...] = ()
    out: Path | None = None
    python: str = field(default_factory=lambda: sys.executable)

    @property
    def sections(self) -> tuple[str, ...]:
        return self.only or SECTIONS

    @property
    def publishes(self) -> bool:
        """Only a full run replaces ``latest.json`` and the docs table."""
        return not self.quick and not self.only and self.out is None


def check_options(only: Sequence[str]) -> tuple[str, ...]:
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        raise BadInputError(
            f"--only: unknown section(s) {', '.join(unknown)}", hint=f"choose from {', '.join(SECTIONS)}"
        )
    return tuple(dict.fromkeys(only))


def _rust_binaries(repo_root: Path, progress: Progress) -> Path | None:
    """The release binaries the Rust agent image carries (vendored crates, ``--locked --offline``)."""
    from harness.containers import images

    rust_dir = repo_root / "harness" / "rust"
    progress("building the Rust agents (release, vendored crates; a no-op when current)")
    try:
        vendored = images.vendor_crates(rust_dir, images.CONTEXT_DIR / "rust-vendor", progress=progress)
        binaries = images.build_rust_binaries(rust_dir, vendored, progress=progress)
    except HarnessError as exc:
        progress(f"Rust agents unavailable: {exc}")
        return None
    return next(iter(binaries.values())).parent


def _docker(progress: Progress) -> Any | None:
    from harness.containers import engine

    try:
        return engine.connect()
    except HarnessError as exc:
        progress(f"Docker unavailable: {exc}")
        return None


def run_bench(options: BenchOptions, progress: Progress) -> tuple[BenchResults, list[Path]]:
    """Every selected measurement; returns the results and the files written."""
    started = time.monotonic()
    created = dt.datetime.now(dt.UTC)
    sections = options.sections
    client = _docker(progress) if {"stack", "report"} & set(sections) else None
    docker_version = str(client.version().get("Version")) if client is not None else None
    machine = describe_machine(docker_version)
    kit = describe_kit(__version__, options.repo_root)  # the code that ran, read before anything is written
    notes: list[str] = []

    agents: list[str] = [PYTHON]
    rust_bin = None
    if {"clients", "efficiency"} & set(sections):
        rust_bin = _rust_binaries(options.repo_root, progress)
        if rust_bin is None:
            notes.append("Rust agents not measured: the release binaries could not be built (see the bench log)")
        else:
            agents += [a for a in AGENTS if a != PYTHON]
    commands = AgentCommands(options.python, rust_bin or options.repo_root / "harness/rust/target/release")

    peer_result: PeerResult | None = None
    peer_hook = None
    if "peer" in sections:
        peer_result, peer_hook = _peer(options, progress)

    client_rows: list[ClientRow] = []
    if "clients" in sections or peer_hook is not None:
        chosen = agents if "clients" in sections else []
        client_rows, peer_rows = clients_mod.measure_clients(
            chosen, commands, cwd=options.repo_root, quick=options.quick, progress=progress, peer=peer_hook
        )
        if peer_result is not None and peer_result.status == "ok":
            peer_result = peer_result.model_copy(update={"rows": peer_rows})

    efficiency_rows = []
    if "efficiency" in sections:
        efficiency_rows = efficiency_mod.measure_efficiency(
            agents, commands, cwd=options.repo_root, quick=options.quick, progress=progress
        )

    stack_result: StackOverhead | None = None
    llamacpp_stack: StackOverhead | None = None
    report_result: ReportTime | None = None
    if client is not None:
        try:
            image, image_s = overhead.harness_image(client, progress)
            if "stack" in sections:
                reps = 5 if options.quick else 15
                stack_result = overhead.measure_stack(client, image, image_s, repetitions=reps, progress=progress)
        except HarnessError as exc:
            notes.append(f"stack overhead not measured: {exc}")
        if "stack" in sections:
            try:
                engine_vars, engine_image, engine_s = overhead.llamacpp_stack_variables(client, progress)
                reps = 5 if options.quick else 15
                llamacpp_stack = overhead.measure_stack(
                    client, engine_image, engine_s, repetitions=reps, progress=progress,
                    backend="llamacpp", engine_vars=engine_vars,
                )  # fmt: skip
            except HarnessError as exc:
                notes.append(f"llama.cpp stack overhead not measured: {exc}")
        if "report" in sections:
            try:
                report_result = overhead.measure_report(cwd=options.repo_root, progress=progress)
            except HarnessError as exc:
                notes.append(f"whole-report time not measured: {exc}")
    elif {"stack", "report"} & set(sections):
        notes.append("stack overhead and whole-report time not measured: no Docker engine")

    scheduling_result = None
    if "scheduling" in sections:
        try:
            scheduling_result = scheduling.measure_scheduling(
                experiments_dir=options.repo_root / "experiments", quick=options.quick, progress=progress
            )
        except HarnessError as exc:
            notes.append(f"scheduling overhead not measured: {exc}")

    results = BenchResults(
        created_at=created.isoformat(timespec="seconds"),
        command=options.command,
        quick=options.quick,
        only=list(options.only),
        duration_s=time.monotonic() - started,
        kit=kit,
        machine=finish_machine(machine),
        clients=client_rows,
        efficiency=efficiency_rows,
        stack=stack_result,
        stack_llamacpp=llamacpp_stack,
        report=report_result,
        peer=peer_result,
        scheduling=scheduling_result,
        notes=notes,
    )
    results = results.model_copy(update={"verdicts": judge(results)})
    return results, _write(results, options)


def _peer(options: BenchOptions, progress: Progress) -> tuple[PeerResult, clients_mod.PeerHook | None]:
    try:
        installed = peer.ensure_peer(options.repo_root, options.python, progress)
    except BenchError as exc:
        return PeerResult(name=peer.NAME, version=peer.VERSION, status="unavailable", reason=str(exc)), None

    def hook(sim: Any, plan: clients_mod.RatePlan) -> ClientRow:
        offset = time.time_ns() - time.monotonic_ns()
        try:
            records = peer.run_peer(installed, sim, requests=plan.calls)
            requests, emitted = sim.truth()
            errors = peer.peer_errors(records, requests, emitted, plan.rate_tps, wall_minus_monotonic_ns=offset)
            return clients_mod.row(peer.NAME, plan, errors)
        except (BenchError, TruthError) as exc:
            return clients_mod.row(peer.NAME, plan, [], error=str(exc))

    result = PeerResult(name=peer.NAME, version=peer.VERSION, status="ok", setup_s=installed.setup_s)
    return result, hook


def _write(results: BenchResults, options: BenchOptions) -> list[Path]:
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(results.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return [options.out]
    directory = options.repo_root / RESULTS_DIR
    if not options.publishes:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{utc_stamp(dt.datetime.fromisoformat(results.created_at))}-partial.json"
        path.write_text(results.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return [path]
    stamped, latest = write_results(results, directory)
    docs = options.repo_root / DOCS
    text = docs.read_text(encoding="utf-8") if docs.is_file() else "# Benchmarks\n"
    docs.write_text(table.replace_block(text, table.render(results)), encoding="utf-8")
    return [stamped, latest, docs]
