"""report.md and a self-contained report.html, rebuilt from an artifact folder alone (or from imported records).

Order: verdict table first (the reader's question is "did it reproduce?"), then method, environment, the
recomputed figures, the figures, warnings. A run against the simulator gets a SIMULATED banner at the top of
both files: it rehearses the pipeline, it never stands in for a measurement. Output folder::

    report/report.md  report/report.html  report/verdicts.json  report/summary.json  report/runs.csv
    report/figures/*.png|*.svg

Nothing here carries a timestamp, so rebuilding from the same artifacts gives the same bytes.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis import checks, plots, stats
from harness.analysis import frames as analysis
from harness.analysis.engine import engine_note
from harness.errors import ArtifactError, BadInputError
from harness.protocol.spec import Spec, load_spec
from harness.schemas import REPORT_SCHEMA_VERSION

BANDWIDTH_KEYS = ("memory_bandwidth_gbps", "bandwidth_gbps", "mem_bandwidth_gbps")
"""provenance.json keys (anywhere in the tree) read as the GPU memory bandwidth in GB/s."""
GPU_NAME_KEYS = ("gpu_name",)


@dataclass
class ReportResult:
    out_dir: Path
    markdown: Path
    html: Path
    verdicts_json: Path
    figures: list[plots.Figure]
    verdicts: list[checks.ClaimVerdict]
    warnings: list[str] = field(default_factory=list)
    simulated: bool = False


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
    """`invoke report DIR`: judge the spec's claims against the kit's runs and write the report.

    ``spec`` defaults to the folder's spec.toml; ``gpu_name`` and ``bandwidth_gbps`` default to what
    provenance.json records (absent → hardware-bound claims are not comparable and no roofline is drawn);
    ``model_bytes`` (bytes read per decoded token, i.e. the model's weights) is never guessed.
    """
    if spec is None:
        spec_file = artifact_dir / "spec.toml"
        if not spec_file.exists():
            raise ArtifactError(f"{artifact_dir} has no spec.toml", hint="pass the spec: --spec experiments/trNNN.toml")
        spec = load_spec(spec_file)
    kit = analysis.load_artifacts(artifact_dir, spec)
    provenance = kit.provenance
    gpu = gpu_name or _provenance_gpu(provenance)
    bandwidth = bandwidth_gbps or _provenance_number(provenance, BANDWIDTH_KEYS)
    warnings = list(kit.notes)
    if kit.failed_runs:
        warnings.append(f"{len(kit.failed_runs)} run(s) failed: {', '.join(kit.failed_runs[:10])}")
    source = f"artifact folder `{artifact_dir.name}`"
    if kit.sweep is not None:
        source += f" (backend {kit.sweep.backend}, kit {kit.sweep.kit_version}, {kit.sweep.planned_runs} planned runs)"
        note = engine_note(kit.sweep.backend)
        if note is not None:
            warnings.insert(0, note)
            source += f". {note.rstrip('.')}"
            gpu = None  # another engine: absolute GPU claims are not judged
    return _render(
        kit.frame,
        spec,
        out_dir or artifact_dir / "report",
        origin="kit",
        source=source,
        simulated=kit.simulated,
        gpu_name=gpu,
        provenance=provenance,
        timeline=kit.timeline,
        warnings=warnings,
        model_bytes=model_bytes,
        bandwidth_gbps=bandwidth,
    )


def build_report_from_import(
    csv_path: Path,
    spec: Spec,
    out_dir: Path,
    *,
    report: str | None = None,
    model_bytes: float | None = None,
    bandwidth_gbps: float | None = None,
) -> ReportResult:
    """The same report from the originals' per-run records: the claims judged against the originals' own data
    (on the originals' GPU, so hardware-bound claims are judged too). Checks the recomputation, not the GPU."""
    frame = analysis.import_original(csv_path, report, spec=spec)
    return _render(
        frame,
        spec,
        out_dir,
        origin="original",
        source=f"the originals' records `{csv_path.name}` (imported; no environment captured)",
        simulated=False,
        gpu_name=checks.ORIGINAL_GPU,
        provenance=None,
        timeline=pd.DataFrame({"run_id": [], "role": [], "t_s": [], "cum_tokens": []}),
        warnings=[],
        model_bytes=model_bytes,
        bandwidth_gbps=bandwidth_gbps,
    )


# --------------------------------------------------------------------------------------------------- helpers


def _walk(doc: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(doc, Mapping):
        for key, value in doc.items():
            yield str(key), value
            yield from _walk(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _walk(item)


def _provenance_number(provenance: Mapping[str, Any] | None, keys: Sequence[str]) -> float | None:
    for key, value in _walk(provenance or {}):
        if key in keys and isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def _provenance_gpu(provenance: Mapping[str, Any] | None) -> str | None:
    """``gpu_name`` anywhere, else ``name`` of a ``gpu`` object or of the first of ``gpus``."""
    for key, value in _walk(provenance or {}):
        if key in GPU_NAME_KEYS and isinstance(value, str):
            return value
    for key, value in _walk(provenance or {}):
        node = value[0] if key == "gpus" and isinstance(value, list) and value else value
        if key in ("gpu", "gpus") and isinstance(node, Mapping) and isinstance(node.get("name"), str):
            return str(node["name"])
    return None


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def _table(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    return [str(c) for c in frame.columns], [[_fmt(v) for v in row] for row in frame.itertuples(index=False)]


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _flatten(doc: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(doc, Mapping):
        out: list[tuple[str, str]] = []
        for key in sorted(doc, key=str):
            out += _flatten(doc[key], f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(doc, list) and doc and any(isinstance(x, Mapping | list) for x in doc):
        out = []
        for i, item in enumerate(doc):
            out += _flatten(item, f"{prefix}[{i}]")
        return out
    return [(prefix, json.dumps(doc, ensure_ascii=False) if not isinstance(doc, str) else doc)]


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
    multi = analysis.ok_rows(frame, "multi")
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


# ------------------------------------------------------------------------------------------------ rendering


@dataclass
class _Section:
    title: str
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def para(self, text: str) -> None:
        self.md.append(text)
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None
    ) -> None:
        self.md.append(_md_table(headers, rows))
        self.html.append(_html_table(headers, rows, classes))

    def bullets(self, items: Sequence[str]) -> None:
        self.md.append("\n".join(f"- {i}" for i in items))
        self.html.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:.85em}td,th{border:1px solid #ccc;padding:.25em .5em}"
    "th{background:#f0f0f0}.reproduced{background:#e8f5e9}.not_reproduced{background:#ffebee}"
    ".not_comparable{background:#f5f5f5}.banner{background:#b71c1c;color:#fff;padding:1em;font-size:1.3em;"
    "font-weight:bold;text-align:center}img{max-width:100%;border:1px solid #ddd}"
)


def _render(
    frame: pd.DataFrame,
    spec: Spec,
    out_dir: Path,
    *,
    origin: str,
    source: str,
    simulated: bool,
    gpu_name: str | None,
    provenance: Mapping[str, Any] | None,
    timeline: pd.DataFrame,
    warnings: list[str],
    model_bytes: float | None,
    bandwidth_gbps: float | None,
) -> ReportResult:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create the report folder {out_dir}: {exc.strerror}") from None
    verdicts = checks.judge_claims(spec.claims, frame, gpu_name=gpu_name, simulated=simulated)
    doc = checks.verdicts_document(verdicts, report=spec.id, origin=origin, simulated=simulated, gpu_name=gpu_name)
    verdicts_path = out_dir / "verdicts.json"
    verdicts_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    summary = analysis.summarize(frame, spec.id)
    (out_dir / "summary.json").write_text(
        json.dumps(
            {"schema_version": REPORT_SCHEMA_VERSION, "report": spec.id, "origin": origin, **summary.headline},
            indent=2,
            sort_keys=True,
            default=str,
        )
        + "\n",
        encoding="utf-8",
    )
    frame.to_csv(out_dir / "runs.csv", index=False)
    figures = plots.render_all(frame, [v.model_dump() for v in verdicts], timeline, out_dir / "figures")
    warnings = warnings + stability(frame) + [f"figure {f.name}: {f.note}" for f in figures if f.note]

    sections: list[_Section] = []
    s = _Section("Verdicts")
    counts = doc["counts"]
    s.para(
        f"{counts['reproduced']} reproduced, {counts['not_reproduced']} not reproduced, "
        f"{counts['not_comparable']} not comparable (of {len(verdicts)} claims)."
    )
    if verdicts:
        s.table(
            ["claim", "statement", "published", "measured", "CI", "difference", "n", "verdict", "reason"],
            [
                [
                    v.claim_id,
                    v.statement,
                    f"{_fmt(v.published)} {v.unit}".strip(),
                    _fmt(v.measured),
                    f"[{_fmt(v.ci_low)}, {_fmt(v.ci_high)}] {v.ci_method}" if v.ci_low is not None else "—",
                    _fmt(v.difference),
                    str(v.n),
                    v.verdict.replace("_", " ") + (" (rehearsal)" if v.rehearsal else ""),
                    v.reason,
                ]
                for v in verdicts
            ],
            [v.verdict for v in verdicts],
        )
    else:
        s.para(f"The spec {spec.id} lists no claims.")
    sections.append(s)

    s = _Section("Method")
    s.para(f"Data: {source}. {len(frame)} rows in the tidy table (runs.csv).")
    s.bullets(
        [
            "Originals' efficiency = (exec_A + exec_B) / concurrent wall / 2 · 100, each exec measured during the "
            "concurrent run: with wall ≈ max(exec) it measures how balanced the two agents were, not a speed-up.",
            "True efficiency = (isolated_A + isolated_B) / (2 · concurrent wall) · 100, isolated = mean duration of "
            "the same agent and config run alone; two agents time-slicing one GPU score about 50 %.",
            "Config value = mean over runs; σ = sample standard deviation (n − 1); contention = speedup < 1.5.",
            "Verdict: reproduced when the published value lies inside the 95 % interval (t for means, seeded "
            "bootstrap otherwise) or within the tolerance: the claim's own, else the noise threshold (the larger "
            "of the interval half width and 1 % of the value), plus half a unit of the published last digit.",
            "Hardware-bound claims (absolute tok/s, ms, MB) are not comparable unless the GPU is the originals' "
            f"{checks.ORIGINAL_GPU} (here: {gpu_name or 'unknown'}).",
        ]
    )
    sections.append(s)

    s = _Section("Environment")
    if provenance:
        s.table(["key", "value"], [[k, v] for k, v in _flatten(provenance)])
    else:
        s.para("No provenance.json: the environment of these runs was not captured, so it is unknown.")
    sections.append(s)

    s = _Section("Recomputed figures")
    if summary.headline:
        s.table(["figure", "value"], [[k, _fmt(v)] for k, v in summary.headline.items()])
    for name, table in summary.tables.items():
        s.para(name.replace("_", " ") + ":")
        s.table(*_table(table))
    comparison = analysis.efficiency_comparison(frame)
    if not comparison.empty:
        s.para("Originals' efficiency beside the true efficiency and aggregate tokens per wall second, per config:")
        s.table(*_table(comparison))
    runtimes = _runtime_comparison(frame, spec)
    if not runtimes.empty:
        s.para("Runtimes against the first runtime of the spec (originals' efficiency):")
        s.table(*_table(runtimes))
    bound = analysis.roofline_tps(model_bytes, bandwidth_gbps)
    if bound is None:
        missing = [n for n, v in (("model size", model_bytes), ("memory bandwidth", bandwidth_gbps)) if not v]
        s.para(f"Roofline: not available ({' and '.join(missing)} not given; never guessed).")
    else:
        s.para(f"Roofline: {bandwidth_gbps:g} GB/s ÷ {model_bytes:.4g} B per token = {bound:.1f} tok/s.")
        s.table(*_table(analysis.roofline_table(frame, model_bytes, bandwidth_gbps)))
    recon = analysis.reconciliation_table(frame)
    if recon.empty:
        s.para("Client/server reconciliation: not available (no client-side chunk timings in this data).")
    else:
        s.para("Client vs server: streamed chunks vs eval_count, client decode span vs eval_duration:")
        s.table(*_table(recon))
    sections.append(s)

    s = _Section("Figures")
    for fig in figures:
        if fig.png is None:
            s.para(f"{fig.title}: {fig.note}")
            continue
        rel = fig.png.relative_to(out_dir).as_posix()
        s.md.append(f"![{fig.title}]({rel})" + (f"\n\n{fig.note}" if fig.note else ""))
        data = base64.b64encode(fig.png.read_bytes()).decode("ascii")
        s.html.append(
            f'<figure><img alt="{html.escape(fig.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(fig.title + (' — ' + fig.note if fig.note else ''))}</figcaption></figure>"
        )
    sections.append(s)

    s = _Section("Warnings")
    if warnings:
        s.bullets(warnings)
    else:
        s.para("None.")
    sections.append(s)

    title = f"{spec.id.upper()} {spec.version}: {spec.title}"
    banner = (
        "SIMULATED: these runs talked to the simulated Ollama. This report rehearses the pipeline; "
        "no number in it is a measurement."
    )
    md = [f"# {title}", ""]
    if simulated:
        md += [f"> **{banner}**", ""]
    md += [f"Question: {spec.question}", ""]
    for sec in sections:
        md += [f"## {sec.title}", ""]
        for block in sec.md:
            md += [block, ""]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    if simulated:
        parts.append(f'<div class="banner">{html.escape(banner)}</div>')
    parts += [f"<h1>{html.escape(title)}</h1>", f"<p>Question: {html.escape(spec.question)}</p>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts += sec.html
    parts.append("</body></html>")
    html_path = out_dir / "report.html"
    html_path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return ReportResult(
        out_dir=out_dir,
        markdown=md_path,
        html=html_path,
        verdicts_json=verdicts_path,
        figures=figures,
        verdicts=verdicts,
        warnings=warnings,
        simulated=simulated,
    )
