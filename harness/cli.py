"""The edge: parses verbs, builds Settings once, prints ``Error:`` and picks exit codes.

Exit codes: 0 ok, 1 run failures, 2 bad input (nothing started, nothing written).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILURE, BadInputError, HarnessError
from harness.settings import Settings, load_settings

OPTION_FLAGS = ("num-gpu", "num-ctx", "temperature", "top-p", "top-k", "repeat-penalty")
_INT_OPTIONS = {"num_gpu", "num_ctx", "top_k"}


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; make its message start with ``Error:`` like ours."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"Error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _add_option_flags(parser: argparse.ArgumentParser, prefix: str, what: str) -> None:
    for flag in OPTION_FLAGS:
        kind: Callable[[str], Any] = int if flag.replace("-", "_") in _INT_OPTIONS else float
        parser.add_argument(f"--{prefix}-{flag}", type=kind, default=None, help=f"{what}: Ollama option {flag}")


def _options(args: argparse.Namespace, prefix: str) -> dict[str, float | int] | None:
    out: dict[str, float | int] = {}
    for flag in OPTION_FLAGS:
        value = getattr(args, f"{prefix}_{flag.replace('-', '_')}")
        if value is not None:
            out[flag.replace("-", "_")] = value
    return out or None


def _scenario(value: str) -> str:
    name = value.replace("-", "_")
    allowed = ("baseline_vs_chimera", "chimera_hetero", "chimera_homo")
    if name not in allowed:
        raise argparse.ArgumentTypeError(f"unknown scenario {value!r}; allowed: {', '.join(allowed)}")
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Chimeraforge reproducibility kit")
    parser.add_argument("--version", action="version", version=f"chimeraforge-kit {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    agent = verbs.add_parser("agent", help="run a Python agent directly against given Ollama URLs (no Docker)")
    kinds = agent.add_subparsers(dest="agent_kind", required=True, parser_class=_Parser)
    for sub in (
        kinds.add_parser("single", help="baseline and/or chimera agent against one server"),
        kinds.add_parser("multi", help="collector and insight agents concurrently"),
    ):
        sub.add_argument("--model", default="gemma3:latest")
        sub.add_argument("--output-dir", required=True, help="records.jsonl is appended here; '-' writes to stdout")
        sub.add_argument("--prompts", type=Path, default=Path("experiments/prompts"))
        sub.add_argument("--corpus", type=Path, default=Path("experiments/corpus"))
        sub.add_argument("--workflow", choices=("two_call", "one_call", "single_call"), default="two_call")
        sub.add_argument("--no-stream", action="store_true", help="non-streaming calls (TR109)")
        sub.add_argument("--run-id", default=None, help="plan run id to stamp on every record")
        _add_option_flags(sub, "chimera", "chimera agent (A in multi-agent hetero/homo)")
    single, multi = kinds.choices["single"], kinds.choices["multi"]
    single.add_argument("--base-url", default="http://127.0.0.1:11434")
    single.add_argument(
        "--agents",
        default="baseline,chimera",
        help="roles in order, e.g. chimera,baseline; every role but baseline sends the --chimera-* options",
    )
    single.add_argument("--runs", type=int, default=1)
    single.add_argument("--pause-s", type=float, default=2.0, help="pause between runs (the originals: 2 s)")
    single.add_argument("--cooldown-s", type=float, default=0.0, help="pause between the agents of one run")
    single.add_argument("--unload-between-runs", action="store_true")
    multi.add_argument("--collector-ollama-url", default="http://127.0.0.1:11434")
    multi.add_argument("--insight-ollama-url", default="http://127.0.0.1:11435")
    multi.add_argument("--scenario", type=_scenario, default="baseline_vs_chimera")
    _add_option_flags(multi, "chimera2", "insight agent B in chimera-hetero")

    plan = verbs.add_parser("plan", help="print the runs a report expands to")
    plan.add_argument("--report", required=True)
    plan.add_argument("--runs", type=int, default=None, help="repetitions per config (default: the spec's)")
    plan.add_argument("--configs", default=None, help="regular expression over config ids")
    plan.add_argument("--json", action="store_true")

    verbs.add_parser("specs", help="validate every experiment spec and show its run counts")
    verbs.add_parser("build", help="build the kit's images (offline Debian base when no registry answers)")
    images = verbs.add_parser("images", help="image maintenance")
    images.add_argument("action", choices=("base", "lock"), help="base: bootstrap the Debian base; lock: pin digests")
    clean = verbs.add_parser("clean", help="remove containers, networks and run volumes a crash left behind")
    clean.add_argument("--run-id", default=None, help="only this run's")

    rep = verbs.add_parser("reproduce", help="run a report's protocol and write artifacts")
    rep.add_argument("--report", required=True, help="trNNN")
    rep.add_argument("--backend", choices=("auto", "ollama", "sim"), default=None, help="default: HARNESS_BACKEND")
    rep.add_argument("--runs", type=int, default=None, help="repetitions per config (default: the spec's)")
    rep.add_argument("--configs", default=None, help="regular expression over config ids")
    rep.add_argument("--time-scale", type=float, default=None, help="simulator: multiply every delay")
    rep.add_argument("--out", type=Path, default=None, help="artifact folder (default: artifacts/<report>-<backend>)")
    rep.add_argument("--no-isolated", action="store_true", help="skip the isolated baselines (no true efficiency)")
    rep.add_argument(
        "--executor",
        choices=("docker", "local"),
        default="docker",
        help="docker: one compose stack per run (default); local: in-process simulated servers, no Docker",
    )
    rep.add_argument("--interleave-seed", type=int, default=None, help="shuffle the runs reproducibly")

    analyze = verbs.add_parser("analyze", help="recompute a report's published figures from original records")
    analyze.add_argument("--import", dest="import_csv", type=Path, required=True, help="originals' per-run CSV")
    analyze.add_argument("--report", required=True, help="trNNN: the spec whose claims are judged")
    analyze.add_argument("--out", type=Path, default=None, help="also write a full report to this folder")

    report = verbs.add_parser("report", help="rebuild report.md/report.html and figures from an artifact folder")
    report.add_argument("dir", type=Path)
    report.add_argument("--model-bytes", type=float, default=None, help="for the bandwidth roofline")

    bench = verbs.add_parser("bench", help="measure the kit's own error and overhead; write benchmarks/results/")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke run (publishes nothing)")
    bench.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="repeatable: clients, peer, efficiency, stack, report (a partial run publishes nothing)",
    )
    bench.add_argument("--out", type=Path, default=None, help="write the results here instead (publishes nothing)")

    corpus = verbs.add_parser("corpus", help="check (default) or rewrite the committed corpus")
    corpus.add_argument("--write", action="store_true")
    corpus.add_argument("--dir", type=Path, default=Path("experiments/corpus"))
    return parser


def _run_agent(args: argparse.Namespace, settings: Settings) -> int:
    from harness.agents.runner import SingleAgent, Timeouts, run_multi, run_single
    from harness.agents.workflow import Workload
    from harness.records import dump_record

    workload = Workload.load(
        model=args.model,
        workflow=args.workflow,
        streaming=not args.no_stream,
        prompts_dir=args.prompts,
        corpus_dir=args.corpus,
    )
    timeouts = Timeouts(settings.request_timeout_s, settings.connect_timeout_s)
    if args.output_dir == "-":
        out_ctx: Any = contextlib.nullcontext(sys.stdout)
    else:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        out_ctx = (Path(args.output_dir) / "records.jsonl").open("a", encoding="utf-8")
    with out_ctx as out:

        def sink(record: Any) -> None:
            out.write(dump_record(record) + "\n")
            out.flush()

        if args.agent_kind == "single":
            roles = [r.strip() for r in args.agents.split(",") if r.strip()]
            bad = [r for r in roles if r not in ("baseline", "chimera", "collector", "insight")]
            if bad or not roles:
                raise BadInputError(
                    f"--agents: unknown role(s) {bad or roles}",
                    hint="use baseline and/or chimera (or collector/insight)",
                )
            chimera = _options(args, "chimera")
            agents = [SingleAgent(role=r, options=chimera if r != "baseline" else None) for r in roles]
            records = asyncio.run(
                run_single(
                    args.base_url,
                    workload,
                    agents,
                    runs=args.runs,
                    pause_s=args.pause_s,
                    cooldown_s=args.cooldown_s,
                    unload_between_runs=args.unload_between_runs,
                    run_id=args.run_id,
                    sink=sink,
                    timeouts=timeouts,
                )
            )
            return EXIT_OK if all(r.ok for r in records) else EXIT_RUN_FAILURE
        a, b = _multi_options(args)
        multi = asyncio.run(
            run_multi(
                args.collector_ollama_url,
                args.insight_ollama_url,
                workload,
                args.scenario,
                a,
                b,
                run_id=args.run_id,
                sink=sink,
                timeouts=timeouts,
            )
        )
        return EXIT_OK if multi.ok else EXIT_RUN_FAILURE


def _multi_options(
    args: argparse.Namespace,
) -> tuple[dict[str, float | int] | None, dict[str, float | int] | None]:
    """Scenario mapping of REPORTS.md: bvc A sends nothing; homo both the chimera options; hetero B its own."""
    chimera, chimera2 = _options(args, "chimera"), _options(args, "chimera2")
    if chimera is None:
        raise BadInputError(f"--scenario {args.scenario} needs chimera options", hint="pass --chimera-num-gpu etc.")
    if args.scenario == "baseline_vs_chimera":
        return None, chimera
    if args.scenario == "chimera_homo":
        return chimera, chimera
    if chimera2 is None:
        raise BadInputError("chimera_hetero needs the insight agent's options", hint="pass --chimera2-num-gpu etc.")
    return chimera, chimera2


def _plan(args: argparse.Namespace, settings: Settings) -> int:
    from harness.plan import expand
    from harness.spec import load_spec, spec_path

    spec = load_spec(spec_path(settings.experiments_dir, args.report))
    ids = _select_configs(spec.configs, args.configs)
    plan = expand(spec, runs_per_config=args.runs, config_ids=ids)
    if args.json:
        print(json.dumps(plan.model_dump(mode="json"), indent=2))
        return EXIT_OK
    for run in plan.runs:
        options = " | ".join(json.dumps(a.options, sort_keys=True) for a in run.agents)
        print(f"{run.run_id}  {run.kind:<10} {run.config_id:<40} {run.runtime:<16} rep {run.repetition}  {options}")
    counts = {k: len(plan.of_kind(k)) for k in ("protocol", "isolated", "diagnostic")}
    print(f"{len(plan.runs)} runs: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return EXIT_OK


def _select_configs(configs: Sequence[Any], pattern: str | None) -> set[str] | None:
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


def _specs(settings: Settings) -> int:
    from harness.plan import expand
    from harness.spec import load_spec

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


def _images(args: argparse.Namespace) -> int:
    from harness import images, stack

    client = stack.connect()
    if args.verb == "clean":
        report = stack.reap(client, run_id=args.run_id, volumes=True)
        print(
            f"removed {len(report.containers)} container(s), {len(report.networks)} network(s), "
            f"{len(report.volumes)} volume(s)"
            + (f"; could not remove: {', '.join(report.failed)}" if report.failed else "")
        )
        return EXIT_RUN_FAILURE if report.failed else EXIT_OK
    if args.verb == "build":
        images.build_all(client, kit_version=__version__, python_exe=sys.executable, progress=print)
        return EXIT_OK
    pins = images.load_pins()
    if args.action == "base":
        base = images.ensure_base_image(client, pins, kit_version=__version__, progress=print)
        print(f"{base.tag} {base.image_id} ({'built' if base.built else 'present'})")
        return EXIT_OK
    lock = images.resolve_pins(pins, client=client)
    for name, locked in lock.images.items():
        print(f"{name}: {locked}")
    return EXIT_OK


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    from harness.analysis import format_summary, import_and_summarize
    from harness.report import build_report_from_import
    from harness.spec import load_spec, spec_path

    spec = load_spec(spec_path(settings.experiments_dir, args.report))
    if not args.import_csv.is_file():
        raise BadInputError(f"no such file: {args.import_csv}", hint="pass one of shared/reference/data/*.csv")
    print(format_summary(import_and_summarize(args.import_csv, spec.id, spec=spec)))
    if args.out is not None:
        result = build_report_from_import(args.import_csv, spec, args.out)
        print(f"report written to {result.markdown}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from harness.report import build_report

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
    from harness import corpus

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


def _docker_executor(settings: Settings, plan: Any, console: Any) -> Any:
    """The container executor: Ollama when Docker sees an NVIDIA GPU (backend auto/ollama), else the simulator."""
    from harness import stack
    from harness.orchestrator import DockerExecutor

    client = stack.connect()
    gpu = stack.gpu_visible(client)
    if settings.backend == "ollama":
        stack.require_gpu(client)
        raise BadInputError(
            "the Ollama backend needs the Ollama image, which needs a registry to build from",
            hint="run `invoke images.lock` and `invoke build` on a host with registry access, or use --backend sim",
        )
    if settings.backend == "auto" and not gpu:
        console.print("[bold yellow]No NVIDIA GPU visible to Docker: using the simulated backend.[/]")
    return DockerExecutor(
        client=client,
        harness_image="",
        kit_version=__version__,
        seed=settings.sim_seed,
        time_scale=settings.time_scale,
        agent_timeout_s=settings.request_timeout_s * 4,
    )


def _with_images(executor: Any, console: Any, *, rust: bool) -> Any:
    """Build (or find) the images the plan needs and point the executor at them by content-hashed tag."""
    import dataclasses

    from harness import images

    report = images.build_all(
        executor.client, kit_version=__version__, python_exe=sys.executable, rust=rust, progress=console.print
    )
    built = {i.name: i.tag for i in report.images}
    if not built.get("harness") or (rust and not built.get("rust-agent")):
        raise BadInputError("the agent images could not be built", hint="see the build output above")
    return dataclasses.replace(executor, harness_image=built["harness"], rust_image=built.get("rust-agent") or "")


def _reproduce(args: argparse.Namespace, base: Settings, command: list[str]) -> int:
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from harness.agents.runner import Timeouts
    from harness.agents.workflow import Workload
    from harness.artifacts import ArtifactDir
    from harness.orchestrator import LocalSimExecutor, prepare, run_sweep
    from harness.plan import expand
    from harness.spec import load_spec, spec_path

    settings = (
        load_settings(backend=args.backend, time_scale=args.time_scale) if (args.backend or args.time_scale) else base
    )
    if args.runs is not None and args.runs < 1:
        raise BadInputError("--runs must be at least 1")
    path = spec_path(settings.experiments_dir, args.report)
    spec = load_spec(path)
    plan = expand(
        spec,
        runs_per_config=args.runs,
        config_ids=_select_configs(spec.configs, args.configs),
        include_isolated=not args.no_isolated,
        interleave_seed=args.interleave_seed,
    )
    console = Console(stderr=True)
    executor: Any
    if args.executor == "docker":
        executor = _docker_executor(settings, plan, console)
    else:
        if settings.backend == "ollama":
            raise BadInputError("the local executor only runs the simulator", hint="use --executor docker")
    console.print(
        "[bold yellow]SIMULATED: a rehearsal of the protocol against the simulated Ollama, not a measurement.[/]"
    )
    workload = Workload.load(
        model=spec.model.name,
        workflow=spec.agent.workflow if spec.agent else "single_call",
        streaming=spec.agent.streaming if spec.agent else True,
        prompts_dir=settings.experiments_dir / "prompts",
        corpus_dir=settings.experiments_dir / "corpus",
    )
    if args.executor == "local":
        executor = LocalSimExecutor(
            workload=workload,
            seed=settings.sim_seed,
            time_scale=settings.time_scale,
            timeouts=Timeouts(settings.request_timeout_s, settings.connect_timeout_s),
        )
    executor.check(plan)
    if args.executor == "docker":
        console.print("checking the kit's images (built on first use; offline when no registry answers)")
        executor = _with_images(executor, console, rust=any(r.language == "rust" for r in plan.runs))
    out = ArtifactDir(args.out or settings.artifacts_dir / f"{spec.id}-sim")
    prepare(out, spec, path.read_bytes(), plan, executor, ["harness", *command])
    failures = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[current]}"),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"{spec.id} runs", total=None, current="")

        def progress(done: int, total: int, run: Any, result: Any) -> None:
            nonlocal failures
            failures += int(result is not None and result.status == "failed")
            label = f"{run.kind} {run.config_id} {run.runtime} rep {run.repetition}"
            bar.update(task, completed=done, total=total, current=f"{label}  failures: {failures}")

        # SIGTERM is handled like Ctrl-C: the in-flight run's stack is torn down, completed runs stay on disk.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        results = asyncio.run(run_sweep(out, spec, plan, executor, retries=settings.retries_per_run, progress=progress))
    done = len(out.completed_run_ids())
    console.print(f"{done}/{len(plan.runs)} runs complete in {out.root} ({len(results)} this time, {failures} failed)")
    from harness.report import build_report

    report = build_report(out.root, spec)
    console.print(f"report: {report.markdown}")
    return EXIT_OK if failures == 0 else EXIT_RUN_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.verb == "agent":
            return _run_agent(args, settings)
        if args.verb == "plan":
            return _plan(args, settings)
        if args.verb == "reproduce":
            return _reproduce(args, settings, list(argv) if argv is not None else sys.argv[1:])
        if args.verb == "analyze":
            return _analyze(args, settings)
        if args.verb == "report":
            return _report(args)
        if args.verb in ("build", "images", "clean"):
            return _images(args)
        if args.verb == "specs":
            return _specs(settings)
        if args.verb == "corpus":
            return _corpus(args)
        if args.verb == "bench":
            return _bench(args, ["python", "-m", "harness", *(list(argv) if argv is not None else sys.argv[1:])])
        raise BadInputError(f"unknown verb {args.verb}")
    except HarnessError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Error: interrupted; completed runs are kept, re-run the same command to resume", file=sys.stderr)
        return 130
