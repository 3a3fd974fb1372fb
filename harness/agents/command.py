"""``harness agent single|multi``: the Python agents' command line, the one the container executor launches.

The Rust agents (``chimeraforge-agent``, ``chimeraforge-multi``) take the same flags; the option flags of both
derive from the spec's ``Options`` (:mod:`harness.protocol.flags`), and a test checks the Rust side against them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness.bounds import number
from harness.errors import EXIT_OK, EXIT_RUN_FAILURE, BadInputError
from harness.protocol.flags import OPTION_KINDS, OPTION_NAMES, OptionValues, option_flag
from harness.protocol.spec import MAX_RUNS_PER_CONFIG
from harness.settings import MAX_TIMEOUT_S, Settings

if TYPE_CHECKING:
    from harness.agents.runner import Timeouts
    from harness.agents.workflow import RecordSink, Workload
    from harness.records import AgentRunRecord, CallRecord, MultiRunRecord

SCENARIOS = ("baseline_vs_chimera", "chimera_hetero", "chimera_homo")
ROLES = ("baseline", "chimera", "collector", "insight")


def _scenario(value: str) -> str:
    name = value.replace("-", "_")
    if name not in SCENARIOS:
        raise argparse.ArgumentTypeError(f"unknown scenario {value!r}; allowed: {', '.join(SCENARIOS)}")
    return name


_SECONDS = number(float, 0.0, MAX_TIMEOUT_S)
_TIMEOUT = number(float, 0.0, MAX_TIMEOUT_S, low_open=True)


def _add_option_flags(parser: argparse.ArgumentParser, prefix: str, what: str) -> None:
    for name in OPTION_NAMES:
        flag = option_flag(prefix, name)
        kind = number(OPTION_KINDS[name], -(2.0**63), 2.0**63)  # finite; the server judges the value itself
        parser.add_argument(flag, type=kind, default=None, help=f"{what}: Ollama option {name}")


def _options(args: argparse.Namespace, prefix: str) -> OptionValues | None:
    out: OptionValues = {}
    for name in OPTION_NAMES:
        value = getattr(args, f"{prefix}_{name}")
        if value is not None:
            out[name] = value
    return out or None


def add_agent_verb(verbs: argparse._SubParsersAction[Any]) -> None:
    """The ``agent`` verb and its ``single`` and ``multi`` kinds."""
    agent = verbs.add_parser("agent", help="run a Python agent directly against given Ollama URLs (no Docker)")
    kinds = agent.add_subparsers(dest="agent_kind", required=True, parser_class=type(agent))
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
        sub.add_argument(
            "--engine", choices=("ollama", "llamacpp"), default="ollama", help="server API: Ollama or llama.cpp"
        )
        sub.add_argument("--max-tokens", type=int, default=None, help="explicit token budget of every call")
        sub.add_argument("--run-id", default=None, help="plan run id to stamp on every record")
        sub.add_argument(
            "--connect-timeout-s", type=_TIMEOUT, default=None, help="TCP connect timeout (HARNESS_CONNECT_TIMEOUT_S)"
        )
        sub.add_argument(
            "--read-timeout-s", type=_TIMEOUT, default=None, help="per-read idle timeout (HARNESS_READ_TIMEOUT_S)"
        )
        sub.add_argument(
            "--call-deadline-s", type=_TIMEOUT, default=None, help="whole-call deadline (HARNESS_CALL_DEADLINE_S)"
        )
        _add_option_flags(sub, "chimera", "chimera agent (A in multi-agent hetero/homo)")
    single, multi = kinds.choices["single"], kinds.choices["multi"]
    single.add_argument("--base-url", default="http://127.0.0.1:11434")
    single.add_argument(
        "--agents",
        default="baseline,chimera",
        help="roles in order, e.g. chimera,baseline; every role but baseline sends the --chimera-* options",
    )
    single.add_argument("--runs", type=number(int, 1, MAX_RUNS_PER_CONFIG), default=1)
    single.add_argument("--pause-s", type=_SECONDS, default=2.0, help="pause between runs (the originals: 2 s)")
    single.add_argument("--cooldown-s", type=_SECONDS, default=0.0, help="pause between the agents of one run")
    single.add_argument("--unload-between-runs", action="store_true")
    multi.add_argument("--collector-ollama-url", default="http://127.0.0.1:11434")
    multi.add_argument("--insight-ollama-url", default="http://127.0.0.1:11435")
    multi.add_argument("--scenario", type=_scenario, default="baseline_vs_chimera")
    _add_option_flags(multi, "chimera2", "insight agent B in chimera-hetero")


def run_agent(args: argparse.Namespace, settings: Settings) -> int:
    """Run the agent the parsed ``agent`` verb describes; exit 0 when every call succeeded, 1 otherwise."""
    # Imported here, not at the top: every CLI invocation builds this verb's parser, few run an agent.
    from harness.agents.runner import Timeouts, run_multi
    from harness.agents.workflow import Workload
    from harness.records import dump_record

    workload = Workload.load(
        model=args.model,
        workflow=args.workflow,
        streaming=not args.no_stream,
        prompts_dir=args.prompts,
        corpus_dir=args.corpus,
        engine=args.engine,
        max_tokens=args.max_tokens,
    )
    timeouts = Timeouts(settings.read_timeout_s, settings.connect_timeout_s, settings.call_deadline_s)
    out_ctx: contextlib.AbstractContextManager[IO[str]]
    if args.output_dir == "-":
        out_ctx = contextlib.nullcontext(sys.stdout)
    else:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        out_ctx = (Path(args.output_dir) / "records.jsonl").open("a", encoding="utf-8")
    with out_ctx as out:

        def sink(record: CallRecord | AgentRunRecord | MultiRunRecord) -> None:
            out.write(dump_record(record) + "\n")
            out.flush()

        if args.agent_kind == "single":
            return _single(args, workload, timeouts, sink)
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


def _single(args: argparse.Namespace, workload: Workload, timeouts: Timeouts, sink: RecordSink) -> int:
    from harness.agents.runner import SingleAgent, run_single

    roles = [r.strip() for r in args.agents.split(",") if r.strip()]
    bad = [r for r in roles if r not in ROLES]
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


def _multi_options(args: argparse.Namespace) -> tuple[OptionValues | None, OptionValues | None]:
    """The originals' scenarios: baseline_vs_chimera, A sends nothing and B the chimera options; chimera_homo,
    both the chimera options; chimera_hetero, A the chimera options and B its own (``--chimera2-*``)."""
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
