"""Single-agent and multi-agent runs of the Python agents, as the reports ran them.

Single: the agents of one run one after the other (baseline and/or chimera) against one server, repeated
``runs`` times with a pause. Multi: the collector (A, first server) and the insight agent (B, second server)
start together on one asyncio loop; the wall time around their join is the originals' ``concurrent_wall``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from harness.agents.workflow import (
    Identity,
    RecordSink,
    Workload,
    make_client,
    process_start_monotonic_ns,
    run_agent,
)
from harness.engines.ollama import OllamaClient
from harness.records import AgentRunRecord, MultiRunRecord

Scenario = Literal["baseline_vs_chimera", "chimera_hetero", "chimera_homo"]


@dataclass(frozen=True)
class Timeouts:
    """How long a call may take: to connect, between two reads of its response, and in all."""

    read_timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    call_deadline_s: float = 1800.0


@dataclass(frozen=True)
class SingleAgent:
    role: Literal["baseline", "chimera", "collector", "insight", "inference"]
    options: dict[str, float | int] | None


async def run_single(
    base_url: str,
    workload: Workload,
    agents: Sequence[SingleAgent],
    *,
    runs: int = 1,
    pause_s: float = 0.0,
    cooldown_s: float = 0.0,
    unload_between_runs: bool = False,
    run_id: str | None = None,
    sink: RecordSink | None = None,
    timeouts: Timeouts = Timeouts(),
) -> list[AgentRunRecord]:
    process_start = process_start_monotonic_ns()
    out: list[AgentRunRecord] = []
    async with make_client(
        workload.engine,
        base_url,
        read_timeout_s=timeouts.read_timeout_s,
        connect_timeout_s=timeouts.connect_timeout_s,
        call_deadline_s=timeouts.call_deadline_s,
    ) as client:
        for index in range(1, runs + 1):
            if index > 1 and pause_s:
                await asyncio.sleep(pause_s)
            for position, agent in enumerate(agents):
                if unload_between_runs and position == 0:
                    await client.unload(workload.model)
                if position > 0 and cooldown_s:
                    await asyncio.sleep(cooldown_s)
                record = await run_agent(
                    client,
                    workload,
                    Identity(role=agent.role, run_id=run_id),
                    agent.options,
                    index=index,
                    process_start_ns=process_start if not out else None,
                    sink=sink,
                )
                out.append(record)
    return out


async def run_multi(
    collector_url: str,
    insight_url: str,
    workload: Workload,
    scenario: Scenario,
    collector_options: dict[str, float | int] | None,
    insight_options: dict[str, float | int] | None,
    *,
    run_id: str | None = None,
    sink: RecordSink | None = None,
    timeouts: Timeouts = Timeouts(),
) -> MultiRunRecord:
    """Both agents concurrently; failures of one agent are recorded, never hidden by the other's success."""
    process_start = process_start_monotonic_ns()

    def client(url: str) -> OllamaClient:
        return make_client(
            workload.engine,
            url,
            read_timeout_s=timeouts.read_timeout_s,
            connect_timeout_s=timeouts.connect_timeout_s,
            call_deadline_s=timeouts.call_deadline_s,
        )

    async with client(collector_url) as a, client(insight_url) as b:
        start_ns = time.monotonic_ns()
        results = await asyncio.gather(
            run_agent(
                a,
                workload,
                Identity(role="collector", run_id=run_id),
                collector_options,
                process_start_ns=process_start,
                sink=sink,
            ),
            run_agent(
                b,
                workload,
                Identity(role="insight", run_id=run_id),
                insight_options,
                process_start_ns=process_start,
                sink=sink,
            ),
            return_exceptions=True,
        )
        end_ns = time.monotonic_ns()
    errors = [
        f"{role}: {r if isinstance(r, BaseException) else r.error}"
        for role, r in zip(("collector", "insight"), results, strict=True)
        if isinstance(r, BaseException) or not r.ok
    ]
    record = MultiRunRecord(
        run_id=run_id,
        role="collector",
        language="python",
        runtime="asyncio",
        scenario=scenario,
        collector_url=a.base_url,
        insight_url=b.base_url,
        start_ns=start_ns,
        end_ns=end_ns,
        ok=not errors,
        error="; ".join(errors) or None,
    )
    if sink is not None:
        sink(record)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, Exception):
            raise r
    return record
