"""report.md, and report.html rendered from it: formatting only, no figure computed here.

The Markdown is the one source; the HTML is that Markdown rendered by markdown-it-py (CommonMark with tables),
so the two cannot say different things and no backtick or asterisk shows raw in the browser. The HTML is
self-contained: each figure's SVG is inlined in place of the PNG the Markdown links to.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from markdown_it import MarkdownIt

from harness.atomic import write_text_atomic

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:80em;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}"
    "table{border-collapse:collapse;margin:1em 0;font-size:.8em}td,th{border:1px solid #ccc;padding:.25em .5em}"
    "th{background:#f0f0f0}td:nth-child(n+2){font-variant-numeric:tabular-nums}"
    "blockquote{background:#b71c1c;color:#fff;padding:.5em 1em;margin:1em 0;font-size:1.15em}"
    "details{margin:1em 0}summary{cursor:pointer;font-weight:bold}"
    "figure{margin:1em 0}figure svg{max-width:100%;height:auto;border:1px solid #ddd}"
    "figcaption{font-size:.85em;color:#555}code{background:#f5f5f5;padding:0 .2em}"
)
SIMULATED_BANNER = (
    "SIMULATED: these runs talked to the simulated Ollama. This report rehearses the pipeline; "
    "no number in it is a measurement."
)
INTEGER_COLUMNS = frozenset(
    {
        "n",
        "n_runs",
        "runs",
        "count",
        "run_index",
        "call_index",
        "agent_run_index",
        "num_gpu",
        "num_ctx",
        "top_k",
        "num_predict",
        "seed",
        "tokens",
        "a_tokens",
        "b_tokens",
        "chunk_count",
        "calls_ok",
        "calls_failed",
        "files_ingested",
        "repetition",
    }
)
"""Columns that count or name something: shown (and written to CSV) as integers, never ``80.0``."""


def fmt(value: Any, digits: int = 2) -> str:
    """One value for a table cell: '—' for absent, integral counts without decimals, thousands separated."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:,.{digits}f}" if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def integer_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every :data:`INTEGER_COLUMNS` column whose values are whole numbers as nullable ints."""
    out = frame.copy()
    for col in out.columns:
        if col not in INTEGER_COLUMNS:
            continue
        values = pd.to_numeric(out[col], errors="coerce")
        whole = values.dropna()
        if len(whole) and bool((whole == whole.round()).all()) and not out[col].map(lambda v: isinstance(v, str)).any():
            out[col] = values.round().astype("Int64")
    return out


def _cell(value: Any) -> str:
    if value is pd.NA:
        return "—"
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    return fmt(value)


def frame_table(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    shown = integer_columns(frame)
    return [str(c) for c in shown.columns], [[_cell(v) for v in row] for row in shown.itertuples(index=False)]


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def flatten(doc: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested document as (dotted.key, value) pairs, sorted, for the environment table."""
    if isinstance(doc, Mapping):
        out: list[tuple[str, str]] = []
        for key in sorted(doc, key=str):
            out += flatten(doc[key], f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(doc, list) and doc and any(isinstance(x, Mapping | list) for x in doc):
        out = []
        for i, item in enumerate(doc):
            out += flatten(item, f"{prefix}[{i}]")
        return out
    return [(prefix, json.dumps(doc, ensure_ascii=False) if not isinstance(doc, str) else doc)]


def anchor(title: str) -> str:
    """The id a section's heading gets in the HTML, and the table of contents links to (GitHub's slug too)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@dataclass
class Section:
    """One titled part of the report, as Markdown blocks."""

    title: str
    md: list[str] = field(default_factory=list)

    def para(self, text: str) -> None:
        self.md.append(text)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.md.append(md_table(headers, rows))

    def bullets(self, items: Sequence[str]) -> None:
        self.md.append("\n".join(f"- {i}" for i in items))

    def folded(self, summary: str, blocks: Sequence[str]) -> None:
        """Blocks behind a ``<details>`` fold: present for who wants them, not in the reader's way."""
        self.md.append(f"<details><summary>{html.escape(summary)}</summary>\n")
        self.md.extend(blocks)
        self.md.append("</details>")


def markdown(title: str, question: str, sections: Sequence[Section], *, simulated: bool) -> str:
    """The whole report as Markdown: title, the SIMULATED banner when it applies, a table of contents."""
    md = [f"# {title}", ""]
    if simulated:
        md += [f"> **{SIMULATED_BANNER}**", ""]
    md += [f"Question: {question}", ""]
    md += ["Contents: " + " · ".join(f"[{s.title}](#{anchor(s.title)})" for s in sections), ""]
    for sec in sections:
        md += [f"## {sec.title}", ""]
        for block in sec.md:
            md += [block, ""]
    return "\n".join(md).rstrip() + "\n"


def write_markdown(path: Path, text: str) -> Path:
    write_text_atomic(path, text)
    return path


_IMAGE = re.compile(r'<img src="(?P<src>figures/[\w.-]+)\.png" alt="(?P<alt>[^"]*)"\s*/?>')


def _inline_svg(page: str, root: Path) -> str:
    """Each ``figures/NAME.png`` image becomes the figure's own SVG, inlined (the page needs no other file)."""

    def swap(m: re.Match[str]) -> str:
        svg = root / f"{m.group('src')}.svg"
        if not svg.is_file():
            return m.group(0)
        body = svg.read_text(encoding="utf-8")
        body = body[body.index("<svg") :]
        return f'<figure role="img" aria-label="{m.group("alt")}">{body}</figure>'

    return _IMAGE.sub(swap, page)


def render_html(markdown_text: str, title: str, root: Path) -> str:
    """report.html from report.md: CommonMark + tables (raw HTML kept for the folds and anchors), SVG inlined."""
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown_text)
    body = re.sub(r"<h2>(.*?)</h2>", lambda m: f'<h2 id="{anchor(html.unescape(m.group(1)))}">{m.group(1)}</h2>', body)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n{_inline_svg(body, root)}</body></html>\n"
    )


def write_html(path: Path, markdown_text: str, title: str) -> Path:
    write_text_atomic(path, render_html(markdown_text, title, path.parent))
    return path
