"""Measurement 3: the multi-agent efficiency error of every agent, against set-ups whose truth is known.

Two identical agents (chimera_homo, the two-call workflow with the corpus, forced answer length) run
concurrently against two independent simulated servers (true efficiency 100 % by either formula) and against
one server with NUM_PARALLEL=1 (a FIFO queue: calls alternate; :func:`.fidelity.ideal_efficiency`). Each
agent's isolated baselines (collector alone, insight alone, on their own servers) give the kit's true efficiency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.bench.agents import FLAWS, AgentCommands
from harness.bench.fidelity import Setup, TruthError, ideal_efficiency, measured_efficiency
from harness.bench.procs import ProcessRun, SimProcess, SimSettings, run_agent
from harness.bench.results import EfficiencyRow
from harness.bench.spread import spread
from harness.errors import BenchError
from harness.progress import Progress
from harness.records import AgentRunRecord, MultiRunRecord

WORKFLOW = "two_call"
CALLS_PER_AGENT = 2


@dataclass(frozen=True)
class EfficiencyPlan:
    rate_tps: float
    tokens: int
    repetitions: int


def plan_efficiency(quick: bool) -> EfficiencyPlan:
    """Calls of 1 s (0.25 s quick): an agent's fixed costs (ingest, start skew) weigh little against them."""
    return EfficiencyPlan(rate_tps=1000.0, tokens=250 if quick else 1000, repetitions=1 if quick else 2)


def _agent_runs(run: ProcessRun, what: str) -> list[AgentRunRecord]:
    runs = [r for r in run.records if isinstance(r, AgentRunRecord)]
    if run.exit_code != 0 or not runs or not all(r.ok for r in runs):
        raise BenchError(f"{what}: exit {run.exit_code}, {len(runs)} agent runs: {run.stderr_tail}")
    return runs


def _isolated_s(agent: str, commands: AgentCommands, sims: Sequence[SimProcess], cwd: Path) -> tuple[float, float]:
    out = []
    for role, sim in zip(("collector", "insight"), sims, strict=True):
        argv = commands.single(agent, sim.url, runs=1, workflow=WORKFLOW, role=role)
        (record,) = _agent_runs(run_agent(argv, cwd=cwd), f"{agent} isolated {role}")
        out.append((record.end_ns - record.start_ns) / 1e9)
    return out[0], out[1]


def _one_multi(
    agent: str, commands: AgentCommands, urls: tuple[str, str], cwd: Path
) -> tuple[MultiRunRecord, list[AgentRunRecord]]:
    run = run_agent(commands.multi(agent, *urls, workflow=WORKFLOW), cwd=cwd)
    runs = _agent_runs(run, f"{agent} multi")
    multis = [r for r in run.records if isinstance(r, MultiRunRecord)]
    if len(multis) != 1:
        raise BenchError(f"{agent} multi wrote {len(multis)} multi-run records")
    return multis[0], runs


def measure_efficiency(
    agents: Sequence[str], commands: AgentCommands, *, cwd: Path, quick: bool, progress: Progress
) -> list[EfficiencyRow]:
    plan = plan_efficiency(quick)
    settings = SimSettings(decode_tps=plan.rate_tps, tokens=plan.tokens, num_parallel=1)
    rows: list[EfficiencyRow] = []
    with (
        SimProcess(settings, python=commands.python, cwd=cwd) as a,
        SimProcess(settings, python=commands.python, cwd=cwd) as b,
        SimProcess(settings, python=commands.python, cwd=cwd) as shared,
    ):
        setups: dict[Setup, tuple[str, str]] = {"two_servers": (a.url, b.url), "one_server": (shared.url, shared.url)}
        for agent in agents:
            progress(f"efficiency: {agent} ({plan.repetitions} run(s) per set-up, calls of {plan.tokens} tokens)")
            try:
                iso = _isolated_s(agent, commands, (a, b), cwd)
                measured: dict[Setup, list[tuple[float, float | None]]] = {s: [] for s in setups}
                for _ in range(plan.repetitions):
                    for setup, urls in setups.items():
                        multi, runs = _one_multi(agent, commands, urls, cwd)
                        m = measured_efficiency(multi, runs, iso)
                        measured[setup].append((m.original_pct, m.true_pct))
            except (BenchError, TruthError) as exc:
                for setup in setups:
                    for formula in ("original", "true"):
                        rows.append(_row(agent, setup, formula, [], error=str(exc)))
                continue
            for setup, values in measured.items():
                rows.append(_row(agent, setup, "original", [v[0] for v in values]))
                rows.append(_row(agent, setup, "true", [v[1] for v in values if v[1] is not None]))
    return rows


def _row(agent: str, setup: Setup, formula: str, values: Sequence[float], *, error: str | None = None) -> EfficiencyRow:
    original, true = ideal_efficiency(setup, CALLS_PER_AGENT)
    truth = original if formula == "original" else true
    return EfficiencyRow(
        agent=agent,
        setup=setup,
        formula=formula,
        runs=len(values),
        true_pct=truth,
        measured_pct=spread(values),
        error_pp=spread([v - truth for v in values]),
        flaw=FLAWS.get(agent),
        error=error,
    )
