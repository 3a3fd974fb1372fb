"""Figures for the report: the kit's only matplotlib user (Agg, no display), each figure as PNG and SVG.

Every function takes tables (the tidy frame of :mod:`harness.analysis.frames`, verdicts as plain dicts) and an output
folder, and returns a :class:`Figure`; when the data a figure needs is absent (imported CSVs have no isolated
runs and no chunk timelines) it returns a Figure with no files and a note saying why, never an empty plot.
SVGs are written with a fixed hash salt and no date so a rebuilt report is byte-identical.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import pandas as pd
from matplotlib.figure import Figure as MplFigure

from harness.atomic import write_bytes_atomic

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.5, 100
"""Every PNG is 800 × 450 pixels."""
VERDICT_COLOURS = {"reproduced": "#2e7d32", "not_reproduced": "#c62828", "not_comparable": "#9e9e9e"}
ROLE_COLOURS = {"collector": "#1565c0", "insight": "#ef6c00", "baseline": "#6a1b9a", "chimera": "#00897b"}
_RC: Any = {"svg.hashsalt": "chimeraforge-kit", "font.size": 8}


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


def _save(fig: MplFigure, out_dir: Path, name: str, title: str, note: str | None = None) -> Figure:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with matplotlib.rc_context(_RC):
        png_bytes, svg_bytes = io.BytesIO(), io.BytesIO()
        fig.savefig(png_bytes, dpi=DPI, format="png", metadata={"Software": None})
        fig.savefig(svg_bytes, format="svg", metadata={"Date": None, "Creator": None})
    write_bytes_atomic(png, png_bytes.getvalue())  # a full disk leaves no truncated figure behind
    write_bytes_atomic(svg, svg_bytes.getvalue())
    return Figure(name=name, title=title, png=png, svg=svg, note=note)


def _new(rows: int = 1, cols: int = 1) -> tuple[MplFigure, Any]:
    with matplotlib.rc_context(_RC):
        fig = MplFigure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _ok(frame: pd.DataFrame, level: str, run_kind: str = "protocol") -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[(frame["level"] == level) & frame["ok"].eq(True) & (frame["run_kind"] == run_kind)]


def published_vs_reproduced(verdicts: Sequence[Mapping[str, Any]], out_dir: Path) -> Figure:
    """Each claim's measured value as a % difference from the published one, with its interval, coloured by
    verdict: one axis for claims of any unit."""
    name, title = "claims", "Published vs reproduced (difference from the published value, %)"
    usable = [v for v in verdicts if v.get("measured") is not None and v.get("published")]
    if not usable:
        return _skip(name, title, "no claim has a measured value")
    fig, axes = _new()
    ax = axes[0][0]
    for i, v in enumerate(usable):
        pub = float(v["published"])

        def rel(x: float | None, pub: float = pub) -> float:
            return math.nan if x is None else (x - pub) / abs(pub) * 100

        mid = rel(v["measured"])
        low, high = rel(v.get("ci_low")), rel(v.get("ci_high"))
        colour = VERDICT_COLOURS.get(str(v["verdict"]), "#000000")
        if not (math.isnan(low) or math.isnan(high)):
            ax.plot([low, high], [i, i], color=colour, linewidth=2, alpha=0.5)
        ax.plot([mid], [i], marker="o", color=colour)
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_yticks(range(len(usable)), [str(v["claim_id"]) for v in usable])
    ax.invert_yaxis()
    ax.set_xlabel("(measured − published) / published, %   ·   line: confidence interval")
    ax.set_title(title)
    handles = [
        ax.plot([], [], marker="o", linestyle="", color=c, label=k.replace("_", " "))[0]
        for k, c in VERDICT_COLOURS.items()
    ]
    ax.legend(handles=handles, loc="best", fontsize=7)
    skipped = len(verdicts) - len(usable)
    return _save(
        fig, out_dir, name, title, f"{skipped} claim(s) without a measured value left out" if skipped else None
    )


def efficiency_per_config(frame: pd.DataFrame, out_dir: Path) -> Figure:
    """The originals' efficiency per config (mean ± sample σ) beside the true efficiency where measured."""
    name, title = "efficiency_per_config", "Multi-agent efficiency per config (mean ± σ over runs)"
    multi = _ok(frame, "multi")
    if multi.empty:
        return _skip(name, title, "no multi-agent runs")
    g = multi.groupby("config_id", sort=True)
    orig_mean, orig_std = g["efficiency_pct"].mean(), g["efficiency_pct"].std()
    true_mean = g["true_efficiency_pct"].mean()
    labels = [str(cid) for cid in orig_mean.index]
    fig, axes = _new()
    ax = axes[0][0]
    xs = range(len(orig_mean))
    has_true = bool(true_mean.notna().any())
    width = 0.4 if has_true else 0.8
    ax.bar(
        [x - (width / 2 if has_true else 0) for x in xs],
        orig_mean.to_numpy(),
        width,
        yerr=orig_std.fillna(0).to_numpy(),
        label="originals' formula (balance)",
        color="#90a4ae",
    )
    if has_true:
        ax.bar(
            [x + width / 2 for x in xs], true_mean.to_numpy(), width, label="true (vs isolated runs)", color="#1565c0"
        )
    ax.axhline(50, color="#c62828", linewidth=0.8, linestyle="--", label="50 %: one after the other")
    ax.set_xticks(list(xs), labels, rotation=30, ha="right", fontsize=6)
    ax.set_ylabel("efficiency, %")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    note = None if has_true else "true efficiency not available (no isolated runs)"
    return _save(fig, out_dir, name, title, note)


