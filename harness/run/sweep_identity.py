"""What makes a sweep one sweep, and the only way it may grow.

An artifact folder holds one set of settings: report, spec, backend, executor, time scale, seeds, repetitions,
config selection, isolated baselines and images are written to ``sweep.json`` when it starts (the model digest
and the environment fingerprint are checked after the pull and in ``provenance.json``). Re-running into the
folder with any of them changed would mix runs made under different settings while the folder still describes
the first ones, so it is bad input naming every difference and the two ways out. Growing a sweep (more
repetitions, more configs, the isolated baselines added) is an explicit ``--extend`` that is recorded in
``sweep.json`` and rewrites ``plan.json``; every run already planned must stay in the new plan.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.artifacts import Sweep, SweepExtension, SweepSettings
from harness.errors import BadInputError
from harness.protocol.plan import Plan


@dataclass(frozen=True)
class Requested:
    """What this invocation asks for, in the terms ``sweep.json`` records."""

    report: str
    spec_sha256: str
    backend: str
    time_scale: float
    images: dict[str, str]
    settings: SweepSettings


@dataclass(frozen=True)
class Difference:
    """One setting that differs between the folder's sweep and this invocation; ``growth`` when --extend may take it."""

    name: str
    recorded: Any
    requested: Any
    growth: bool = False

    def describe(self) -> str:
        return f"{self.name} {_show(self.recorded)} → {_show(self.requested)}"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]" if len(value) <= 4 else f"{len(value)} items"
    if isinstance(value, str) and len(value) > 20:
        return value[:12] + "…"
    return repr(value) if isinstance(value, float) else str(value)


def settings_of(
    *,
    executor: str,
    backend: str,
    sim_seed: int,
    interleave_seed: int | None,
    plan: Plan,
    include_isolated: bool,
) -> SweepSettings:
    """The settings record of a plan about to run (repetitions and configs as the plan has them)."""
    protocol = [r for r in plan.runs if r.kind != "isolated"] or plan.runs
    return SweepSettings(
        executor=executor,
        sim_seed=sim_seed if backend == "sim" else None,
        interleave_seed=interleave_seed,
        runs_per_config=max((r.repetition for r in protocol), default=0),
        config_ids=sorted({r.config_id for r in plan.runs}),
        include_isolated=include_isolated,
    )


def differences(sweep: Sweep, recorded_plan: Plan | None, requested: Requested, plan: Plan) -> list[Difference]:
    """Every setting that differs, with the plan's run set as the last word (it catches what an old kit left out)."""
    out: list[Difference] = []
    for name, before, now in (
        ("report", sweep.report, requested.report),
        ("spec sha256", sweep.spec_sha256, requested.spec_sha256),
        ("backend", sweep.backend, requested.backend),
        ("time scale", sweep.time_scale, requested.time_scale),
    ):
        if before != now:
            out.append(Difference(name, before, now))
    for role in sorted(set(sweep.images) | set(requested.images)):
        if sweep.images.get(role) != requested.images.get(role):
            out.append(Difference(f"{role} image", sweep.images.get(role), requested.images.get(role)))
    if sweep.settings is not None:
        out += _settings_differences(sweep.settings, requested.settings)
    if recorded_plan is not None:
        before_ids = {r.run_id for r in recorded_plan.runs}
        now_ids = {r.run_id for r in plan.runs}
        if before_ids != now_ids and not any(
            d.name in ("runs per config", "configs", "isolated baselines") for d in out
        ):
            out.append(Difference("planned runs", len(before_ids), len(now_ids), growth=before_ids < now_ids))
    return out


def _settings_differences(before: SweepSettings, now: SweepSettings) -> list[Difference]:
    out: list[Difference] = []
    for name, a, b in (
        ("executor", before.executor, now.executor),
        ("simulator seed", before.sim_seed, now.sim_seed),
        ("interleave seed", before.interleave_seed, now.interleave_seed),
    ):
        if a != b:
            out.append(Difference(name, a, b))
    if before.runs_per_config != now.runs_per_config:
        grows = (now.runs_per_config or 0) > (before.runs_per_config or 0)
        out.append(Difference("runs per config", before.runs_per_config, now.runs_per_config, growth=grows))
    if before.config_ids != now.config_ids:
        grows = set(before.config_ids or ()) < set(now.config_ids or ())
        out.append(Difference("configs", before.config_ids, now.config_ids, growth=grows))
    if before.include_isolated != now.include_isolated:
        out.append(
            Difference("isolated baselines", before.include_isolated, now.include_isolated, growth=now.include_isolated)
        )
    return out


def resume(
    where: str,
    sweep: Sweep,
    recorded_plan: Plan | None,
    requested: Requested,
    plan: Plan,
    *,
    extend: bool,
    command: Sequence[str],
) -> tuple[Sweep, list[Difference]]:
    """The sweep to continue (grown when ``extend`` asks for it and only growth differs), or bad input.

    Returns the sweep to write and the differences it accepted (empty for a plain resume).
    """
    diffs = differences(sweep, recorded_plan, requested, plan)
    if not diffs:
        return sweep, []
    all_growth = all(d.growth for d in diffs)
    if recorded_plan is not None and not {r.run_id for r in recorded_plan.runs} <= {r.run_id for r in plan.runs}:
        all_growth = False
    if not (extend and all_growth):
        ways = f"re-run the original command to resume ({shlex.join(sweep.command)}), or pass a new --out folder"
        if all_growth:
            ways += ", or add --extend to grow this sweep on purpose"
        elif extend:
            ways = "--extend only grows a sweep (more runs, more configs); " + ways
        raise BadInputError(
            f"{where} holds a sweep made with other settings ({'; '.join(d.describe() for d in diffs)}): "
            "resuming would mix runs made under different settings in one sweep",
            hint=ways,
        )
    grown = sweep.model_copy(
        update={
            "planned_runs": len(plan.runs),
            "settings": requested.settings,
            "extensions": [
                *sweep.extensions,
                SweepExtension(
                    at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    command=list(command),
                    planned_runs_before=sweep.planned_runs,
                    planned_runs_after=len(plan.runs),
                    settings_before=sweep.settings,
                    settings_after=requested.settings,
                ),
            ],
        }
    )
    return grown, diffs
