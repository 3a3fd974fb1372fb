"""The report's sections, one function each, from the computed :class:`harness.analysis.report.ReportData`.

Order: verdicts first (the reader's question is "did it reproduce?"), then how they were reached, environment,
the recomputed figures, the figures, warnings.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

import pandas as pd

from harness.analysis import plots, summary, verdicts
from harness.analysis.tidy import ok_rows
from harness.analysis.writers import Section, flatten, fmt, frame_table
from harness.schemas import ClaimVerdict

if TYPE_CHECKING:
    from harness.analysis.report import ReportData


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def _interval(v: ClaimVerdict) -> str:
    if v.ci_low is None or v.ci_high is None:
        return "—"
    return f"[{_num(v.ci_low)}, {_num(v.ci_high)}] {v.ci_method}"


def _band(v: ClaimVerdict) -> str:
    if v.band_low is None or v.band_high is None:
        return "—"
    return f"[{_num(v.band_low)}, {_num(v.band_high)}]" + (f": {v.tolerance_why}" if v.tolerance_why else "")


def verdicts_section(data: ReportData) -> Section:
    s = Section("Verdicts")
    found = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in verdicts.counts(data.verdicts).items())
    s.para(f"Regime: {data.regime}. {found or 'no verdicts'} (of {len(data.verdicts)} claims).")
    if not data.verdicts:
        s.para(f"The spec {data.spec.id} lists no claims.")
        return s
    s.table(
        ["claim", "verdict", "published", "measured", "reason"],
        [
            [
                v.claim_id,
                v.verdict.replace("_", " "),
                f"{v.published_text} {v.unit}".strip(),
                _num(v.measured),
                v.reason,
            ]
            for v in data.verdicts
        ],
        [v.verdict.removeprefix("rehearsal_") for v in data.verdicts],
    )
    return s


def how_section(data: ReportData) -> Section:
    """Per claim: what was published and where, what the data gives, with which interval, against which band."""
    s = Section("How each verdict was reached")
    s.table(
        [
            "claim",
            "published (statistic, identity)",
            "source",
            "measured (identity)",
            "n",
            "interval",
            "band (why)",
            "verdict",
        ],
        [
            [
                v.claim_id,
                f"{v.published_text} {v.unit} — {v.statistic} over {v.over}; {v.published_identity}",
                v.source,
                f"{_num(v.measured)} — {v.measured_identity or 'not in the data'}",
                f"{v.n} ({v.n_runs} run{'' if v.n_runs == 1 else 's'}, fewest per config "
                f"{v.runs_per_group_min or '—'})",
                _interval(v),
                _band(v),
                v.verdict.replace("_", " "),
            ]
            for v in data.verdicts
        ],
    )
    return s


def method_section(data: ReportData) -> Section:
    s = Section("Method")
    s.para(f"Data: {data.source}. {len(data.frame)} rows in the tidy table (runs.csv).")
    rule = (
        "Recomputation (the originals' own records): the published figure is a function of the data, so it "
        "must equal the data's value at the printed precision (98.281 → ± 0.0005) and belong to the same config, "
        "runtime, phase and number of runs; verdicts: matches, differs, not in the data."
        if data.regime == "recomputation"
        else "Re-measurement (the kit's runs): reproduced when the whole 95 % interval (t for means, exact binomial "
        "for counts and rates, seeded stratified bootstrap otherwise) lies inside the band the spec declares, not "
        "reproduced when wholly outside, inconclusive when it straddles or no interval exists (fewer than two runs "
        "in a config for a spread, zero width); hardware-bound figures are not comparable off the originals' "
        f"{verdicts.ORIGINAL_GPU} (here: {data.gpu_name or 'unknown'})."
    )
    s.bullets(
        [
            rule,
            "Originals' efficiency = (exec_A + exec_B) / concurrent wall / 2 · 100, each exec measured during the "
            "concurrent run: with wall ≈ max(exec) it measures how balanced the two agents were, not a speed-up.",
            "True efficiency = (isolated_A + isolated_B) / (2 · concurrent wall) · 100, isolated = mean duration of "
            "the same agent and config run alone; two agents time-slicing one GPU score about 50 %.",
            "Config value = mean over runs; σ = sample standard deviation (n − 1); contention = speedup < 1.5; "
            "best config: the config with the highest mean (lowest for TTFT, memory, start-up).",
        ]
    )
    return s


def environment_section(data: ReportData) -> Section:
    s = Section("Environment")
    if data.provenance:
        s.table(["key", "value"], [[k, v] for k, v in flatten(data.provenance)])
    else:
        s.para("No provenance.json: the environment of these runs was not captured, so it is unknown.")
    return s


def contention_section(data: ReportData) -> Section | None:
    """The runs the originals' rule calls contended, listed: a mean with and without them differs."""
    multi = ok_rows(data.frame, "multi")
    if multi.empty:
        return None
    hit = multi[multi["contention"].eq(True)]
    s = Section("Contention runs")
    eff = multi["efficiency_pct"].astype(float)
    without = eff[~multi["contention"].eq(True)]
    s.para(
        f"{len(hit)} of {len(multi)} runs have speedup < 1.5. Mean efficiency over all runs "
        f"{fmt(float(eff.mean()), 3)} %, without the contention runs {fmt(float(without.mean()), 3)} %."
    )
    if not hit.empty:
        cols = ["runtime", "config_id", "config_label", "run_index", "speedup", "efficiency_pct"]
        s.table(*frame_table(hit[cols].sort_values(["runtime", "config_id", "run_index"])))
    return s


