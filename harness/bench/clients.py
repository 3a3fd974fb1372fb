"""Measurements 1 and 2: every agent's TTFT and throughput error at 100, 500, 2,000 and 5,000 tokens/s.

Per rate one simulated server (real-time pacing, a fixed answer length that keeps a call near 0.2 s, no load or
prefill wait); per agent one process making ``calls`` single-call passes back to back. Every call is paired with
its server request (body hash + arrival inside the call) and compared with the emission log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.bench.agents import FLAWS, PYTHON, AgentCommands
from harness.bench.fidelity import CallError, TruthError, call_error, match_calls
from harness.bench.procs import SimProcess, SimSettings, run_agent
from harness.bench.results import ClientRow
from harness.bench.spread import spread
from harness.errors import BenchError
from harness.progress import Progress
from harness.records import CallRecord

RATES_TPS = (100.0, 500.0, 2000.0, 5000.0)
CALL_S = 0.2
MIN_TOKENS = 64


@dataclass(frozen=True)
class RatePlan:
    rate_tps: float
    tokens: int
    calls: int


def plan_rates(quick: bool, rates: Sequence[float] = RATES_TPS) -> list[RatePlan]:
    """A token count per rate that keeps a call about ``CALL_S`` long (at least ``MIN_TOKENS``), and a call count."""
    out = []
    for rate in rates:
        tokens = max(MIN_TOKENS, int(rate * CALL_S))
        calls = (8 if rate < 500 else 12) if quick else (20 if rate < 500 else 40)
        out.append(RatePlan(rate, tokens, calls))
    return out


def errors_of(calls: Sequence[CallRecord], sim: SimProcess, nominal_tps: float) -> list[CallError]:
    """Pair the calls with the simulator's log and compute each call's errors."""
    requests, emitted = sim.truth()
    return [call_error(c, r, emitted.get(r.request_id, []), nominal_tps) for c, r in match_calls(calls, requests)]


def row(agent: str, plan: RatePlan, errors: Sequence[CallError], *, error: str | None = None) -> ClientRow:
    return ClientRow(
        agent=agent,
        rate_tps=plan.rate_tps,
        tokens=plan.tokens,
        calls=len(errors),
        ttft_error_ms=spread([e.ttft_error_ms for e in errors]),
        true_ttft_ms=spread([e.true_ttft_ms for e in errors]),
        throughput_error_pct=spread([e.throughput_error_pct for e in errors if e.throughput_error_pct is not None]),
        pacing_error_pct=spread([e.pacing_error_pct for e in errors if e.pacing_error_pct is not None]),
        flaw=FLAWS.get(agent),
        error=error,
    )


PeerHook = Callable[[SimProcess, RatePlan], ClientRow]


def measure_clients(
    agents: Sequence[str],
    commands: AgentCommands,
    *,
    cwd: Path,
    quick: bool,
    progress: Progress,
    peer: PeerHook | None = None,
) -> tuple[list[ClientRow], list[ClientRow]]:
    """Our agents' rows, and the peer's (measured right after them, against the same server) when given."""
    rows: list[ClientRow] = []
    peer_rows: list[ClientRow] = []
    for plan in plan_rates(quick):
        with SimProcess(
            SimSettings(decode_tps=plan.rate_tps, tokens=plan.tokens), python=commands.python, cwd=cwd
        ) as sim:
            for agent in agents:
                progress(f"clients: {agent} at {plan.rate_tps:g} tok/s ({plan.calls} calls of {plan.tokens} tokens)")
                sim.reset()
                argv = commands.single(agent, sim.url, runs=plan.calls, workflow="single_call")
                try:
                    run = run_agent(argv, cwd=cwd)
                    calls = [r for r in run.records if isinstance(r, CallRecord) and r.ok]
                    if run.exit_code != 0 or len(calls) != plan.calls:
                        raise BenchError(f"exit {run.exit_code}, {len(calls)}/{plan.calls} calls ok: {run.stderr_tail}")
                    rows.append(row(agent, plan, errors_of(calls, sim, plan.rate_tps)))
                except (BenchError, TruthError) as exc:
                    rows.append(row(agent, plan, [], error=str(exc)))
            if peer is not None:
                progress(f"clients: the peer at {plan.rate_tps:g} tok/s ({plan.calls} requests)")
                sim.reset()
                peer_rows.append(peer(sim, plan))
    return rows, peer_rows


__all__ = ["PYTHON", "RATES_TPS", "PeerHook", "RatePlan", "errors_of", "measure_clients", "plan_rates", "row"]
