"""How long a plan will take, said before its first run, and how long the rest will take as runs finish.

Before anything runs the kit can only estimate from the spec (calls per run, agents in sequence or concurrent)
and the backend's expected call duration: the model's decode rate on the originals' GPU (the simulator's
calibrated catalog rate, which is also the pace a real Ollama on such a GPU keeps), the answer length the
workload produces (the simulator's length model), the time scale, and the per-run cost of a fresh stack
(``docs/bench.md``). Once runs finish, the observed mean per run takes over: the estimate only has to be good
enough for a person to decide whether to wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.protocol.plan import Plan, Run
from harness.protocol.spec import Spec
from harness.sim.catalog import lookup
from harness.sim.text import expected_length
from harness.sim.timing import PerfModel

STACK_S = {("docker", 1): 1.7, ("docker", 2): 1.9, ("local", 1): 0.2, ("local", 2): 0.3}
"""What a run costs beyond its calls, by executor and server count: the fresh stack (create → ready → removed,
servers started in parallel) plus the agent container's start and stop. Measured on the 2-core project machine:
a TR114 rehearsal at time scale 0.01 ran its isolated runs in 1.95 s and its protocol runs in 2.21 s (medians of
108 and 135 runs; `./kit reproduce --report tr114`), of which about 0.25 s were calls."""
PROMPT_TOKENS = 600
"""The analysis and report prompts of the agents' workflows carry the corpus summary: above 400 tokens."""
UNKNOWN_MODEL_TPS = 100.0
"""Decode rate assumed for a model the catalog does not know (the order of the reports' 4B models)."""
CONCURRENT_SLOWDOWN = 2.0
"""Two agents on one GPU each get about half of it: a concurrent run lasts about as long as both in sequence."""


@dataclass(frozen=True)
class Estimate:
    """A plan's expected wall time and what it assumed."""

    total_s: float
    per_run_s: float
    call_s: float
    """Expected duration of one call at the given time scale."""
    basis: str


def call_seconds(model: str, time_scale: float) -> float:
    """One call: the expected answer length at the model's decode rate, plus its prompt evaluation."""
    perf = PerfModel()
    spec = lookup(model)
    decode_tps = perf.gpu_decode_tps(spec) if spec is not None else UNKNOWN_MODEL_TPS
    prompt_tps = decode_tps * perf.prompt_batch_factor
    return (expected_length(PROMPT_TOKENS) / decode_tps + PROMPT_TOKENS / prompt_tps) * time_scale


def load_seconds(model: str, time_scale: float) -> float:
    """A cold load per server per run: every run starts a fresh stack, as the reports intended."""
    spec = lookup(model)
    return (PerfModel().cold_load_s(spec) if spec is not None else 2.0) * time_scale


def run_seconds(run: Run, spec: Spec, *, executor: str, time_scale: float) -> float:
    """One run: its stack, a cold load per server, and its agents' calls (in sequence for a single-agent run,
    concurrent on one GPU for a multi-agent run)."""
    calls = 2 if spec.agent is not None and spec.agent.workflow == "two_call" else 1
    servers = len({a.server_index for a in run.agents}) or 1
    call = call_seconds(run.model, time_scale)
    if run.kind == "protocol" and spec.kind == "multi_agent":
        agents_s = calls * call * CONCURRENT_SLOWDOWN
    else:
        agents_s = calls * call * max(1, len(run.agents))
    cooldown = spec.agent.cooldown_s * time_scale if spec.agent is not None else 0.0
    stack = STACK_S.get((executor, servers), STACK_S[("docker", 2)])
    return stack + servers * load_seconds(run.model, time_scale) + agents_s + cooldown


def estimate(
    plan: Plan, spec: Spec, *, executor: str, time_scale: float, skip: frozenset[str] = frozenset()
) -> Estimate:
    """The runs of ``plan`` not in ``skip`` (already complete: a resume), end to end."""
    todo = [r for r in plan.runs if r.run_id not in skip]
    per_run = [run_seconds(r, spec, executor=executor, time_scale=time_scale) for r in todo]
    total = sum(per_run)
    model = plan.runs[0].model if plan.runs else spec.model.name
    basis = (
        f"{len(todo)} runs × about {total / len(todo):.1f} s (a {executor} stack per run; calls of about "
        f"{call_seconds(model, time_scale):.2f} s at time scale {time_scale:g})"
        if todo
        else "nothing left to run"
    )
    return Estimate(total, total / len(todo) if todo else 0.0, call_seconds(model, time_scale), basis)


def remaining_s(estimate_per_run_s: float, observed_s: list[float], left: int) -> float:
    """Seconds left: the observed mean per run once there is one, the plan's estimate before."""
    per_run = sum(observed_s) / len(observed_s) if observed_s else estimate_per_run_s
    return per_run * left


def clock(seconds: float) -> str:
    """``1:02:03``, ``4:05``; never a negative or unbounded figure."""
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
