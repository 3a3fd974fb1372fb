"""The originals' per-run CSV records as the tidy table, refused whole when a row cannot be true.

Three record shapes are known by their columns (:data:`SHAPES`): multi-agent runs, per-call single-agent records
(TR111) and per-agent-run records (TR109). Before a row is converted, :mod:`harness.analysis.validate` checks
the file against its shape; any problem is a :class:`BadInputError` naming the file, row and column, so a
recomputation never judges a claim on an impossible number. Unknown extra columns are ignored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import metrics
from harness.analysis import stats, validate
from harness.analysis.tidy import (
    TWO_CALL_STAGES,
    add_improvements,
    flag,
    num,
    opts_label,
    original_labels,
    pair_label,
    runtime_names,
    split_report,
    to_frame,
)
from harness.errors import BadInputError
from harness.protocol.spec import Spec


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype=object, keep_default_na=False)
    except FileNotFoundError:
        raise BadInputError(
            f"no such records file: {path}", hint="pass a CSV in the shape of shared/reference/data/*.csv"
        ) from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInputError(f"cannot read {path} as CSV: {exc}") from None
    if raw.empty:
        raise BadInputError(f"{path} holds no records", hint="export at least one run")
    return raw


def _config_id(rec: dict[str, Any], spec: Spec | None) -> str:
    """The original's config label, or the spec's id for it where the spec numbers configs by test id
    (TR110's ``phase_2_test_108`` is the spec's ``108``)."""
    label = str(rec.get("config") or rec.get("test_id") or "")
    test_id = num(rec.get("test_id"))
    if spec is not None and not math.isnan(test_id):
        known = {c.id for c in spec.configs}
        for candidate in (f"{int(test_id):03d}", str(int(test_id))):
            if candidate in known and label not in known:
                return candidate
    return label


def _default_runtime(spec: Spec | None, language: str) -> str:
    if spec is not None and spec.agent is not None and len(spec.agent.runtimes) == 1:
        return spec.agent.runtimes[0].name
    return "asyncio" if language == "python" else "tokio"


def import_original(csv_path: Path, report: str | None = None, *, spec: Spec | None = None) -> pd.DataFrame:
    """The originals' per-run records (shared/reference/data shape) as the tidy table, ``origin='original'``.

    The spec's kind picks the record shape (without a spec, the columns do; see :mod:`harness.analysis.validate`):
    multi-agent runs (the two-call shape with ``*_call2_*`` and workflow columns or the older one-call shape
    without), per-call single-agent records (TR111) and per-agent-run records (TR109). A file that cannot be true
    is refused whole (:class:`BadInputError`: file, row, column). With ``spec`` the originals' runtime labels are
    mapped to the kit's runtime names and test ids to the spec's config ids.
    """
    raw = _read_csv(csv_path)
    cols = set(raw.columns)
    stored = str(raw["report"].iloc[0]) if "report" in cols else ""
    label = report or (spec.id if spec is not None else "") or stored
    if not label:
        raise BadInputError(f"{csv_path}: no `report` column", hint="pass the report id, e.g. --report tr115")
    rep, version = split_report(label)
    version = version or split_report(stored)[1]
    shape = validate.check(csv_path, raw, report=rep, kind=spec.kind if spec is not None else None)
    language = "python" if rep in ("tr108", "tr109", "tr110") else "rust"
    records = [{str(k): v for k, v in rec.items()} for rec in raw.to_dict("records")]
    common = {"origin": "original", "report": rep, "report_version": version, "simulated": False}
    if shape is validate.MULTI:
        rows = _import_multi(records, common, language, runtime_names(spec), spec)
    elif shape is validate.CALLS:
        rows = _import_calls(records, common, language, spec)
    else:
        rows = _import_agent_runs(records, common, language, spec)
    return to_frame(rows)


def _import_multi(
    records: list[dict[str, Any]],
    common: dict[str, Any],
    language: str,
    names: dict[str, str],
    spec: Spec | None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n, rec in enumerate(records, 2):
        config_id = _config_id(rec, spec)
        run_index = int(num(rec.get("run_index"))) if not math.isnan(num(rec.get("run_index"))) else n - 1
        runtime_raw = str(rec.get("runtime") or "")
        runtime = names.get(runtime_raw) or (
            runtime_raw.removeprefix("python-") if runtime_raw else _default_runtime(spec, language)
        )
        lang = "python" if runtime_raw.startswith("python") else language
        a_exec, b_exec, wall = (
            num(rec.get("a_exec_s")),
            num(rec.get("b_exec_s")),
            num(rec.get("concurrent_wall_s")),
        )
        if any(math.isnan(v) for v in (a_exec, b_exec, wall)) or wall <= 0:
            raise BadInputError(
                f"row {n}: a_exec_s, b_exec_s and concurrent_wall_s must be numbers (wall > 0)",
                hint="fix or drop the row; the kit never guesses a duration",
            )
        orig = metrics.original_efficiency(a_exec, b_exec, wall)
        side_opts = {
            s: (num(rec.get(f"{s}_num_gpu")), num(rec.get(f"{s}_num_ctx")), num(rec.get(f"{s}_temperature")))
            for s in "ab"
        }
        ident = {
            **common,
            "run_id": f"{config_id}#{run_index}",
            "run_kind": "protocol",
            "config_id": config_id,
            "config_label": pair_label(opts_label(*side_opts["a"]), opts_label(*side_opts["b"])),
            "scenario": str(rec.get("scenario") or ""),
            "phase": str(rec.get("phase") or ""),
            "runtime": runtime,
            "runtime_original": runtime_raw or original_labels(spec).get(runtime, runtime),
            "language": lang,
            "run_index": run_index,
            "ok": True,
        }
        side: dict[str, dict[str, float]] = {}
        for s, role in (("a", "collector"), ("b", "insight")):
            side[s], side_rows = _side_rows(rec, ident, s, role, side_opts[s])
            rows.extend(side_rows)
        tokens = side["a"]["tokens"] + side["b"]["tokens"]
        rows.append(
            {
                **ident,
                "level": "multi",
                "role": "pair",
                "concurrent_wall_s": wall,
                "a_exec_s": a_exec,
                "b_exec_s": b_exec,
                "sequential_estimate_s": orig.sequential_estimate_s,
                "speedup": orig.speedup,
                "efficiency_pct": orig.efficiency_pct,
                "contention": orig.contention,
                "isolated_a_s": math.nan,
                "isolated_b_s": math.nan,
                "true_efficiency_pct": math.nan,
                "aggregate_tps": tokens / wall,
                "a_tps": side["a"]["tps"],
                "b_tps": side["b"]["tps"],
                "a_ttft_ms": side["a"]["ttft_ms"],
                "b_ttft_ms": side["b"]["ttft_ms"],
                "a_tokens": side["a"]["tokens"],
                "b_tokens": side["b"]["tokens"],
                "throughput_delta_tps": side["b"]["tps"] - side["a"]["tps"],
                "ttft_delta_ms": side["a"]["ttft_ms"] - side["b"]["ttft_ms"],
                "sequential_estimate_s_recorded": num(rec.get("sequential_estimate_s")),
                "speedup_recorded": num(rec.get("speedup_recorded")),
                "efficiency_pct_recorded": num(rec.get("efficiency_recorded")),
                "config_efficiency_pct_recorded": num(rec.get("config_avg_efficiency_recorded")),
                "contention_recorded": flag(rec.get("contention_recorded")),
                "throughput_delta_tps_recorded": num(rec.get("throughput_delta_recorded")),
                "ttft_delta_ms_recorded": num(rec.get("ttft_delta_ms_recorded")),
            }
        )
    return rows


def _side_rows(
    rec: dict[str, Any], ident: dict[str, Any], s: str, role: str, opts: tuple[float, float, float]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """One side of a multi-agent record: its agent row and one row per recorded call (``{s}_callN_*``)."""
    out: list[dict[str, Any]] = []
    fig = {
        "tps": num(rec.get(f"{s}_tps_avg")),
        "ttft_ms": num(rec.get(f"{s}_ttft_ms_avg")),
        "tokens": num(rec.get(f"{s}_tokens")),
    }
    out.append(
        {
            **ident,
            "level": "agent",
            "role": role,
            "side": s,
            "num_gpu": opts[0],
            "num_ctx": opts[1],
            "temperature": opts[2],
            "exec_s": num(rec.get(f"{s}_exec_s")),
            **fig,
            "load_ms": num(rec.get(f"{s}_load_ms_sum")),
            "prompt_eval_ms": num(rec.get(f"{s}_prompt_eval_ms_sum")),
            "eval_ms": num(rec.get(f"{s}_eval_ms_sum")),
            "files_ingested": num(rec.get(f"{s}_files_ingested")),
            "calls_ok": num(rec.get(f"{s}_llm_calls")),
        }
    )
    k = 1
    two_call = f"{s}_call2_tps" in rec
    while f"{s}_call{k}_tps" in rec or f"{s}_call{k}_ttft_ms" in rec:
        out.append(
            {
                **ident,
                "level": "call",
                "role": role,
                "side": s,
                "stage": TWO_CALL_STAGES.get(k, "single") if two_call else "single",
                "call_index": k,
                "num_gpu": opts[0],
                "num_ctx": opts[1],
                "temperature": opts[2],
                "tps": num(rec.get(f"{s}_call{k}_tps")),
                "ttft_ms": num(rec.get(f"{s}_call{k}_ttft_ms")),
                "tokens": num(rec.get(f"{s}_call{k}_tokens")),
                "load_ms": num(rec.get(f"{s}_call{k}_load_ms")),
            }
        )
        k += 1
    return fig, out


def _single_ident(rec: dict[str, Any], common: dict[str, Any], language: str, spec: Spec | None) -> dict[str, Any]:
    config_id = str(rec.get("config") or "")
    run_index = int(num(rec.get("run_index")) if not math.isnan(num(rec.get("run_index"))) else 1)
    opts = (num(rec.get("num_gpu")), num(rec.get("num_ctx")), num(rec.get("temperature")))
    return {
        **common,
        "run_id": f"{config_id}#{run_index}",
        "run_kind": "protocol",
        "config_id": config_id,
        "scenario": "single_agent",
        "phase": "",
        "runtime": _default_runtime(spec, language),
        "runtime_original": original_labels(spec).get(_default_runtime(spec, language), ""),
        "language": language,
        "run_index": run_index,
        "role": str(rec.get("agent") or ""),
        "side": "",
        "ok": True,
        "num_gpu": opts[0],
        "num_ctx": opts[1],
        "temperature": opts[2],
        "config_label": opts_label(*opts),
    }


def _import_agent_runs(
    records: list[dict[str, Any]], common: dict[str, Any], language: str, spec: Spec | None
) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        rows.append(
            {
                **_single_ident(rec, common, language, spec),
                "level": "agent",
                "exec_s": num(rec.get("execution_time_s")),
                "tps": num(rec.get("tps_avg")),
                "ttft_ms": num(rec.get("ttft_ms_avg")),
                "tokens": num(rec.get("tokens")),
                "files_ingested": num(rec.get("files_ingested")),
                "calls_ok": num(rec.get("llm_calls")),
                "tps_improvement_pct_recorded": num(rec.get("throughput_improvement_pct_recorded")),
                "ttft_reduction_pct_recorded": num(rec.get("ttft_reduction_pct_recorded")),
            }
        )
    add_improvements(rows)
    return rows


def _import_calls(
    records: list[dict[str, Any]], common: dict[str, Any], language: str, spec: Spec | None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    by_run: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    stage_index = {v: k for k, v in TWO_CALL_STAGES.items()}
    for rec in records:
        ident = _single_ident(rec, common, language, spec)
        stage = str(rec.get("stage") or "single")
        row = {
            **ident,
            "level": "call",
            "stage": stage,
            "call_index": stage_index.get(
                stage, len(by_run[(ident["config_id"], ident["role"], ident["run_index"])]) + 1
            ),
            "tps": num(rec.get("tps")),
            "ttft_ms": num(rec.get("ttft_ms")),
            "tokens": num(rec.get("tokens")),
            "load_ms": num(rec.get("load_ms")),
            "prompt_eval_ms": num(rec.get("prompt_eval_ms")),
            "eval_ms": num(rec.get("eval_ms")),
            "eval_s": num(rec.get("eval_ms")) / 1000,
            "files_ingested": num(rec.get("files_ingested")),
            "ok": True,
        }
        rows.append(row)
        by_run[(ident["config_id"], ident["role"], ident["run_index"])].append(
            {**row, "_workflow_s": num(rec.get("workflow_total_s")), "_rec": rec}
        )
    agents: list[dict[str, Any]] = []
    for calls in by_run.values():
        first = calls[0]
        rec = first["_rec"]
        agents.append(
            {
                **{k: first[k] for k in _single_ident(rec, common, language, spec)},
                "level": "agent",
                "exec_s": first["_workflow_s"],
                "tps": stats.mean([c["tps"] for c in calls]),
                "ttft_ms": stats.mean([c["ttft_ms"] for c in calls]),
                "tokens": float(np.nansum([c["tokens"] for c in calls])),
                "load_ms": float(np.nansum([c["load_ms"] for c in calls])),
                "prompt_eval_ms": float(np.nansum([c["prompt_eval_ms"] for c in calls])),
                "eval_ms": float(np.nansum([c["eval_ms"] for c in calls])),
                "files_ingested": first["files_ingested"],
                "calls_ok": float(len(calls)),
                "calls_failed": 0.0,
                "config_tps_recorded": num(rec.get("agg_tps_recorded")),
                "config_ttft_ms_recorded": num(rec.get("agg_ttft_ms_recorded")),
            }
        )
    add_improvements(agents)
    return agents + rows
