"""report.md and a self-contained report.html from a list of sections: formatting only, no figure computed here."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:80em;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:.8em}td,th{border:1px solid #ccc;padding:.25em .5em}"
    "th{background:#f0f0f0}.matches,.reproduced{background:#e8f5e9}.differs,.not_reproduced{background:#ffebee}"
    ".inconclusive{background:#fff8e1}.not_in_the_data,.not_comparable{background:#f5f5f5}"
    ".banner{background:#b71c1c;color:#fff;padding:1em;font-size:1.3em;"
    "font-weight:bold;text-align:center}img{max-width:100%;border:1px solid #ddd}"
)
SIMULATED_BANNER = (
    "SIMULATED: these runs talked to the simulated Ollama. This report rehearses the pipeline; "
    "no number in it is a measurement."
)


def fmt(value: Any, digits: int = 2) -> str:
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


def frame_table(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    return [str(c) for c in frame.columns], [[fmt(v) for v in row] for row in frame.itertuples(index=False)]


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


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


@dataclass
class Section:
    """One titled part of the report, kept in both forms as it is built."""

    title: str
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def para(self, text: str) -> None:
        self.md.append(text)
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None
    ) -> None:
        self.md.append(md_table(headers, rows))
        self.html.append(html_table(headers, rows, classes))

    def bullets(self, items: Sequence[str]) -> None:
        self.md.append("\n".join(f"- {i}" for i in items))
        self.html.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")


def write_markdown(path: Path, title: str, question: str, sections: Sequence[Section], *, simulated: bool) -> Path:
    md = [f"# {title}", ""]
    if simulated:
        md += [f"> **{SIMULATED_BANNER}**", ""]
    md += [f"Question: {question}", ""]
    for sec in sections:
        md += [f"## {sec.title}", ""]
        for block in sec.md:
            md += [block, ""]
    path.write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")
    return path


def write_html(path: Path, title: str, question: str, sections: Sequence[Section], *, simulated: bool) -> Path:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    if simulated:
        parts.append(f'<div class="banner">{html.escape(SIMULATED_BANNER)}</div>')
    parts += [f"<h1>{html.escape(title)}</h1>", f"<p>Question: {html.escape(question)}</p>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts += sec.html
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
