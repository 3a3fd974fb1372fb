"""The edge: parses verbs, builds Settings once, prints ``Error:`` and picks exit codes.

Exit codes: 0 ok, 1 run failures, 2 bad input (nothing started, nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.agents.command import run_agent
from harness.cli_images import images_verb, model_verb
from harness.cli_parser import build_parser
from harness.console import RunBar, say
from harness.errors import EXIT_OK, EXIT_RUN_FAILURE, BadInputError, HarnessError, Terminated
from harness.settings import Settings, load_settings

if TYPE_CHECKING:
    from harness.run.model_prep import ModelRequest


def _plan(args: argparse.Namespace, settings: Settings) -> int:
    from harness.protocol.plan import expand
    from harness.protocol.spec import load_spec, spec_path
    from harness.run.reproduce import select_configs

    spec = load_spec(spec_path(settings.experiments_dir, args.report))
    ids = select_configs(spec.configs, args.configs)
    plan = expand(spec, runs_per_config=args.runs, config_ids=ids)
    if args.json:
        print(json.dumps(plan.model_dump(mode="json"), indent=2))
        return EXIT_OK
    for run in plan.runs:
        options = " | ".join(json.dumps(a.wire_options(), sort_keys=True) for a in run.agents)
        print(f"{run.run_id}  {run.kind:<10} {run.config_id:<40} {run.runtime:<16} rep {run.repetition}  {options}")
    counts = {k: len(plan.of_kind(k)) for k in ("protocol", "isolated", "diagnostic")}
    print(f"{len(plan.runs)} runs: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return EXIT_OK


def _specs(settings: Settings) -> int:
    from harness.protocol.plan import expand
    from harness.protocol.spec import load_spec

    paths = sorted(settings.experiments_dir.glob("tr*.toml"))
    if not paths:
        raise BadInputError(f"no specs in {settings.experiments_dir}", hint="set HARNESS_EXPERIMENTS_DIR")
    for path in paths:
        spec = load_spec(path)
        plan = expand(spec)
        print(
            f"{spec.id} ({spec.version}) {spec.kind:<16} {len(spec.configs):>3} configs, {len(spec.claims):>2} claims, "
            f"{len(plan.protocol)} protocol runs + {len(plan.of_kind('isolated'))} isolated"
            f" + {len(plan.of_kind('diagnostic'))} diagnostic"
        )
    return EXIT_OK


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    from harness.analysis.report import build_report_from_import
    from harness.analysis.verdicts import verdict_table
    from harness.protocol.spec import load_spec, spec_path

    spec = load_spec(spec_path(settings.experiments_dir, args.report))
    if not args.import_csv.is_file():
        raise BadInputError(
            f"no such file: {args.import_csv}",
            hint="pass an originals' CSV: shared/reference/data/*.csv (copied in tests/fixtures/reference-data/)",
        )
    result = build_report_from_import(args.import_csv, spec, args.out or settings.artifacts_dir / f"{spec.id}-import")
    print(verdict_table(result.verdicts))
    print(f"report written to {result.markdown}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from harness.analysis.report import build_report

    if not (args.dir / "sweep.json").is_file():
        raise BadInputError(f"{args.dir} is not an artifact folder (no sweep.json)", hint="pass artifacts/<id>")
    result = build_report(args.dir, model_bytes=args.model_bytes)
    print(f"report written to {result.markdown}")
    return EXIT_OK


def _bench(args: argparse.Namespace, command: list[str]) -> int:
    from rich.console import Console

    from harness.bench.runner import BenchOptions, check_options, run_bench

    only = check_options(args.only)
    if args.out is not None and args.out.is_dir():
        raise BadInputError(f"--out {args.out} is a folder", hint="pass a file path, e.g. /tmp/bench.json")
    console = Console(stderr=True)
    start = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - start:6.1f} s[/] {message}")

    options = BenchOptions(repo_root=Path.cwd(), command=command, quick=args.quick, only=only, out=args.out)
    results, written = run_bench(options, progress)
    for verdict in results.verdicts:
        mark = {True: "[green]met[/]", False: "[red]missed[/]", None: "[yellow]not measured[/]"}[verdict.met]
        console.print(f"{mark:>24}  {verdict.target}: {verdict.measured}")
    for path in written:
        console.print(f"wrote {path}")
    return EXIT_OK


def _corpus(args: argparse.Namespace) -> int:
    from harness.protocol import corpus

    files = corpus.generate()
    if args.write:
        for rel, data in files.items():
            target = args.dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        print(f"wrote {len(files)} files to {args.dir}; sha256 {corpus.corpus_sha256(files)}")
        return EXIT_OK
    on_disk = {p.relative_to(args.dir).as_posix(): p.read_bytes() for p in args.dir.rglob("*") if p.is_file()}
    if on_disk != files:
        differ = sorted(set(on_disk) ^ set(files) | {k for k in files if on_disk.get(k) != files[k]})
        print(f"corpus in {args.dir} differs from the generator in {len(differ)} file(s): {differ[:5]}")
        return EXIT_RUN_FAILURE
    print(f"corpus ok: {len(files)} files, sha256 {corpus.corpus_sha256(files)}")
    return EXIT_OK


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    from harness.containers import engine
    from harness.evidence import doctor
    from harness.evidence.telemetry import nvml_session
    from harness.protocol.spec import load_spec, spec_path

    if args.report and args.model:
        raise BadInputError("pass --report or --model, not both")
    if args.report:
        spec = load_spec(spec_path(settings.experiments_dir, args.report))
        need = doctor.ModelNeed.of_report(spec.model.name, spec.topology.gpus())
    else:
        need = doctor.ModelNeed.of(args.model or "gemma3:latest")
    with nvml_session() as nvml:
        diagnosis = doctor.diagnose(nvml=nvml, connect=engine.connect, need=need, require_gpu=args.require_gpu)
    if args.json:
        sys.stdout.write(doctor.render_json(diagnosis))
    elif sys.stdout.isatty():
        doctor.render_rich(diagnosis, Console())
    else:
        sys.stdout.write(doctor.render_plain(diagnosis))
    return diagnosis.exit_code


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    from harness.run.by_hand import stack_down, stack_up
    from harness.settings import load_server_settings

    if args.action == "down":
        report = stack_down(args.name)
        print(f"removed {len(report.containers)} container(s), {len(report.networks)} network(s)")
        return EXIT_RUN_FAILURE if report.failed else EXIT_OK
    for port in (args.port, args.port2):
        if not 1 <= port <= 65535:
            raise BadInputError(f"port {port} is out of range", hint="pick a port between 1 and 65535")
    up = stack_up(
        settings,
        load_server_settings(),
        topology=args.topology,
        model=args.model,
        ports=(args.port, args.port2),
        progress=say(Console(stderr=True)),
    )
    for service, url in up.urls.items():
        print(f"{service}: {url}")
    print(f"stack {up.name} is up ({up.backend}); remove it with `invoke stack.down`")
    return EXIT_OK


_BUNDLE_FIXES = {
    "--report": "report",
    "--backend": "backend",
    "--runs": "runs",
    "--configs": "configs",
    "--time-scale": "time_scale",
    "--interleave-seed": "interleave_seed",
    "--no-isolated": "no_isolated",
    "--across-hosts": "across_hosts",
    "--extend": "extend",
    "--llamacpp-device": "llamacpp_device",
}
"""Flags that change what runs: a bundle re-runs its plan as it was made, so none of them may come with it."""


def _model_request(args: argparse.Namespace) -> ModelRequest:
    from harness.run.model_prep import ModelRequest

    return ModelRequest(pull=args.pull, repull=args.repull, digest=args.model_digest)


def _reproduce(args: argparse.Namespace, settings: Settings, command: list[str]) -> int:
    """``reproduce --report trNNN`` or ``reproduce --bundle FILE``: one pipeline (harness.run.reproduce)."""
    from rich.console import Console

    from harness.run.reproduce import BundleRequest, Request, SpecRequest, reproduce

    request: Request
    if args.bundle is not None:
        given = [flag for flag, name in _BUNDLE_FIXES.items() if getattr(args, name) not in (None, False)]
        if given:
            raise BadInputError(
                f"--bundle re-runs the bundled plan as it was made; {', '.join(given)} cannot change it",
                hint="drop them",
            )
        if args.executor == "ray":
            raise BadInputError("--executor ray does not re-run bundles", hint="use --executor docker for a bundle")
        request = BundleRequest(
            args.bundle,
            executor=args.executor,
            out=args.out,
            command=tuple(command),
            accept_compose=args.accept_bundle_compose,
            model=_model_request(args),
        )
    elif args.report is None:
        raise BadInputError("reproduce needs --report trNNN (or --bundle FILE)")
    else:
        request = SpecRequest(
            args.report,
            executor=args.executor,
            across_hosts=args.across_hosts,
            runs=args.runs,
            configs=args.configs,
            include_isolated=not args.no_isolated,
            interleave_seed=args.interleave_seed,
            extend=args.extend,
            out=args.out,
            command=tuple(command),
            model=_model_request(args),
        )
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    bar = RunBar(console, f"{args.report or 'bundle'} runs")
    try:
        outcome = reproduce(request, settings, say(console), on_run=bar)
    finally:
        bar.close()
    print(
        f"{outcome.completed_runs}/{outcome.planned_runs} runs complete in {outcome.out_dir} "
        f"({outcome.runs_this_time} this time, {outcome.failures} failed)"
    )
    print(f"report: {outcome.report_markdown}")
    print(f"manifest: {outcome.manifest}")
    return EXIT_OK if outcome.failures == 0 else EXIT_RUN_FAILURE


def _readable_folder(folder: Path) -> None:
    """``--against``: a folder whose sweep.json (and provenance.json, when present) read back, or bad input."""
    from harness.artifacts import load_json_doc, load_sweep
    from harness.errors import ArtifactError
    from harness.evidence.provenance import PROVENANCE_FILE

    if not (folder / "sweep.json").is_file():
        raise BadInputError(f"{folder} is not an artifact folder (no sweep.json)", hint="pass --against DIR")
    try:
        load_sweep(folder)
        if (folder / PROVENANCE_FILE).exists():
            load_json_doc(folder / PROVENANCE_FILE)  # readable JSON; its keys are compared as they are
    except ArtifactError as exc:  # a truncated or edited file: nothing to compare against
        raise BadInputError(
            f"--against {folder} is not a readable artifact folder: {exc}", hint="pass another folder"
        ) from None


def _verify(args: argparse.Namespace) -> int:
    """``verify DIR [--against DIR2]``: exit 0 when every file and schema version checks out, 1 otherwise."""
    from rich.console import Console

    from harness.evidence.verify import describe_drift, describe_verification, environment_drift, verify_folder

    if args.against is not None:
        _readable_folder(args.against)
    result = verify_folder(args.dir)
    console = Console(highlight=False, soft_wrap=True)
    *details, verdict = describe_verification(result)
    for line in details:
        console.print(line, markup=False, style=None if line.startswith("environment") else "red")
    console.print(verdict, markup=False, style="bold green" if result.ok else "bold red")
    if args.against is not None:
        for line in describe_drift(environment_drift(args.dir, args.against), str(args.dir), str(args.against)):
            console.print(line, markup=False)
    return EXIT_OK if result.ok else EXIT_RUN_FAILURE


def _compare(args: argparse.Namespace) -> int:
    """``compare A B``: exit 0 with the comparison on stdout; 2 when the folders cannot be compared."""
    from harness.atomic import write_text_atomic
    from harness.compare import compare_folders, to_json, to_markdown

    for folder in (args.a, args.b):
        if not (folder / "sweep.json").is_file():
            raise BadInputError(f"{folder} is not an artifact folder (no sweep.json)", hint="pass artifacts/<id>")
    result = compare_folders(args.a, args.b, allow_mixed=args.allow_mixed)
    markdown, document = to_markdown(result), to_json(result)
    if args.out is not None:
        write_text_atomic(args.out / "comparison.md", markdown)
        write_text_atomic(args.out / "comparison.json", document)
    print(document if args.json else markdown, end="")
    return EXIT_OK


def _bundle(args: argparse.Namespace) -> int:
    """``bundle DIR [--out FILE]``: prints the bundle's path, contents and sha256 (what a reviewer compares)."""
    from rich.console import Console

    from harness.containers import engine
    from harness.evidence import bundle

    if not args.dir.is_dir():
        raise BadInputError(f"no artifact folder {args.dir}", hint="pass artifacts/<id>")
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    out = args.out or bundle.default_bundle_path(args.dir.resolve())
    result = bundle.create_bundle(
        args.dir, out, connect=engine.connect, progress=lambda line: console.print(line, markup=False)
    )
    index, size_mb = result.index, result.size_bytes / 1e6
    print(f"bundle {result.path}: {len(index.members)} files, {len(index.images)} image(s), {size_mb:.1f} MB")
    print(f"sha256 {result.sha256}")
    return EXIT_OK


