"""Pure expansion of a spec into runs: grid × runtimes × languages × repetitions, plus isolated baselines.

A run id is the first 16 hex digits of the sha256 of the run's canonical JSON, so the same spec always gives the
same ids (resume relies on it) and any change to what a run does gives a new id.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from harness.protocol.spec import MULTI_SCENARIOS, Options, Spec

PYTHON_RUNTIMES = frozenset({"asyncio"})
"""Runtimes the Python agents run on; every other runtime name is a Rust agent build."""

RunKind = Literal["protocol", "isolated", "diagnostic"]
"""protocol: what the report ran; isolated: one agent alone (true efficiency); diagnostic: a flaw reproduced."""


class AgentPlan(BaseModel):
    """One agent of a run: its role, which server it talks to (index into the topology) and what it sends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["baseline", "chimera", "collector", "insight", "inference"]
    server_index: int = Field(ge=0, le=1)
    options: Options | None
    """Typed as the spec wrote it; serialized (plan.json, the run id) as sent on the wire: set fields only."""

    @field_serializer("options")
    def _wire_form(self, options: Options | None) -> dict[str, float | int] | None:
        return options.wire() if options is not None else None

    def wire_options(self) -> dict[str, float | int] | None:
        """The options object this agent sends (None: it sends none, e.g. the baseline agent)."""
        return self.options.wire() if self.options is not None else None


class Run(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    report: str
    kind: RunKind
    config_id: str
    scenario: str
    model: str
    language: Literal["python", "rust"]
    runtime: str
    repetition: int = Field(ge=1)
    agents: list[AgentPlan]
    isolated_side: Literal["a", "b"] | None = None

    def canonical(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"run_id"})


def _run_id(body: dict[str, object]) -> str:
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _make(**fields: object) -> Run:
    draft = Run(run_id="", **fields)
    return draft.model_copy(update={"run_id": _run_id(draft.canonical())})


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    report: str
    runs: list[Run]

    def of_kind(self, kind: RunKind) -> list[Run]:
        return [r for r in self.runs if r.kind == kind]

    @property
    def protocol(self) -> list[Run]:
        return self.of_kind("protocol")


def expand(
    spec: Spec,
    *,
    runs_per_config: int | None = None,
    config_ids: set[str] | None = None,
    include_isolated: bool = True,
    include_diagnostics: bool = True,
    interleave_seed: int | None = None,
) -> Plan:
    """Every run of the spec, in protocol order (or shuffled reproducibly with ``interleave_seed``)."""
    reps = runs_per_config or (spec.agent.runs if spec.agent else 1)
    configs = [c for c in spec.configs if config_ids is None or c.id in config_ids]
    runs: list[Run] = []
    if spec.agent is None:
        for config in configs:
            for rep in range(1, reps + 1):
                runs.append(
                    _make(
                        report=spec.id,
                        kind="protocol",
                        config_id=config.id,
                        scenario=config.scenario,
                        model=config.model or spec.model.name,
                        language="python",
                        runtime="asyncio",
                        repetition=rep,
                        agents=[AgentPlan(role="inference", server_index=0, options=config.options)],
                    )
                )
        return _ordered(spec.id, runs, interleave_seed)

    agent = spec.agent
    languages = agent.languages or [agent.language]
    second = 1 if spec.topology.ollama == "dual" else 0
    for language in languages:
        for runtime in agent.runtimes:
            if (language == "python") != (runtime.name in PYTHON_RUNTIMES):
                continue
            if runtime.diagnostic and not include_diagnostics:
                continue
            kind: RunKind = "diagnostic" if runtime.diagnostic else "protocol"
            for config in configs:
                model = config.model or spec.model.name
                common = dict(
                    report=spec.id,
                    config_id=config.id,
                    scenario=config.scenario,
                    model=model,
                    language=language,
                    runtime=runtime.name,
                )
                if config.scenario in MULTI_SCENARIOS:
                    a, b = config.a, config.b
                    sides = [
                        AgentPlan(role="collector", server_index=0, options=a),
                        AgentPlan(role="insight", server_index=second, options=b),
                    ]
                    for rep in range(1, reps + 1):
                        runs.append(_make(kind=kind, repetition=rep, agents=sides, **common))
                    if include_isolated and kind == "protocol":
                        iso_reps = agent.isolated_baseline_runs
                        if runs_per_config is not None:
                            iso_reps = min(iso_reps, runs_per_config)
                        for rep in range(1, iso_reps + 1):
                            for side_name, side in (("a", sides[0]), ("b", sides[1])):
                                runs.append(
                                    _make(
                                        kind="isolated",
                                        repetition=rep,
                                        agents=[side],
                                        isolated_side=side_name,
                                        **common,
                                    )
                                )
                else:
                    chimera = config.options
                    order = [
                        AgentPlan(role=role, server_index=0, options=chimera if role == "chimera" else None)
                        for role in agent.order
                    ]
                    for rep in range(1, reps + 1):
                        runs.append(_make(kind=kind, repetition=rep, agents=order, **common))
    return _ordered(spec.id, runs, interleave_seed)


def _ordered(report: str, runs: list[Run], seed: int | None) -> Plan:
    if seed is not None:
        runs = list(runs)
        random.Random(seed).shuffle(runs)
    return Plan(report=report, runs=runs)
