"""Figures for the report: the kit's only matplotlib user (Agg, no display), each figure as PNG and SVG.

Every function takes tables (the tidy frame of :mod:`harness.analysis.tidy`, verdicts as plain dicts) and an output
folder, and returns a :class:`Figure`; when the data a figure needs is absent (imported CSVs have no isolated
runs and no chunk timelines) it returns a Figure with no files and a note saying why, never an empty plot.
SVGs are written with a fixed hash salt and no date so a rebuilt report is byte-identical.

A rehearsal's figures carry their mark (SIMULATED and the time scale) inside the image, since a figure is copied
into slides and papers without the report around it. Configs run down the y axis, so 30+ config labels stay
readable, and legends sit outside the data.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import pandas as pd
from matplotlib.figure import Figure as MplFigure

from harness.analysis import stats
from harness.atomic import write_bytes_atomic
from harness.schemas import ClaimVerdict

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.5, 100
"""Every PNG is 800 × 450 pixels."""
VERDICT_COLOURS = {
    "matches": "#2e7d32",
    "reproduced": "#2e7d32",
    "differs": "#c62828",
    "not_reproduced": "#c62828",
    "inconclusive": "#f9a825",
    "not_in_the_data": "#9e9e9e",
    "not_comparable": "#9e9e9e",
}
ROLE_COLOURS = {"collector": "#1565c0", "insight": "#ef6c00", "baseline": "#6a1b9a", "chimera": "#00897b"}
_RC: Any = {"svg.hashsalt": "chimeraforge-kit", "font.size": 8, "svg.fonttype": "none"}
"""``svg.fonttype = none`` keeps text as text: the SVG stays searchable (its SIMULATED mark too) and small."""


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    png: Path | None
    svg: Path | None
    note: str | None = None

    @property
    def drawn(self) -> bool:
        return self.png is not None


def _skip(name: str, title: str, why: str) -> Figure:
    return Figure(name=name, title=title, png=None, svg=None, note=f"not drawn: {why}")


def _save(fig: MplFigure, out_dir: Path, name: str, title: str, mark: str | None, note: str | None = None) -> Figure:
    """PNG and SVG, each written whole or not at all (a failed write leaves no truncated figure)."""
    if mark:
        fig.text(0.005, 0.005, mark, ha="left", va="bottom", fontsize=9, fontweight="bold", color="#b71c1c")
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with matplotlib.rc_context(_RC):
        for path, kind, meta in ((png, "png", {"Software": None}), (svg, "svg", {"Date": None, "Creator": None})):
            buffer = io.BytesIO()
            fig.savefig(buffer, dpi=DPI, format=kind, metadata=meta)
            write_bytes_atomic(path, buffer.getvalue())
    return Figure(name=name, title=title, png=png, svg=svg, note=note)


def _new(rows: int = 1, cols: int = 1, *, height_in: float = HEIGHT_IN) -> tuple[MplFigure, Any]:
    with matplotlib.rc_context(_RC):
        fig = MplFigure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _rows_height(n: int, panels: int = 1) -> float:
    """Figure height for ``n`` labelled rows: about 0.22 in a row, never below the standard height."""
    return min(max(HEIGHT_IN, 0.22 * n * panels + 1.2), 40.0)


def _legend_outside(fig: MplFigure, ax: Any) -> None:
    """One legend right of the axes, outside the data (constrained layout makes room for it)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=7, frameon=False)


def _ok(frame: pd.DataFrame, level: str, run_kind: str = "protocol") -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[(frame["level"] == level) & frame["ok"].eq(True) & (frame["run_kind"] == run_kind)]


def published_vs_reproduced(verdicts: Sequence[ClaimVerdict], out_dir: Path, mark: str | None = None) -> Figure:
    """Each claim's measured value as a % difference from the published one, with its interval, coloured by
    verdict: one axis for claims of any unit."""
    name, title = "claims", "Published vs reproduced (difference from the published value, %)"
    usable = [v for v in verdicts if v.measured is not None and v.published]
    if not usable:
        return _skip(name, title, "no claim has a measured value")
    fig, axes = _new(height_in=_rows_height(len(usable)))
    ax = axes[0][0]
    for i, v in enumerate(usable):
        pub = float(v.published)

        def rel(x: float | None, pub: float = pub) -> float:
            return math.nan if x is None else (x - pub) / abs(pub) * 100

        mid = rel(v.measured)
        low, high = rel(v.ci_low), rel(v.ci_high)
        colour = VERDICT_COLOURS.get(v.verdict.removeprefix("rehearsal_"), "#000000")
        if not (math.isnan(low) or math.isnan(high)):
            ax.plot([low, high], [i, i], color=colour, linewidth=2, alpha=0.5)
        ax.plot([mid], [i], marker="o", color=colour)
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_yticks(range(len(usable)), [v.claim_id for v in usable])
    ax.invert_yaxis()
    ax.set_xlabel("(measured − published) / published, %   ·   line: confidence interval")
    ax.set_title(title)
    shown = {v.verdict.removeprefix("rehearsal_") for v in usable}
    for k, c in VERDICT_COLOURS.items():
        if k in shown:
            ax.plot([], [], marker="o", linestyle="", color=c, label=k.replace("_", " "))
    _legend_outside(fig, ax)
    skipped = len(verdicts) - len(usable)
    note = f"{skipped} claim(s) without a measured value left out" if skipped else None
    return _save(fig, out_dir, name, title, mark, note)


