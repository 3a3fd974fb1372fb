"""Spread between hosts beside spread within one host, per claim, for sweeps made on a cluster.

A sweep run with ``--executor ray`` records in every run.json the node that made it and that node's environment
fingerprint. Here the runs are grouped by fingerprint (one group = one environment, however many nodes share
it) and, for every claim of the spec, the claim's metric is reduced to one value per run (its mean over the
run's rows that the claim selects). Then:

- *within-host spread*: the pooled standard deviation of the run values inside each environment
  (``sqrt(Σ (n_i - 1)·s_i² / Σ (n_i - 1))``), i.e. the run-to-run noise one host shows;
- *between-host spread*: the standard deviation of the environment means (and their range), i.e. how far one
  host's result lies from another's.

A between-host spread well above the within-host one says the result depends on the machine. With one
environment only the within-host figure exists. Reads the artifact folder only (run.json files and the table of
:mod:`harness.analysis.frames`); writes ``report/hosts.json`` and ``report/hosts.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from harness.analysis import claims
from harness.artifacts import ArtifactDir, canonical_json
from harness.protocol.spec import Claim, Spec

HOSTS_JSON = "hosts.json"
HOSTS_MD = "hosts.md"


class HostGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fingerprint_sha256: str
    hostnames: list[str]
    n_runs: int
    mean: float | None
    sd: float | None


class ClaimSpread(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_id: str
    metric: str
    unit: str
    groups: list[HostGroup]
    within_host_sd: float | None
    between_host_sd: float | None
    between_host_range: float | None
    note: str | None = None


class HostsReport(BaseModel):
    """``report/hosts.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = 1
    environments: int
    runs_with_node: int
    claims: list[ClaimSpread]


def run_environments(root: Path) -> dict[str, tuple[str, str]]:
    """run_id → (environment fingerprint, hostname) for every run that names its node."""
    out: dict[str, tuple[str, str]] = {}
    for result, _records in ArtifactDir(root).load_runs():
        if result.node is not None:
            out[result.run.run_id] = (result.node.fingerprint_sha256, result.node.hostname)
    return out


def _sd(values: np.ndarray) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def claim_spread(frame: pd.DataFrame, claim: Claim, envs: dict[str, tuple[str, str]]) -> ClaimSpread:
    """One claim's within- and between-host spread over the runs' per-run means of its metric."""
    try:
        rows, reason = claims.select(frame, claim), None
    except claims.NotInData as exc:
        rows, reason = frame.iloc[0:0], str(exc)
    metric, claim_id, unit = str(claim.metric), claim.id, claim.unit
    empty = ClaimSpread(
        claim_id=claim_id, metric=metric, unit=unit, groups=[], within_host_sd=None, between_host_sd=None,
        between_host_range=None, note=reason,
    )  # fmt: skip
    if reason is not None or rows.empty:
        return empty if reason else empty.model_copy(update={"note": "no successful run matches the claim"})
    per_run = pd.to_numeric(rows[metric], errors="coerce").groupby(rows["run_id"]).mean().dropna()
    per_run = per_run[per_run.index.isin(list(envs))]
    if per_run.empty:
        return empty.model_copy(update={"note": "no run of this claim names its node"})
    by_env = per_run.groupby(per_run.index.map(lambda run_id: envs[run_id][0]))
    groups, dof, pooled = [], 0, 0.0
    for fingerprint, values in by_env:
        array = values.to_numpy(dtype=float)
        sd = _sd(array)
        if sd is not None:
            dof, pooled = dof + len(array) - 1, pooled + (len(array) - 1) * sd**2
        hosts = sorted({envs[run_id][1] for run_id in values.index})
        groups.append(
            HostGroup(
                fingerprint_sha256=str(fingerprint), hostnames=hosts, n_runs=len(array),
                mean=_num(float(array.mean())), sd=_num(sd) if sd is not None else None,
            )
        )  # fmt: skip
    means = np.array([g.mean for g in groups if g.mean is not None], dtype=float)
    return ClaimSpread(
        claim_id=claim_id,
        metric=metric,
        unit=unit,
        groups=groups,
        within_host_sd=_num(math.sqrt(pooled / dof)) if dof else None,
        between_host_sd=_num(_sd(means)) if len(means) > 1 else None,
        between_host_range=_num(float(means.max() - means.min())) if len(means) > 1 else None,
        note=None if len(groups) > 1 else "one environment: no between-host figure",
    )


def analyse(root: Path, frame: pd.DataFrame, spec: Spec) -> HostsReport | None:
    """The spread of every claim of ``spec``; None when no run names its node (not a cluster sweep)."""
    envs = run_environments(root)
    if not envs:
        return None
    claims = [claim_spread(frame, claim, envs) for claim in spec.claims]
    return HostsReport(environments=len({fp for fp, _ in envs.values()}), runs_with_node=len(envs), claims=claims)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def render_markdown(report: HostsReport) -> str:
    lines = [
        "## Across hosts",
        "",
        f"{report.runs_with_node} runs name their node; {report.environments} environment(s) by fingerprint. "
        "Within-host: pooled SD of the run values inside each environment; between-host: SD (and range) of the "
        "environment means.",
        "",
        "| claim | metric | environments (n runs: mean) | within-host SD | between-host SD | between-host range |",
        "|---|---|---|---|---|---|",
    ]
    for c in report.claims:
        envs = "; ".join(f"{g.fingerprint_sha256[:8]} ({g.n_runs}: {_fmt(g.mean)})" for g in c.groups) or (
            c.note or "–"
        )
        lines.append(
            f"| {c.claim_id} | {c.metric} ({c.unit}) | {envs} | {_fmt(c.within_host_sd)} | "
            f"{_fmt(c.between_host_sd)} | {_fmt(c.between_host_range)} |"
        )
    return "\n".join(lines) + "\n"


def write_hosts(root: Path, frame: pd.DataFrame, spec: Spec, out_dir: Path) -> Sequence[Path]:
    """hosts.json and hosts.md in ``out_dir`` (and the section appended to report.md); nothing without nodes."""
    report = analyse(root, frame, spec)
    if report is None:
        return ()
    out_dir.mkdir(parents=True, exist_ok=True)
    as_json, as_md = out_dir / HOSTS_JSON, out_dir / HOSTS_MD
    as_json.write_text(canonical_json(report.model_dump(mode="json")) + "\n", encoding="utf-8")
    section = render_markdown(report)
    as_md.write_text(section, encoding="utf-8")
    main = out_dir / "report.md"
    if main.exists():
        main.write_text(main.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + section, encoding="utf-8")
    return (as_json, as_md)
