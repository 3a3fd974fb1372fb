"""The command line's grammar: every verb and flag, typed and bounded, for :mod:`harness.cli` to act on.

Kept apart from the verbs' actions so that the edge reads as "parse, build Settings once, call, print"; argparse
errors become one ``Error:`` line with exit 2, like every other bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from harness import __version__
from harness.agents.command import add_agent_verb
from harness.bounds import folder_path, number
from harness.errors import EXIT_BAD_INPUT
from harness.protocol.spec import MAX_RUNS_PER_CONFIG
from harness.settings import MAX_TIME_SCALE

_RUNS = number(int, 1, MAX_RUNS_PER_CONFIG)
_PORT = number(int, 1, 65535)


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; make its message start with ``Error:`` like ours."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"Error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _add_reproduce(verbs: argparse._SubParsersAction[_Parser]) -> None:
    """The ``reproduce`` verb: a report's protocol or a bundle's plan, into one sweep folder."""
    rep = verbs.add_parser("reproduce", help="run a report's protocol and write artifacts")
    rep.add_argument("--report", default=None, help="trNNN (required unless --bundle)")
    rep.add_argument(
        "--bundle", type=Path, default=None, help="re-run a bundle's plan with its exact images (see `bundle`)"
    )
    rep.add_argument(
        "--backend", choices=("auto", "ollama", "sim", "llamacpp"), default=None, help="default: HARNESS_BACKEND"
    )
    rep.add_argument(
        "--model-file", type=Path, default=None, help="llamacpp: GGUF weights to serve (default: the tiny test model)"
    )
    rep.add_argument(
        "--llamacpp-device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="llamacpp: where the servers compute (auto: cuda when Docker sees an NVIDIA GPU)",
    )
    rep.add_argument("--runs", type=_RUNS, default=None, help="repetitions per config (default: the spec's)")
    rep.add_argument("--configs", default=None, help="regular expression over config ids")
    rep.add_argument(
        "--time-scale",
        type=number(float, 0.0, MAX_TIME_SCALE, low_open=True),
        default=None,
        help=f"simulator: multiply every delay (0 < x ≤ {MAX_TIME_SCALE:g})",
    )
    rep.add_argument(
        "--out", type=folder_path, default=None, help="artifact folder (default: artifacts/<report>-<backend>)"
    )
    rep.add_argument(
        "--accept-bundle-compose",
        action="store_true",
        help="--bundle: run its compose files even where they differ from this kit's (the difference is shown first)",
    )
    rep.add_argument(
        "--extend",
        action="store_true",
        help="grow the sweep in --out (more --runs, more --configs, isolated baselines): recorded in sweep.json",
    )
    rep.add_argument("--no-isolated", action="store_true", help="skip the isolated baselines (no true efficiency)")
    rep.add_argument(
        "--executor",
        choices=("docker", "local", "ray"),
        default="docker",
        help="docker: one compose stack per run (default); local: in-process simulated servers, no Docker; "
        "ray: each run's stack on a node of the Ray cluster at RAY_ADDRESS (docs/cluster.md)",
    )
    rep.add_argument(
        "--across-hosts",
        action="store_true",
        help="ray: admit nodes of different environments and report the spread between hosts beside within",
    )
    rep.add_argument(
        "--interleave-seed", type=number(int, 0, 2**63 - 1), default=None, help="shuffle the runs reproducibly"
    )
    rep.add_argument(
        "--pull", action="store_true", help="allow pulling the model from the registry (default: HARNESS_ALLOW_PULL)"
    )
    rep.add_argument("--repull", action="store_true", help="pull even when the store has the model (with --pull)")
    rep.add_argument("--model-digest", default=None, help="pin the model's digest (overrides the spec's)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Chimeraforge reproducibility kit")
    parser.add_argument("--version", action="version", version=f"chimeraforge-kit {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    add_agent_verb(verbs)

    plan = verbs.add_parser("plan", help="print the runs a report expands to")
    plan.add_argument("--report", required=True)
    plan.add_argument("--runs", type=_RUNS, default=None, help="repetitions per config (default: the spec's)")
    plan.add_argument("--configs", default=None, help="regular expression over config ids")
    plan.add_argument("--json", action="store_true")

    verbs.add_parser("specs", help="validate every experiment spec and show its run counts")
    build = verbs.add_parser("build", help="build the kit's images (offline Debian base when no registry answers)")
    model = verbs.add_parser("model", help="test models")
    model_actions = model.add_subparsers(dest="action", required=True, parser_class=_Parser)
    model_actions.add_parser("tiny", help="write the deterministic tiny GGUF test model into the cache")
    images = verbs.add_parser("images", help="image maintenance")
    images.add_argument("action", choices=("base", "lock"), help="base: bootstrap the Debian base; lock: pin digests")
    for sub in (build, images):
        sub.add_argument(
            "--install-debootstrap",
            action="store_true",
            help="install debootstrap with apt-get when the offline base needs it (changes the host; root)",
        )
    clean = verbs.add_parser(
        "clean", help="remove the stacks whose controlling kit process is gone (what a crash left behind)"
    )
    clean.add_argument("--run-id", default=None, help="only this run's")
    clean.add_argument(
        "--all", dest="everything", action="store_true", help="also running sweeps, other hosts' and unlabelled ones"
    )
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed and kept; remove nothing")

    stk = verbs.add_parser("stack", help="bring a kit stack up or down by hand (ports on 127.0.0.1)")
    stk_actions = stk.add_subparsers(dest="action", required=True, parser_class=_Parser)
    up = stk_actions.add_parser("up", help="start servers that stay up until `stack down`")
    up.add_argument("--topology", choices=("single", "dual"), default="single")
    up.add_argument("--backend", choices=("auto", "ollama", "sim"), default=None, help="default: HARNESS_BACKEND")
    up.add_argument("--model", default=None, help="model the simulator preloads (default: the pinned model)")
    up.add_argument("--port", type=_PORT, default=11434, help="host port of the first server")
    up.add_argument("--port2", type=_PORT, default=11435, help="host port of the second server (dual)")
    down = stk_actions.add_parser("down", help="remove stacks started by `stack up`")
    down.add_argument("--name", default=None, help="only this project (default: every by-hand stack)")

    _add_reproduce(verbs)

    analyze = verbs.add_parser("analyze", help="judge a report's claims on the originals' own per-run records")
    analyze.add_argument("--import", dest="import_csv", type=Path, required=True, help="originals' per-run CSV")
    analyze.add_argument("--report", required=True, help="trNNN: the spec whose claims are judged")
    analyze.add_argument(
        "--out", type=folder_path, default=None, help="report folder (default: artifacts/<report>-import)"
    )

    report = verbs.add_parser("report", help="rebuild report.md/report.html and figures from an artifact folder")
    report.add_argument("dir", type=Path)
    report.add_argument(
        "--model-bytes", type=number(float, 0.0, 1e15, low_open=True), default=None, help="for the bandwidth roofline"
    )

    doctor = verbs.add_parser("doctor", help="check this host before its numbers are trusted (GPU, Docker, disk)")
    doctor.add_argument("--report", default=None, help="trNNN: check free VRAM against its model and topology")
    doctor.add_argument("--model", default=None, help="model to check free VRAM against (default gemma3:latest)")
    doctor.add_argument("--require-gpu", action="store_true", help="no NVIDIA GPU is a failure, not a warning")
    doctor.add_argument("--json", action="store_true", help="machine-readable findings")

    verify = verbs.add_parser("verify", help="re-hash an artifact folder against its manifest; compare environments")
    verify.add_argument("dir", type=Path, help="artifact folder (with manifest.json)")
    verify.add_argument("--against", type=Path, default=None, help="another artifact folder: show environment drift")

    compare = verbs.add_parser("compare", help="two reproductions of one report: differences per claim and metric")
    compare.add_argument("a", type=Path, help="artifact folder A (the reference)")
    compare.add_argument("b", type=Path, help="artifact folder B (compared with A: B − A)")
    compare.add_argument("--out", type=Path, default=None, help="also write comparison.md and comparison.json here")
    compare.add_argument("--json", action="store_true", help="print the JSON document instead of Markdown")
    compare.add_argument("--allow-mixed", action="store_true", help="compare a SIMULATED rehearsal with a measurement")

    bundle = verbs.add_parser("bundle", help="pack a verified artifact folder with its exact images for a reviewer")
    bundle.add_argument("dir", type=Path, help="artifact folder (with manifest.json)")
    bundle.add_argument(
        "--out", type=Path, default=None, help="bundle file: .tar.gz/.tgz (gzip, default <dir>.bundle.tar.gz) or .tar"
    )

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