def efficiency_per_config(frame: pd.DataFrame, out_dir: Path, mark: str | None = None) -> Figure:
    """The originals' efficiency per config, one panel per runtime (never pooled across runtimes): the mean with
    its 95 % t interval clipped to what the formula allows (0–100 %), beside the true efficiency where measured.
    A config with one run gets a bare marker: one run per config has no interval."""
    name, title = "efficiency_per_config", "Multi-agent efficiency per config and runtime (mean, 95 % interval)"
    multi = _ok(frame, "multi")
    if multi.empty:
        return _skip(name, title, "no multi-agent runs")
    runtimes = sorted(str(r) for r in multi["runtime"].unique())
    configs = sorted(str(c) for c in multi["config_id"].unique())  # one row order for every panel
    fig, axes = _new(1, len(runtimes), height_in=_rows_height(len(configs)))
    single_run = False
    has_true = bool(multi["true_efficiency_pct"].notna().any())
    low_x = min(45.0, float(multi["efficiency_pct"].min()) - 2)
    for r, runtime in enumerate(runtimes):
        ax = axes[0][r]
        rows = multi[multi["runtime"] == runtime]
        for y, config in enumerate(configs):
            values = rows[rows["config_id"] == config]["efficiency_pct"].astype(float).to_numpy()
            if not values.size:
                continue
            mean = stats.mean(values)
            if values.size < 2:
                single_run = True
                ax.plot([mean], [y], marker="o", markerfacecolor="none", color="#607d8b", linestyle="")
                continue
            ci = stats.t_interval(values)
            low, high = max(ci.low, 0.0), min(ci.high, 100.0)
            ax.errorbar([mean], [y], xerr=[[mean - low], [high - mean]], fmt="o", color="#607d8b", capsize=3)
        if has_true:
            true = rows.groupby("config_id")["true_efficiency_pct"].mean().reindex(configs)
            ax.plot(true.to_numpy(), range(len(configs)), marker="s", linestyle="", color="#1565c0")
        ax.axvline(50, color="#c62828", linewidth=0.8, linestyle="--")
        ax.set_xlim(low_x, 101)
        ax.set_yticks(range(len(configs)), configs if r == 0 else [""] * len(configs), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(runtime, fontsize=8)
        ax.set_xlabel("efficiency, %", fontsize=7)
    ax0 = axes[0][0]
    ax0.plot([], [], marker="o", linestyle="", color="#607d8b", label="originals' efficiency (mean, interval)")
    if has_true:
        ax0.plot([], [], marker="s", linestyle="", color="#1565c0", label="true efficiency")
    ax0.plot([], [], linestyle="--", color="#c62828", label="50 %")
    _legend_outside(fig, ax0)
    fig.suptitle(title, fontsize=9)
    notes = []
    if single_run:
        notes.append("one run per config: a bare marker, no interval")
    if not has_true:
        notes.append("true efficiency not available (no isolated runs)")
    return _save(fig, out_dir, name, title, mark, "; ".join(notes) or None)


def runtime_distributions(frame: pd.DataFrame, out_dir: Path, mark: str | None = None) -> Figure:
    """The originals' efficiency per runtime as box plots with every run as a dot (two runtimes or more: one box
    alone compares nothing, and the per-config figure already shows its runs)."""
    name, title = "efficiency_per_runtime", "Efficiency distribution per runtime (every run)"
    multi = _ok(frame, "multi")
    if multi.empty:
        return _skip(name, title, "no multi-agent runs")
    groups = [(str(k), g["efficiency_pct"].astype(float).to_numpy()) for k, g in multi.groupby("runtime", sort=True)]
    if len(groups) < 2:
        return _skip(name, title, f"one runtime ({groups[0][0]}): nothing to compare it with")
    fig, axes = _new()
    ax = axes[0][0]
    ax.boxplot([v for _k, v in groups], tick_labels=[k for k, _v in groups], showfliers=False)
    for i, (_k, v) in enumerate(groups, 1):
        jitter = [i + ((j % 7) - 3) * 0.03 for j in range(len(v))]
        ax.plot(jitter, v, marker=".", linestyle="", color="#1565c0", alpha=0.6)
    ax.set_ylabel("originals' efficiency, %")
    ax.set_title(title)
    return _save(fig, out_dir, name, title, mark)


def ttft_and_throughput(frame: pd.DataFrame, out_dir: Path, mark: str | None = None) -> Figure:
    """Mean TTFT and server-side throughput per config and agent role (per runtime when there are several)."""
    name, title = "ttft_throughput_per_config", "TTFT and throughput per config and agent (means)"
    agents = _ok(frame, "agent")
    agents = agents[agents["tps"].notna() | agents["ttft_ms"].notna()] if not agents.empty else agents
    if agents.empty:
        return _skip(name, title, "no agent runs with throughput or TTFT")
    if agents["runtime"].nunique() > 1:  # never pooled across runtimes: one bar group per runtime and config
        agents = agents.assign(config_id=agents["runtime"].astype(str) + " · " + agents["config_id"].astype(str))
    table = agents.groupby(["config_id", "role"], sort=True)[["tps", "ttft_ms"]].mean().reset_index()
    configs = sorted(table["config_id"].unique())
    roles = sorted(table["role"].unique())
    fig, axes = _new(1, 2, height_in=_rows_height(len(configs), max(1, len(roles) // 2)))
    height = 0.8 / max(len(roles), 1)
    for col, (metric, label) in enumerate((("tps", "throughput, tok/s"), ("ttft_ms", "TTFT, ms"))):
        ax = axes[0][col]
        for r, role in enumerate(roles):
            sub = table[table["role"] == role].set_index("config_id").reindex(configs)
            ax.barh(
                [i + (r - (len(roles) - 1) / 2) * height for i in range(len(configs))],
                sub[metric].to_numpy(),
                height,
                label=role,
                color=ROLE_COLOURS.get(role),
            )
        ax.set_yticks(range(len(configs)), configs if col == 0 else [""] * len(configs), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(label)
    _legend_outside(fig, axes[0][0])
    fig.suptitle(title, fontsize=9)
    return _save(fig, out_dir, name, title, mark)


def aggregate_vs_isolated(frame: pd.DataFrame, out_dir: Path, mark: str | None = None) -> Figure:
    """Per config: one agent alone, each agent while concurrent, and both together (tokens per wall second)."""
    name, title = "aggregate_vs_isolated", "Throughput: isolated agent vs concurrent agents vs aggregate"
    multi = _ok(frame, "multi")
    iso = _ok(frame, "agent", run_kind="isolated")
    if multi.empty:
        return _skip(name, title, "no multi-agent runs")
    if iso.empty:
        return _skip(name, title, "no isolated runs (imported records have none)")
    configs = sorted(multi["config_id"].unique())
    series: list[tuple[str, Callable[[str], float], str]] = [
        ("isolated, one agent", lambda c: float(iso[iso["config_id"] == c]["tps"].mean()), "#2e7d32"),
        ("concurrent, collector", lambda c: float(multi[multi["config_id"] == c]["a_tps"].mean()), "#1565c0"),
        ("concurrent, insight", lambda c: float(multi[multi["config_id"] == c]["b_tps"].mean()), "#ef6c00"),
        (
            "aggregate (tokens / wall s)",
            lambda c: float(multi[multi["config_id"] == c]["aggregate_tps"].mean()),
            "#424242",
        ),
    ]
    fig, axes = _new(height_in=_rows_height(len(configs), 2))
    ax = axes[0][0]
    height = 0.2
    for s, (label, fn, colour) in enumerate(series):
        ax.barh(
            [i + (s - 1.5) * height for i in range(len(configs))],
            [fn(c) for c in configs],
            height,
            label=label,
            color=colour,
        )
    ax.set_yticks(range(len(configs)), configs, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("tok/s")
    ax.set_title(title, fontsize=9)
    _legend_outside(fig, ax)
    return _save(fig, out_dir, name, title, mark)


def multi_run_timeline(timeline: pd.DataFrame, out_dir: Path, mark: str | None = None) -> Figure:
    """Cumulative streamed tokens per agent over one multi-agent run: rising together = overlap."""
    name, title = "timeline", "One multi-agent run: cumulative tokens over time per agent"
    if timeline.empty:
        return _skip(name, title, "no chunk timelines (imported records carry none)")
    fig, axes = _new()
    ax = axes[0][0]
    for role, grp in timeline.groupby("role", sort=True):
        ax.step(grp["t_s"], grp["cum_tokens"], where="post", label=str(role), color=ROLE_COLOURS.get(str(role)))
    ax.set_xlabel("seconds since the concurrent run started")
    ax.set_ylabel("tokens streamed (chunks)")
    ax.set_title(f"{title} ({timeline['run_id'].iloc[0]})")
    _legend_outside(fig, ax)
    return _save(fig, out_dir, name, title, mark)


def render_all(
    frame: pd.DataFrame,
    verdicts: Sequence[ClaimVerdict],
    timeline: pd.DataFrame,
    out_dir: Path,
    *,
    mark: str | None = None,
) -> list[Figure]:
    """Every figure of the report, in report order (skipped ones carry their note); ``mark`` (a rehearsal's
    "SIMULATED · time scale 0.02") is drawn into each."""
    return [
        published_vs_reproduced(verdicts, out_dir, mark),
        efficiency_per_config(frame, out_dir, mark),
        runtime_distributions(frame, out_dir, mark),
        ttft_and_throughput(frame, out_dir, mark),
        aggregate_vs_isolated(frame, out_dir, mark),
        multi_run_timeline(timeline, out_dir, mark),
    ]