def runtime_distributions(frame: pd.DataFrame, out_dir: Path) -> Figure:
    """The originals' efficiency per runtime as box plots with every run as a dot."""
    name, title = "efficiency_per_runtime", "Efficiency distribution per runtime (every run)"
    multi = _ok(frame, "multi")
    if multi.empty:
        return _skip(name, title, "no multi-agent runs")
    groups = [(str(k), g["efficiency_pct"].astype(float).to_numpy()) for k, g in multi.groupby("runtime", sort=True)]
    fig, axes = _new()
    ax = axes[0][0]
    ax.boxplot([v for _k, v in groups], tick_labels=[k for k, _v in groups], showfliers=False)
    for i, (_k, v) in enumerate(groups, 1):
        jitter = [i + ((j % 7) - 3) * 0.03 for j in range(len(v))]
        ax.plot(jitter, v, marker=".", linestyle="", color="#1565c0", alpha=0.6)
    ax.set_ylabel("originals' efficiency, %")
    ax.set_title(title)
    return _save(fig, out_dir, name, title)


def ttft_and_throughput(frame: pd.DataFrame, out_dir: Path) -> Figure:
    """Mean TTFT and server-side throughput per config and agent role."""
    name, title = "ttft_throughput_per_config", "TTFT and throughput per config and agent"
    agents = _ok(frame, "agent")
    agents = agents[agents["tps"].notna() | agents["ttft_ms"].notna()] if not agents.empty else agents
    if agents.empty:
        return _skip(name, title, "no agent runs with throughput or TTFT")
    table = agents.groupby(["config_id", "role"], sort=True)[["tps", "ttft_ms"]].mean().reset_index()
    configs = sorted(table["config_id"].unique())
    roles = sorted(table["role"].unique())
    fig, axes = _new(1, 2)
    width = 0.8 / max(len(roles), 1)
    for col, (metric, label) in enumerate((("tps", "throughput, tok/s"), ("ttft_ms", "TTFT, ms"))):
        ax = axes[0][col]
        for r, role in enumerate(roles):
            sub = table[table["role"] == role].set_index("config_id").reindex(configs)
            ax.bar(
                [i + (r - (len(roles) - 1) / 2) * width for i in range(len(configs))],
                sub[metric].to_numpy(),
                width,
                label=role,
                color=ROLE_COLOURS.get(role),
            )
        ax.set_xticks(range(len(configs)), configs, rotation=90, fontsize=5)
        ax.set_ylabel(label)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, out_dir, name, title)


def aggregate_vs_isolated(frame: pd.DataFrame, out_dir: Path) -> Figure:
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
    fig, axes = _new()
    ax = axes[0][0]
    width = 0.2
    for s, (label, fn, colour) in enumerate(series):
        ax.bar(
            [i + (s - 1.5) * width for i in range(len(configs))],
            [fn(c) for c in configs],
            width,
            label=label,
            color=colour,
        )
    ax.set_xticks(range(len(configs)), configs, rotation=90 if len(configs) > 6 else 0, fontsize=6)
    ax.set_ylabel("tok/s")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, out_dir, name, title)


def multi_run_timeline(timeline: pd.DataFrame, out_dir: Path) -> Figure:
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
    ax.legend(fontsize=7)
    return _save(fig, out_dir, name, title)


def render_all(
    frame: pd.DataFrame, verdicts: Sequence[Mapping[str, Any]], timeline: pd.DataFrame, out_dir: Path
) -> list[Figure]:
    """Every figure of the report, in report order (skipped ones carry their note)."""
    return [
        published_vs_reproduced(verdicts, out_dir),
        efficiency_per_config(frame, out_dir),
        runtime_distributions(frame, out_dir),
        ttft_and_throughput(frame, out_dir),
        aggregate_vs_isolated(frame, out_dir),
        multi_run_timeline(timeline, out_dir),
    ]
