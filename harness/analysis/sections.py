"""The report's sections, one function each, from the computed :class:`harness.analysis.report.ReportData`.

Order: verdicts first (the reader's question is "did it reproduce?"), then how each was reached, the latency and
throughput percentiles, the figures, the recomputed tables, method, grouped warnings, and last the environment,
folded under its fingerprint.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import pandas as pd

from harness.analysis import distributions, plots, summary, verdicts
from harness.analysis.engine import engine_note
from harness.analysis.tidy import ok_rows
from harness.analysis.writers import Section, flatten, fmt, frame_table, md_table
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
    note = engine_note(data.run_facts.get("backend"), data.run_facts.get("engine_device"))
    if note is not None:
        s.para(note)
    if not data.verdicts:
        s.para(f"The spec {data.spec.id} lists no claims.")
        return s
    s.table(
        ["claim", "published", "measured", "n", "interval", "verdict", "why"],
        [
            [
                v.claim_id,
                f"{v.published_text} {v.unit}".strip(),
                f"{_num(v.measured)} {v.unit}".strip() if v.measured is not None else "—",
                f"{v.n:,}",
                _interval(v),
                f"**{v.verdict.replace('_', ' ')}**",
                v.reason,
            ]
            for v in data.verdicts
        ],
    )
    files = ["[runs.csv](runs.csv)", "[runs_percentiles.csv](runs_percentiles.csv)", "[summary.json](summary.json)"]
    files.append("[verdicts.json](verdicts.json)")
    if data.origin == "kit":
        files.append("the run folders under [../runs/](../runs/)")
    s.para("Data behind every number: " + ", ".join(files) + ".")
    return s


def percentiles_section(data: ReportData) -> Section | None:
    """Per metric, the distribution over every successful protocol call or run (summary.json has every field)."""
    blocks = distributions.metric_blocks(data.frame)
    if not blocks:
        return None
    s = Section("Latency and throughput percentiles")
    cols = ("avg", "std", "min", "p50", "p90", "p95", "p99", "max")
    s.table(
        ["metric", "unit", "count", *cols],
        [
            [b["header"], b["unit"], f"{b['count']:,}", *(distributions.fmt(b[c]) for c in cols)]
            for b in blocks.values()
        ],
    )
    s.para("Per config and runtime, with p1 … p99: [runs_percentiles.csv](runs_percentiles.csv).")
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
    """The fingerprint on top; the ~150 facts behind it folded (an auditor opens them, a reader need not)."""
    s = Section("Environment")
    if not data.provenance:
        s.para("No provenance.json: the environment of these runs was not captured, so it is unknown.")
        return s
    fingerprint = data.provenance.get("fingerprint_sha256")
    s.para(f"Environment fingerprint: `{fingerprint}` (sha256 of the facts the claims depend on; see provenance.json).")
    rows = [[k, v] for k, v in flatten(data.provenance) if not k.startswith("fingerprint_")]
    s.folded(f"All {len(rows)} recorded facts", [md_table(["fact", "value"], rows)])
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
    return s


def _figure_md(fig: plots.Figure, data: ReportData) -> str:
    if fig.png is None:
        return f"{fig.title}: {fig.note}"
    rel = fig.png.relative_to(data.out_dir).as_posix()
    return f"![{fig.title}]({rel})" + (f"\n\n{fig.note}" if fig.note else "")


def attempts_section(data: ReportData) -> Section | None:
    """Runs that needed more than one attempt, failed, or lost their node: each attempt with its cause."""
    if data.origin != "kit":
        return None
    s = Section("Retries and failures")
    if data.attempts.empty:
        s.para("Every run succeeded at its first attempt.")
        return s
    runs = data.attempts["run_id"].nunique()
    s.para(f"{runs} run(s) needed more than one attempt or failed; every attempt and its cause (run.json keeps more):")
    s.table(*frame_table(data.attempts))
    return s


def grouped_warnings(warnings: list[str]) -> list[str]:
    """Warnings that say the same thing of several subjects ("CONFIG: only 1 run(s) …") become one line with
    the count and the subjects; identical lines are counted, never repeated."""
    subjects: dict[str, list[str]] = defaultdict(list)
    for line in warnings:
        subject, sep, message = line.partition(": ")
        if sep and subject.strip() and len(subject) <= 80:
            subjects[message].append(subject)
        else:
            subjects[line].append("")
    out = []
    for message, who in subjects.items():
        named = sorted({w for w in who if w})
        if not named:
            out.append(message if len(who) == 1 else f"{message} (×{len(who)})")
        elif len(named) == 1 and len(who) == 1:
            out.append(f"{named[0]}: {message}")
        else:
            listed = ", ".join(named[:8]) + (f", … ({len(named) - 8} more)" if len(named) > 8 else "")
            out.append(f"{len(who)}×: {message} — {listed}")
    return out


def warnings_section(data: ReportData) -> Section:
    s = Section("Warnings")
    if data.warnings:
        s.bullets(grouped_warnings(data.warnings))
    else:
        s.para("None.")
    return s


def all_sections(data: ReportData) -> list[Section]:
    parts = [
        verdicts_section(data),
        how_section(data),
        percentiles_section(data),
        figures_section(data),
        figures_table_section(data),
        contention_section(data),
        method_section(data),
        attempts_section(data),
        warnings_section(data),
        environment_section(data),
    ]
    return [p for p in parts if p is not None]


def empty_timeline() -> pd.DataFrame:
    return pd.DataFrame({"run_id": [], "role": [], "t_s": [], "cum_tokens": []})