def figures_table_section(data: ReportData) -> Section:
    s = Section("Recomputed figures")
    if data.summary.headline:
        s.table(["figure", "value"], [[k, fmt(v)] for k, v in data.summary.headline.items()])
    for name, table in data.summary.tables.items():
        s.para(name.replace("_", " ") + ":")
        s.table(*frame_table(table))
    comparison = summary.efficiency_comparison(data.frame)
    if not comparison.empty:
        s.para("Originals' efficiency beside the true efficiency and aggregate tokens per wall second, per config:")
        s.table(*frame_table(comparison))
    if not data.runtimes.empty:
        s.para("Runtimes against the first runtime of the spec (originals' efficiency):")
        s.table(*frame_table(data.runtimes))
    bound = summary.roofline_tps(data.model_bytes, data.bandwidth_gbps)
    if bound is None:
        missing = [n for n, v in (("model size", data.model_bytes), ("memory bandwidth", data.bandwidth_gbps)) if not v]
        s.para(f"Roofline: not available ({' and '.join(missing)} not given; never guessed).")
    else:
        s.para(f"Roofline: {data.bandwidth_gbps:g} GB/s ÷ {data.model_bytes:.4g} B per token = {bound:.1f} tok/s.")
        s.table(*frame_table(summary.roofline_table(data.frame, data.model_bytes, data.bandwidth_gbps)))
    recon = summary.reconciliation_table(data.frame)
    if recon.empty:
        s.para("Client/server reconciliation: not available (no client-side chunk timings in this data).")
    else:
        s.para("Client vs server: streamed chunks vs eval_count, client decode span vs eval_duration:")
        s.table(*frame_table(recon))
    return s


def figures_section(data: ReportData) -> Section:
    s = Section("Figures")
    for fig in data.figures:
        s.md.append(_figure_md(fig, data))
        s.html.append(_figure_html(fig))
    return s


def _figure_md(fig: plots.Figure, data: ReportData) -> str:
    if fig.png is None:
        return f"{fig.title}: {fig.note}"
    rel = fig.png.relative_to(data.out_dir).as_posix()
    return f"![{fig.title}]({rel})" + (f"\n\n{fig.note}" if fig.note else "")


def _figure_html(fig: plots.Figure) -> str:
    if fig.png is None:
        return f"<p>{html.escape(f'{fig.title}: {fig.note}')}</p>"
    payload = base64.b64encode(fig.png.read_bytes()).decode("ascii")
    caption = html.escape(fig.title + (" — " + fig.note if fig.note else ""))
    return (
        f'<figure><img alt="{html.escape(fig.title)}" src="data:image/png;base64,{payload}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def warnings_section(data: ReportData) -> Section:
    s = Section("Warnings")
    if data.warnings:
        s.bullets(data.warnings)
    else:
        s.para("None.")
    return s


def all_sections(data: ReportData) -> list[Section]:
    parts = [
        verdicts_section(data),
        how_section(data),
        method_section(data),
        environment_section(data),
        contention_section(data),
        figures_table_section(data),
        figures_section(data),
        warnings_section(data),
    ]
    return [p for p in parts if p is not None]


def empty_timeline() -> pd.DataFrame:
    return pd.DataFrame({"run_id": [], "role": [], "t_s": [], "cum_tokens": []})
