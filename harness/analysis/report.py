"""report.md and a self-contained report.html, rebuilt from an artifact folder alone (or from imported records).

Three steps: :func:`compute` judges the claims and gathers every table and figure into a :class:`ReportData`;
:mod:`harness.analysis.sections` turns it into sections; :mod:`harness.analysis.writers` writes Markdown and
HTML. A run against the simulator gets a SIMULATED banner and rehearsal verdicts. Output folder::

    report/report.md  report/report.html  report/verdicts.json  report/summary.json  report/runs.csv
    report/figures/*.png|*.svg

Nothing here carries a timestamp, so rebuilding from the same artifacts gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from harness.analysis import (
    distributions,
    hosts,
    measured,
    originals,
    plots,
    sections,
    stats,
    summary,
    verdicts,
    writers,
)
from harness.analysis.engine import other_engine
from harness.analysis.tidy import ok_rows
from harness.artifacts import Sweep
from harness.atomic import write_text_atomic
from harness.errors import ArtifactError, BadInputError
from harness.facts import value_or_none
from harness.protocol.spec import Spec, load_spec
from harness.schemas import (
    PROVENANCE_SCHEMA_VERSION,
    REPORT_SCHEMA_VERSION,
    ClaimVerdict,
    GitFacts,
    GpuFacts,
    Provenance,
    Regime,
)

PROVENANCE_FILE = "provenance.json"


@dataclass
class ReportResult:
    out_dir: Path
    markdown: Path
    html: Path
    verdicts_json: Path
    figures: list[plots.Figure]
    verdicts: list[ClaimVerdict]
    warnings: list[str] = field(default_factory=list)
    simulated: bool = False


@dataclass
class ReportData:
    """Everything the sections show, computed once."""

    spec: Spec
    frame: pd.DataFrame
    out_dir: Path
    regime: Regime
    origin: str
    source: str
    simulated: bool
    gpu_name: str | None
    provenance: Mapping[str, Any] | None
    verdicts: list[ClaimVerdict]
    summary: summary.OriginalSummary
    runtimes: pd.DataFrame
    figures: list[plots.Figure]
    warnings: list[str]
    model_bytes: float | None
    bandwidth_gbps: float | None
    run_facts: Mapping[str, Any] = field(default_factory=dict)
    """How the numbers were made (backend, time scale, kit version and commit), for summary.json."""
    attempts: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Every attempt of the runs that were retried, failed or lost a node (measured.attempts_table)."""


# ----------------------------------------------------------------------------------------------- entry points


def build_report(
    artifact_dir: Path,
    spec: Spec | None = None,
    out_dir: Path | None = None,
    *,
    gpu_name: str | None = None,
    model_bytes: float | None = None,
    bandwidth_gbps: float | None = None,
) -> ReportResult:
    """`report DIR`: judge the spec's claims against the kit's runs (re-measurement) and write the report.

    ``spec`` defaults to the folder's spec.toml; ``gpu_name`` and ``bandwidth_gbps`` default to what
    provenance.json records (``gpu.gpu_name``, ``gpu.memory_bandwidth_gbps``; absent → hardware-bound claims are
    not comparable and no roofline is drawn);
    ``model_bytes`` (bytes read per decoded token, i.e. the model's weights) is never guessed.
    """
    if spec is None:
        spec_file = artifact_dir / "spec.toml"
        if not spec_file.exists():
            raise ArtifactError(
                f"{artifact_dir} has no spec.toml",
                hint="report reads folders written by `reproduce`; copy experiments/trNNN.toml there as spec.toml",
            )
        spec = load_spec(spec_file)
    kit = measured.load_artifacts(artifact_dir, spec)
    provenance = read_provenance(artifact_dir)
    warnings = list(kit.notes)
    if kit.failed_runs:
        warnings.append(f"{len(kit.failed_runs)} run(s) failed: {', '.join(kit.failed_runs[:10])}")
    if provenance.warning is not None:
        warnings.append(provenance.warning)
    recorded_gpu, recorded_bandwidth = _gpu_facts(provenance.model)
    source = f"artifact folder `{artifact_dir.name}`"
    if kit.sweep is not None:
        source += f" (backend {kit.sweep.backend}, kit {kit.sweep.kit_version}, {kit.sweep.planned_runs} planned runs)"
        engine = other_engine(kit.sweep.backend)
        if engine is not None:
            source += f", measured on {engine}"
    data = compute(
        kit.frame,
        spec,
        out_dir or artifact_dir / "report",
        regime="re-measurement",
        origin="kit",
        source=source,
        simulated=kit.simulated,
        gpu_name=gpu_name or recorded_gpu,
        provenance=provenance.raw,
        timeline=kit.timeline,
        warnings=warnings,
        model_bytes=model_bytes,
        bandwidth_gbps=bandwidth_gbps or recorded_bandwidth,
        run_facts=_run_facts(kit.sweep, provenance.model, engine_device(artifact_dir)),
        attempts=measured.attempts_table(artifact_dir),
    )
    result = write(data)
    hosts.write_hosts(artifact_dir, kit.frame, spec, result.out_dir)  # cluster sweeps only: spread across hosts
    return result