_SETTING_FLAGS = (
    "backend",
    "time_scale",
    "read_timeout_s",
    "connect_timeout_s",
    "call_deadline_s",
    "model_file",
    "llamacpp_device",
)
"""Command-line flags that override a setting of the same name (Settings is built once, in :func:`main`)."""


_VERBS: dict[str, Callable[[argparse.Namespace, Settings, list[str]], int]] = {
    "agent": lambda args, settings, _: run_agent(args, settings),
    "plan": lambda args, settings, _: _plan(args, settings),
    "stack": lambda args, settings, _: _stack(args, settings),
    "reproduce": _reproduce,
    "analyze": lambda args, settings, _: _analyze(args, settings),
    "report": lambda args, _settings, _: _report(args),
    "build": lambda args, _settings, _: images_verb(args),
    "model": lambda args, _settings, _: model_verb(args),
    "images": lambda args, _settings, _: images_verb(args),
    "clean": lambda args, _settings, _: images_verb(args),
    "specs": lambda _args, settings, _: _specs(settings),
    "corpus": lambda args, _settings, _: _corpus(args),
    "doctor": lambda args, settings, _: _doctor(args, settings),
    "verify": lambda args, _settings, _: _verify(args),
    "bundle": lambda args, _settings, _: _bundle(args),
    "compare": lambda args, _settings, _: _compare(args),
    "bench": lambda args, _settings, command: _bench(args, ["python", "-m", "harness", *command]),
}
"""One function per verb: (parsed arguments, the Settings built once, the command line as typed) → exit code."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = list(argv) if argv is not None else sys.argv[1:]
    from harness.run.sweep_guard import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            settings = load_settings(**{name: getattr(args, name, None) for name in _SETTING_FLAGS})
            verb = _VERBS.get(args.verb)
            if verb is None:
                raise BadInputError(f"unknown verb {args.verb}")
            return verb(args, settings, command)
    except HarnessError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print(
            "Error: terminated (SIGTERM); completed runs are kept, re-run the same command to resume", file=sys.stderr
        )
        return 143
    except BrokenPipeError:
        # The reader closed early (`plan | head`): what it read is what it wanted. Point stdout at /dev/null so
        # the interpreter's final flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("Error: interrupted; completed runs are kept, re-run the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # a disk that filled or a folder that turned read-only mid-way: completed runs are kept
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"Error: {exc.strerror or exc}{where}: free space or fix permissions, then re-run to resume",
            file=sys.stderr,
        )
        return EXIT_RUN_FAILURE