def import_records(csv_path: Path, spec: Spec, *, report: str | None = None) -> pd.DataFrame:
    """The originals' records, validated, as the tidy table (raises before anything is written)."""
    return originals.import_original(csv_path, report or spec.id, spec=spec)


def build_report_from_import(
    csv_path: Path,
    spec: Spec,
    out_dir: Path,
    *,
    report: str | None = None,
    model_bytes: float | None = None,
    bandwidth_gbps: float | None = None,
) -> ReportResult:
    """The report from the originals' per-run records, judged by recomputation: each published figure must be
    what these records give, at its printed precision, for the config/runtime/run it names."""
    frame = import_records(csv_path, spec, report=report)
    data = compute(
        frame,
        spec,
        out_dir,
        regime="recomputation",
        origin="original",
        source=f"the originals' records `{csv_path.name}` (imported; no environment captured)",
        simulated=False,
        gpu_name=verdicts.ORIGINAL_GPU,
        provenance=None,
        timeline=sections.empty_timeline(),
        warnings=[],
        model_bytes=model_bytes,
        bandwidth_gbps=bandwidth_gbps,
    )
    return write(data)


# ------------------------------------------------------------------------------------------------------ compute


def compute(
    frame: pd.DataFrame,
    spec: Spec,
    out_dir: Path,
    *,
    regime: Regime,
    origin: str,
    source: str,
    simulated: bool,
    gpu_name: str | None,
    provenance: Mapping[str, Any] | None,
    timeline: pd.DataFrame,
    warnings: list[str],
    model_bytes: float | None,
    bandwidth_gbps: float | None,
    run_facts: Mapping[str, Any] | None = None,
    attempts: pd.DataFrame | None = None,
) -> ReportData:
    """Judge the claims, recompute the figures and draw the plots (the only step that writes: the figures)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create the report folder {out_dir}: {exc.strerror}") from None
    judged = verdicts.judge_claims(
        spec.claims,
        frame,
        regime=regime,
        gpu_name=gpu_name,
        simulated=simulated,
        backend=(run_facts or {}).get("backend"),
    )
    mark = figure_mark(simulated, (run_facts or {}).get("time_scale"))
    figures = plots.render_all(frame, judged, timeline, out_dir / "figures", mark=mark)
    notes = [f"figure {f.name}: {f.note}" for f in figures if f.note]
    return ReportData(
        spec=spec,
        frame=frame,
        out_dir=out_dir,
        regime=regime,
        origin=origin,
        source=source,
        simulated=simulated,
        gpu_name=gpu_name,
        provenance=provenance,
        verdicts=judged,
        summary=summary.summarize(frame, spec.id),
        runtimes=_runtime_comparison(frame, spec),
        figures=figures,
        warnings=warnings + stability(frame) + notes,
        model_bytes=model_bytes,
        bandwidth_gbps=bandwidth_gbps,
        run_facts=run_facts or {},
        attempts=attempts if attempts is not None else pd.DataFrame(),
    )


def write(data: ReportData) -> ReportResult:
    """verdicts.json, summary.json, runs.csv, report.md and report.html into ``data.out_dir``."""
    out = data.out_dir
    doc = verdicts.verdicts_document(
        data.verdicts,
        report=data.spec.id,
        regime=data.regime,
        origin=data.origin,
        simulated=data.simulated,
        gpu_name=data.gpu_name,
    )
    verdicts_path = out / "verdicts.json"
    write_text_atomic(verdicts_path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    facts = data.run_facts
    summary_doc = distributions.summary_document(
        data.frame,
        headline=data.summary.headline,
        report=data.spec.id,
        origin=data.origin,
        simulated=data.simulated,
        backend=facts.get("backend"),
        time_scale=facts.get("time_scale"),
        kit_version=facts.get("kit_version"),
        kit_commit=facts.get("kit_commit"),
        schema_version=REPORT_SCHEMA_VERSION,
        engine_device=facts.get("engine_device"),
    )
    write_text_atomic(out / "summary.json", json.dumps(summary_doc, indent=2, sort_keys=True, default=str) + "\n")
    write_text_atomic(out / "runs.csv", writers.integer_columns(data.frame).to_csv(index=False))
    write_text_atomic(out / "runs_percentiles.csv", distributions.per_config(data.frame).to_csv(index=False))
    parts = sections.all_sections(data)
    title = f"{data.spec.id.upper()} {data.spec.version}: {data.spec.title}"
    text = writers.markdown(title, data.spec.question, parts, simulated=data.simulated)
    md = writers.write_markdown(out / "report.md", text)
    page = writers.write_html(out / "report.html", text, title)
    return ReportResult(
        out_dir=out,
        markdown=md,
        html=page,
        verdicts_json=verdicts_path,
        figures=data.figures,
        verdicts=data.verdicts,
        warnings=data.warnings,
        simulated=data.simulated,
    )


# ------------------------------------------------------------------------------------------------------ helpers


def figure_mark(simulated: bool, time_scale: float | None) -> str | None:
    """What every figure of a rehearsal says inside the image: SIMULATED, and the time scale when not 1."""
    if not simulated:
        return None
    return "SIMULATED" + (f" · time scale {time_scale:g}" if time_scale not in (None, 1.0) else "")


@dataclass(frozen=True)
class ProvenanceRead:
    """provenance.json as written (the Environment section lists it fact by fact) and as its model (what the
    verdicts and summary.json read); ``warning`` says why a file that is there gave no model."""

    raw: dict[str, Any] | None
    model: Provenance | None
    warning: str | None = None


def read_provenance(artifact_dir: Path) -> ProvenanceRead:
    """The folder's provenance.json, validated as this kit's document.

    A file this kit did not write (another schema_version, a foreign or damaged one) is not searched for
    look-alike keys: the report goes on without the GPU facts and warns why, since hardware-bound verdicts and
    the roofline would otherwise rest on a guess.
    """
    path = artifact_dir / PROVENANCE_FILE
    if not path.exists():
        return ProvenanceRead(None, None)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ProvenanceRead(None, None, _unread_provenance(f"not JSON: {exc}"))
    raw = body if isinstance(body, dict) else None
    try:
        return ProvenanceRead(raw, Provenance.model_validate(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the document"
        return ProvenanceRead(raw, None, _unread_provenance(f"{where}: {first['msg']}"))


def _unread_provenance(why: str) -> str:
    return (
        f"provenance.json could not be read as schema_version {PROVENANCE_SCHEMA_VERSION} ({why}): "
        "the GPU name and memory bandwidth are unknown"
    )


def _gpu_facts(provenance: Provenance | None) -> tuple[str | None, float | None]:
    """Device 0's name and peak memory bandwidth as collect() recorded them (None where NVML could not tell)."""
    gpu = provenance.gpu if provenance is not None else None
    if not isinstance(gpu, GpuFacts):
        return None, None
    return value_or_none(gpu.gpu_name), value_or_none(gpu.memory_bandwidth_gbps)


def engine_device(artifact_dir: Path) -> str | None:
    """``device`` of the folder's ``engine.json`` (llama.cpp runs: cpu or cuda); None without one."""
    path = artifact_dir / "engine.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}", hint="re-run the sweep, or restore the file") from None
    device = doc.get("device", "cpu") if isinstance(doc, dict) else None  # written before the CUDA image: CPU
    return str(device) if device is not None else None


def _run_facts(sweep: Sweep | None, provenance: Provenance | None, device: str | None = None) -> dict[str, Any]:
    """What summary.json says about how the numbers were made: backend (and for llama.cpp, the device it
    computed on), time scale, kit version and commit."""
    git = provenance.kit.git if provenance is not None else None
    commit = git.commit if isinstance(git, GitFacts) else None
    if sweep is None:
        return {"kit_commit": commit}
    facts: dict[str, Any] = {"backend": sweep.backend}
    if other_engine(sweep.backend) is not None:
        facts["engine_device"] = device or "cpu"
    return {**facts, "time_scale": sweep.time_scale, "kit_version": sweep.kit_version, "kit_commit": commit}


def stability(frame: pd.DataFrame) -> list[str]:
    """Warnings per config (and runtime, role): CV ≥ 10 %, few runs, a slow first run, failed runs."""
    out: list[str] = []
    if frame.empty:
        return out
    protocol = frame[frame["run_kind"] == "protocol"]
    multi = protocol[protocol["level"] == "multi"]
    specs: list[tuple[pd.DataFrame, list[str], str, str]] = []
    if not multi.empty:
        specs.append((multi, ["runtime", "config_id"], "efficiency_pct", "concurrent_wall_s"))
    else:
        agents = protocol[protocol["level"] == "agent"]
        if not agents.empty:
            specs.append((agents, ["runtime", "config_id", "role"], "tps", "exec_s"))
    for rows, by, metric, duration in specs:
        for key, grp in rows.groupby(by, sort=True):
            keys = key if isinstance(key, tuple) else (key,)
            label = " / ".join(str(k) for k in keys)
            good = grp[grp["ok"].eq(True)].sort_values("run_index")
            out += stats.stability_warnings(
                good[metric].astype(float).to_numpy(),
                label=f"{label} ({metric})",
                durations_in_run_order=good[duration].astype(float).to_numpy(),
                failed_runs=int((~grp["ok"].eq(True)).sum()),
            )
    return out


def _runtime_comparison(frame: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """Each runtime against the spec's first runtime: Welch and Mann–Whitney on the originals' efficiency."""
    multi = ok_rows(frame, "multi")
    if multi.empty or multi["runtime"].nunique() < 2:
        return pd.DataFrame()
    order = [r.name for r in spec.agent.runtimes] if spec.agent else []
    present = list(multi["runtime"].unique())
    ref = next((r for r in order if r in present), sorted(present)[0])
    base = multi[multi["runtime"] == ref]["efficiency_pct"].astype(float).to_numpy()
    rows = []
    for rt in sorted(present):
        if rt == ref:
            continue
        other = multi[multi["runtime"] == rt]["efficiency_pct"].astype(float).to_numpy()
        c = stats.compare(base, other)
        rows.append(
            {
                "runtime": rt,
                "vs": ref,
                "difference_pct": c.difference,
                "noise_threshold": c.threshold,
                "welch_p": c.welch.p_value,
                "mann_whitney_p": c.mann_whitney.p_value,
                "difference_claimed": c.significant,
            }
        )
    return pd.DataFrame(rows)
