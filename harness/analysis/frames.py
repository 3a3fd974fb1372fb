"""One tidy table from either source: the kit's artifact folders or the originals' per-run CSV records.

Reads files only (no Docker, no HTTP), so a report can be rebuilt on a laptop from an artifact folder.

The table (:func:`load_artifacts`, :func:`import_original`) has one row per *observation unit*, named by
``level``:

- ``call``  one request to Ollama (TTFT, server and client rate, token/timing reconciliation);
- ``agent`` one agent run: unweighted means over its calls, as the reports reduced them;
- ``multi`` one concurrent run of two agents: the originals' efficiency *and* the true efficiency.

A multi-agent run therefore gives one ``multi`` row, two ``agent`` rows (collector = side a, insight = side b)
and one ``call`` row per request; a single-agent run gives one ``agent`` row per agent (baseline, chimera).
Columns that do not apply to a level are NaN. Units are in the names: ``_s`` seconds, ``_ms`` milliseconds,
``_tps`` / ``tps`` tokens per second, ``_pct`` percent, ``_mb`` MiB. Values the originals stored are kept as
``*_recorded`` beside the recomputed ones; see :data:`COLUMNS` (and docs/analysis.md) for every column.

Metrics come from :mod:`harness.metrics` (the formulas live there, not here).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import metrics
from harness.analysis import stats
from harness.artifacts import ArtifactDir, RunResult, Sweep, load_json_doc, load_sweep
from harness.errors import ArtifactError, BadInputError
from harness.protocol.spec import Spec, load_spec
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord

MIB = 1024 * 1024

COLUMNS: dict[str, str] = {
    # identity
    "level": "call | agent | multi: the unit a row describes",
    "origin": "kit (measured by this kit) | original (imported from the reports' records)",
    "report": "report id, lower case (tr115)",
    "report_version": "report version (v2) or empty",
    "run_id": "kit run id; for imports <config_id>#<run_index>",
    "run_kind": "protocol | isolated | diagnostic (imports: protocol)",
    "simulated": "bool: the run talked to the simulated Ollama (a rehearsal, never a measurement)",
    "config_id": "config id (spec id or the original's label)",
    "config_label": "num_gpu/num_ctx/temperature; 'default' when none is sent; 'A vs B' when sides differ",
    "scenario": "baseline_vs_chimera | chimera_hetero | chimera_homo | single_agent | single_inference",
    "phase": "original test phase (TR110) or empty",
    "runtime": "async runtime (kit name; originals' labels mapped through the spec when given)",
    "runtime_original": "the runtime's label in the original report (claims' runtime filters match either)",
    "language": "python | rust",
    "run_index": "repetition, 1-based",
    "role": "baseline | chimera | collector | insight | inference; 'pair' on multi rows",
    "side": "a (collector) | b (insight) | empty",
    "stage": "call rows: analysis | report | single",
    "call_index": "call rows: 1-based index inside the agent run",
    "ok": "bool: the run / agent / call completed",
    "num_gpu": "option sent (NaN = not sent)",
    "num_ctx": "option sent (NaN = not sent)",
    "temperature": "option sent (NaN = not sent)",
    # agent and call figures
    "exec_s": "agent rows: agent run duration (s); multi-agent: measured during the concurrent run",
    "tps": "server-side decode rate eval_count / eval_duration (tok/s); agent rows: mean over calls",
    "client_tps": "client-side rate: chunks after the first / first-to-last chunk span (tok/s)",
    "ttft_ms": "client time to the first non-empty chunk (ms); agent rows: mean over calls",
    "tokens": "eval_count (agent rows: summed over ok calls)",
    "load_ms": "Ollama load_duration (ms; agent rows: sum)",
    "prompt_eval_ms": "Ollama prompt_eval_duration (ms; agent rows: sum)",
    "eval_ms": "Ollama eval_duration (ms; agent rows: sum)",
    "files_ingested": "corpus files the agent read",
    "calls_ok": "agent rows: successful calls",
    "calls_failed": "agent rows: failed calls",
    "peak_memory_mb": "agent rows: peak memory of the agent (process RSS or container cgroup peak, MiB)",
    "startup_s": "agent rows: process start to first request (s)",
    "tps_improvement_pct": "chimera rows: (tps_chimera − tps_baseline) / tps_baseline · 100, same run",
    "ttft_reduction_pct": "chimera rows: (ttft_baseline − ttft_chimera) / ttft_baseline · 100, same run",
    # call reconciliation
    "chunk_count": "call rows: chunks with non-empty text the client received",
    "token_gap": "call rows: eval_count − chunk_count (server tokens the client did not see as chunks)",
    "client_decode_s": "call rows: first-to-last chunk span at the client (s)",
    "eval_s": "call rows: Ollama eval_duration (s)",
    "decode_span_ratio": "call rows: client_decode_s / eval_s (1 = client and server agree)",
    # multi-agent figures
    "concurrent_wall_s": "multi rows: wall time around the concurrent join (s)",
    "a_exec_s": "multi rows: collector duration during the concurrent run (s)",
    "b_exec_s": "multi rows: insight duration during the concurrent run (s)",
    "sequential_estimate_s": "multi rows: a_exec_s + b_exec_s, the originals' 'sequential' time (s)",
    "speedup": "multi rows: sequential_estimate_s / concurrent_wall_s",
    "efficiency_pct": "multi rows: the originals' efficiency, speedup / 2 · 100 (measures balance)",
    "contention": "multi rows: bool, speedup < 1.5 (the originals' rule)",
    "isolated_a_s": "multi rows: mean duration of side a's isolated runs of the same config (s)",
    "isolated_b_s": "multi rows: mean duration of side b's isolated runs of the same config (s)",
    "true_efficiency_pct": "multi rows: (isolated_a_s + isolated_b_s) / (2 · wall) · 100",
    "aggregate_tps": "multi rows: (a_tokens + b_tokens) / concurrent_wall_s (tok/s)",
    "a_tps": "multi rows: collector mean server-side rate (tok/s)",
    "b_tps": "multi rows: insight mean server-side rate (tok/s)",
    "a_ttft_ms": "multi rows: collector mean TTFT (ms)",
    "b_ttft_ms": "multi rows: insight mean TTFT (ms)",
    "a_tokens": "multi rows: collector tokens",
    "b_tokens": "multi rows: insight tokens",
    "throughput_delta_tps": "multi rows: b_tps − a_tps",
    "ttft_delta_ms": "multi rows: a_ttft_ms − b_ttft_ms",
    # the originals' stored values (imports only)
    "sequential_estimate_s_recorded": "as stored by the original",
    "speedup_recorded": "as stored by the original",
    "efficiency_pct_recorded": "as stored by the original (TR110 left it empty)",
    "config_efficiency_pct_recorded": "TR110: the config's mean efficiency as stored",
    "contention_recorded": "as stored by the original",
    "throughput_delta_tps_recorded": "as stored by the original",
    "ttft_delta_ms_recorded": "as stored by the original",
    "tps_improvement_pct_recorded": "as stored by the original",
    "ttft_reduction_pct_recorded": "as stored by the original",
    "config_tps_recorded": "TR111: the config-and-agent mean rate as stored",
    "config_ttft_ms_recorded": "TR111: the config-and-agent mean TTFT as stored",
}

_BOOL_COLUMNS = ("simulated", "ok", "contention", "contention_recorded")
_TWO_CALL_STAGES = {1: "analysis", 2: "report"}


# --------------------------------------------------------------------------------------------------- helpers


def _f(value: Any) -> float:
    """A float, NaN for missing or unparsable values (CSV cells, None)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _b(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _nan_if_none(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


def _opts_label(num_gpu: float, num_ctx: float, temperature: float) -> str:
    if all(math.isnan(v) for v in (num_gpu, num_ctx, temperature)):
        return "default"

    def show(v: float, *, decimal: bool = False) -> str:
        if math.isnan(v):
            return "-"
        text = f"{v:g}"
        return f"{v:.1f}" if decimal and "." not in text else text

    return f"{show(num_gpu)}/{show(num_ctx)}/{show(temperature, decimal=True)}"


def _pair_label(a: str, b: str) -> str:
    return a if a == b else f"{a} vs {b}"


def _split_report(label: str) -> tuple[str, str]:
    """'TR115_v2' → ('tr115', 'v2')."""
    head, _, version = label.strip().lower().partition("_")
    return head, version


def _options_of(options: Mapping[str, float | int] | None) -> tuple[float, float, float]:
    opts = options or {}
    return _f(opts.get("num_gpu")), _f(opts.get("num_ctx")), _f(opts.get("temperature"))


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows → the documented columns in their documented order (absent ones NaN)."""
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    for col in _BOOL_COLUMNS:
        frame[col] = frame[col].astype(object)
    return frame


def _improvements(rows: list[dict[str, Any]]) -> None:
    """Chimera rows get their improvement over the baseline agent of the same run (the reports' pairing)."""
    base: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        if row["level"] == "agent" and row["role"] == "baseline":
            base[(row["config_id"], row["run_index"])] = row
    for row in rows:
        if row["level"] != "agent" or row["role"] != "chimera":
            continue
        ref = base.get((row["config_id"], row["run_index"]))
        if ref is None:
            continue
        if ref["tps"] and not math.isnan(ref["tps"]) and not math.isnan(row["tps"]):
            row["tps_improvement_pct"] = metrics.pct_change(row["tps"], ref["tps"])
        if ref["ttft_ms"] and not math.isnan(ref["ttft_ms"]) and not math.isnan(row["ttft_ms"]):
            row["ttft_reduction_pct"] = metrics.pct_reduction(row["ttft_ms"], ref["ttft_ms"])


# ------------------------------------------------------------------------------------- the originals' records


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


def _runtime_names(spec: Spec | None) -> dict[str, str]:
    """Original label → kit runtime name; where several share a label the first listed (protocol) wins."""
    if spec is None or spec.agent is None:
        return {}
    return {rt.original: rt.name for rt in reversed(spec.agent.runtimes) if rt.original}


def _original_labels(spec: Spec | None) -> dict[str, str]:
    """Kit runtime name → the label the original report used for it."""
    if spec is None or spec.agent is None:
        return {}
    return {rt.name: rt.original or rt.name for rt in spec.agent.runtimes}


def _config_id(rec: dict[str, Any], spec: Spec | None) -> str:
    """The original's config label, or the spec's id for it where the spec numbers configs by test id
    (TR110's ``phase_2_test_108`` is the spec's ``108``)."""
    label = str(rec.get("config") or rec.get("test_id") or "")
    test_id = _f(rec.get("test_id"))
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

    Three shapes are recognised by their columns: multi-agent runs (``a_exec_s``, ``b_exec_s``,
    ``concurrent_wall_s``; the two-call shape with ``*_call2_*`` and workflow columns or the older one-call
    shape without), per-call single-agent records (``stage``, ``tps``, ``ttft_ms``, ``agent``: TR111) and
    per-agent-run records (``agent``, ``tps_avg``: TR109). Unknown columns are ignored. With ``spec`` the
    originals' runtime labels are mapped to the kit's runtime names.
    """
    raw = _read_csv(csv_path)
    cols = set(raw.columns)
    label = report or (str(raw["report"].iloc[0]) if "report" in cols else "")
    if not label:
        raise BadInputError(f"{csv_path}: no `report` column", hint="pass the report id, e.g. --report tr115")
    rep, version = _split_report(label)
    language = "python" if rep in ("tr108", "tr109", "tr110") else "rust"
    names = _runtime_names(spec)
    records = [{str(k): v for k, v in rec.items()} for rec in raw.to_dict("records")]
    common = {"origin": "original", "report": rep, "report_version": version, "simulated": False}
    if {"a_exec_s", "b_exec_s", "concurrent_wall_s"} <= cols:
        rows = _import_multi(records, common, language, names, spec)
    elif {"agent", "stage", "tps", "ttft_ms"} <= cols:
        rows = _import_calls(records, common, language, spec)
    elif {"agent", "tps_avg"} <= cols:
        rows = _import_agent_runs(records, common, language, spec)
    else:
        raise BadInputError(
            f"{csv_path}: not a records file the kit knows",
            hint="expected multi-agent columns (a_exec_s, b_exec_s, concurrent_wall_s), per-call columns "
            "(agent, stage, tps, ttft_ms) or per-agent-run columns (agent, tps_avg)",
        )
    return _frame(rows)


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
        run_index = int(_f(rec.get("run_index"))) if not math.isnan(_f(rec.get("run_index"))) else n - 1
        runtime_raw = str(rec.get("runtime") or "")
        runtime = names.get(runtime_raw) or (
            runtime_raw.removeprefix("python-") if runtime_raw else _default_runtime(spec, language)
        )
        lang = "python" if runtime_raw.startswith("python") else language
        a_exec, b_exec, wall = (
            _f(rec.get("a_exec_s")),
            _f(rec.get("b_exec_s")),
            _f(rec.get("concurrent_wall_s")),
        )
        if any(math.isnan(v) for v in (a_exec, b_exec, wall)) or wall <= 0:
            raise BadInputError(
                f"row {n}: a_exec_s, b_exec_s and concurrent_wall_s must be numbers (wall > 0)",
                hint="fix or drop the row; the kit never guesses a duration",
            )
        orig = metrics.original_efficiency(a_exec, b_exec, wall)
        side_opts = {
            s: (_f(rec.get(f"{s}_num_gpu")), _f(rec.get(f"{s}_num_ctx")), _f(rec.get(f"{s}_temperature"))) for s in "ab"
        }
        ident = {
            **common,
            "run_id": f"{config_id}#{run_index}",
            "run_kind": "protocol",
            "config_id": config_id,
            "config_label": _pair_label(_opts_label(*side_opts["a"]), _opts_label(*side_opts["b"])),
            "scenario": str(rec.get("scenario") or ""),
            "phase": str(rec.get("phase") or ""),
            "runtime": runtime,
            "runtime_original": runtime_raw or _original_labels(spec).get(runtime, runtime),
            "language": lang,
            "run_index": run_index,
            "ok": True,
        }
        side: dict[str, dict[str, float]] = {}
        for s, role in (("a", "collector"), ("b", "insight")):
            fig = {
                "tps": _f(rec.get(f"{s}_tps_avg")),
                "ttft_ms": _f(rec.get(f"{s}_ttft_ms_avg")),
                "tokens": _f(rec.get(f"{s}_tokens")),
            }
            side[s] = fig
            rows.append(
                {
                    **ident,
                    "level": "agent",
                    "role": role,
                    "side": s,
                    "num_gpu": side_opts[s][0],
                    "num_ctx": side_opts[s][1],
                    "temperature": side_opts[s][2],
                    "exec_s": _f(rec.get(f"{s}_exec_s")),
                    **fig,
                    "load_ms": _f(rec.get(f"{s}_load_ms_sum")),
                    "prompt_eval_ms": _f(rec.get(f"{s}_prompt_eval_ms_sum")),
                    "eval_ms": _f(rec.get(f"{s}_eval_ms_sum")),
                    "files_ingested": _f(rec.get(f"{s}_files_ingested")),
                    "calls_ok": _f(rec.get(f"{s}_llm_calls")),
                }
            )
            k = 1
            two_call = f"{s}_call2_tps" in rec
            while f"{s}_call{k}_tps" in rec or f"{s}_call{k}_ttft_ms" in rec:
                rows.append(
                    {
                        **ident,
                        "level": "call",
                        "role": role,
                        "side": s,
                        "stage": _TWO_CALL_STAGES.get(k, "single") if two_call else "single",
                        "call_index": k,
                        "num_gpu": side_opts[s][0],
                        "num_ctx": side_opts[s][1],
                        "temperature": side_opts[s][2],
                        "tps": _f(rec.get(f"{s}_call{k}_tps")),
                        "ttft_ms": _f(rec.get(f"{s}_call{k}_ttft_ms")),
                        "tokens": _f(rec.get(f"{s}_call{k}_tokens")),
                        "load_ms": _f(rec.get(f"{s}_call{k}_load_ms")),
                    }
                )
                k += 1
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
                "sequential_estimate_s_recorded": _f(rec.get("sequential_estimate_s")),
                "speedup_recorded": _f(rec.get("speedup_recorded")),
                "efficiency_pct_recorded": _f(rec.get("efficiency_recorded")),
                "config_efficiency_pct_recorded": _f(rec.get("config_avg_efficiency_recorded")),
                "contention_recorded": _b(rec.get("contention_recorded")),
                "throughput_delta_tps_recorded": _f(rec.get("throughput_delta_recorded")),
                "ttft_delta_ms_recorded": _f(rec.get("ttft_delta_ms_recorded")),
            }
        )
    return rows


def _single_ident(rec: dict[str, Any], common: dict[str, Any], language: str, spec: Spec | None) -> dict[str, Any]:
    config_id = str(rec.get("config") or "")
    run_index = int(_f(rec.get("run_index")) if not math.isnan(_f(rec.get("run_index"))) else 1)
    opts = (_f(rec.get("num_gpu")), _f(rec.get("num_ctx")), _f(rec.get("temperature")))
    return {
        **common,
        "run_id": f"{config_id}#{run_index}",
        "run_kind": "protocol",
        "config_id": config_id,
        "scenario": "single_agent",
        "phase": "",
        "runtime": _default_runtime(spec, language),
        "runtime_original": _original_labels(spec).get(_default_runtime(spec, language), ""),
        "language": language,
        "run_index": run_index,
        "role": str(rec.get("agent") or ""),
        "side": "",
        "ok": True,
        "num_gpu": opts[0],
        "num_ctx": opts[1],
        "temperature": opts[2],
        "config_label": _opts_label(*opts),
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
                "exec_s": _f(rec.get("execution_time_s")),
                "tps": _f(rec.get("tps_avg")),
                "ttft_ms": _f(rec.get("ttft_ms_avg")),
                "tokens": _f(rec.get("tokens")),
                "files_ingested": _f(rec.get("files_ingested")),
                "calls_ok": _f(rec.get("llm_calls")),
                "tps_improvement_pct_recorded": _f(rec.get("throughput_improvement_pct_recorded")),
                "ttft_reduction_pct_recorded": _f(rec.get("ttft_reduction_pct_recorded")),
            }
        )
    _improvements(rows)
    return rows


def _import_calls(
    records: list[dict[str, Any]], common: dict[str, Any], language: str, spec: Spec | None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    by_run: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    stage_index = {v: k for k, v in _TWO_CALL_STAGES.items()}
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
            "tps": _f(rec.get("tps")),
            "ttft_ms": _f(rec.get("ttft_ms")),
            "tokens": _f(rec.get("tokens")),
            "load_ms": _f(rec.get("load_ms")),
            "prompt_eval_ms": _f(rec.get("prompt_eval_ms")),
            "eval_ms": _f(rec.get("eval_ms")),
            "eval_s": _f(rec.get("eval_ms")) / 1000,
            "files_ingested": _f(rec.get("files_ingested")),
            "ok": True,
        }
        rows.append(row)
        by_run[(ident["config_id"], ident["role"], ident["run_index"])].append(
            {**row, "_workflow_s": _f(rec.get("workflow_total_s")), "_rec": rec}
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
                "config_tps_recorded": _f(rec.get("agg_tps_recorded")),
                "config_ttft_ms_recorded": _f(rec.get("agg_ttft_ms_recorded")),
            }
        )
    _improvements(agents)
    return agents + rows


# ------------------------------------------------------------------------------------- the kit's artifacts


@dataclass
class KitData:
    """Everything the consumers need from one artifact folder."""

    root: Path
    frame: pd.DataFrame
    sweep: Sweep | None
    provenance: dict[str, Any] | None
    timeline: pd.DataFrame
    """Cumulative tokens over time for one multi-agent run: run_id, role, t_s, cum_tokens (empty if none)."""
    failed_runs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def simulated(self) -> bool:
        if self.sweep is not None:
            return self.sweep.simulated
        return bool(self.frame["simulated"].eq(True).any()) if not self.frame.empty else False


Record = CallRecord | AgentRunRecord | MultiRunRecord


def load_artifacts(root: Path, spec: Spec | None = None) -> KitData:
    """Read an artifact folder (sweep.json, provenance.json, runs/*/run.json + records.jsonl) into a KitData.

    True efficiency uses the mean duration of the ``isolated`` runs of the same config, runtime and language,
    per side; without them it is NaN (and the report says so). ``spec`` (default: the folder's spec.toml, if
    any) gives each runtime the label the original report used.
    """
    if not root.is_dir():
        raise ArtifactError(f"no artifact folder at {root}", hint="run `invoke reproduce` or pass an artifacts/<id>")
    runs = ArtifactDir(root).load_runs()
    if not runs:
        raise ArtifactError(
            f"{root} holds no runs (runs/*/run.json)",
            hint="run `invoke reproduce` first, or resume the sweep",
        )
    notes: list[str] = []
    sweep: Sweep | None = None
    if (root / "sweep.json").exists():
        sweep = load_sweep(root)
    else:
        notes.append("sweep.json is missing: backend unknown; simulation inferred from the records")
    provenance = load_json_doc(root / "provenance.json") if (root / "provenance.json").exists() else None
    if spec is None and (root / "spec.toml").exists():
        spec = load_spec(root / "spec.toml")
    originals = _original_labels(spec)
    sim_backend = bool(sweep.simulated) if sweep is not None else False
    rep, version = (sweep.report, "") if sweep is not None else (runs[0][0].run.report, "")

    per_run: list[tuple[RunResult, dict[tuple[str, int], tuple[AgentRunRecord, list[CallRecord]]], list[Record]]] = []
    isolated: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for result, records in runs:
        agents = _agent_runs(records)
        per_run.append((result, agents, records))
        run = result.run
        if run.kind == "isolated" and result.status == "ok" and run.isolated_side:
            for ar, _calls in agents.values():
                if ar.ok:
                    isolated[(run.config_id, run.runtime, run.language, run.isolated_side)].append(
                        (ar.end_ns - ar.start_ns) / metrics.NS_PER_S
                    )

    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    timeline_run: tuple[MultiRunRecord, list[CallRecord], str] | None = None
    for result, agents, records in per_run:
        run = result.run
        if result.status != "ok":
            failed.append(run.run_id)
        simulated = sim_backend or any(isinstance(r, CallRecord) and r.server_simulated for r in records)
        a_opts = _options_of(run.agents[0].wire_options()) if run.agents else (math.nan,) * 3
        b_opts = _options_of(run.agents[1].wire_options()) if len(run.agents) > 1 else a_opts
        label = _pair_label(_opts_label(*a_opts), _opts_label(*b_opts))
        ident = {
            "origin": "kit",
            "report": rep,
            "report_version": version,
            "run_id": run.run_id,
            "run_kind": run.kind,
            "simulated": simulated,
            "config_id": run.config_id,
            "config_label": label,
            "scenario": run.scenario,
            "phase": "",
            "runtime": run.runtime,
            "runtime_original": originals.get(run.runtime, run.runtime),
            "language": run.language,
            "run_index": run.repetition,
        }
        memory = {c.name: c.memory_peak_bytes for c in result.containers if c.memory_peak_bytes is not None}
        figures: dict[str, metrics.AgentFigures] = {}
        run_rows: list[dict[str, Any]] = []
        for (role, _idx), (ar, calls) in sorted(agents.items()):
            fig = metrics.agent_figures(ar, calls)
            figures[role] = fig
            side = {"collector": "a", "insight": "b"}.get(role, "")
            g, c, t = _options_of(ar.options)
            peak = ar.peak_rss_bytes or next((v for k, v in memory.items() if role in k), None)
            startup = ar.process_start_to_first_request_ns
            run_rows.append(
                {
                    **ident,
                    "level": "agent",
                    "role": role,
                    "side": side,
                    "ok": result.status == "ok" and ar.ok,
                    "num_gpu": g,
                    "num_ctx": c,
                    "temperature": t,
                    "exec_s": fig.exec_s,
                    "tps": _nan_if_none(fig.tps_mean),
                    "client_tps": _nan_if_none(fig.client_tps_mean),
                    "ttft_ms": _nan_if_none(fig.ttft_ms_mean),
                    "tokens": float(fig.tokens),
                    "load_ms": fig.load_ms_sum,
                    "prompt_eval_ms": fig.prompt_eval_ms_sum,
                    "eval_ms": fig.eval_ms_sum,
                    "files_ingested": float(fig.files_ingested),
                    "calls_ok": float(fig.calls_ok),
                    "calls_failed": float(fig.calls_failed),
                    "peak_memory_mb": peak / MIB if peak else math.nan,
                    "startup_s": startup / metrics.NS_PER_S if startup is not None else math.nan,
                }
            )
            for call in calls:
                run_rows.append(
                    {**ident, **_call_row(call), "side": side, "num_gpu": g, "num_ctx": c, "temperature": t}
                )
        for rec in records:
            if isinstance(rec, CallRecord) and not any(rec in calls for _ar, calls in agents.values()):
                g, c, t = _options_of(rec.options)
                run_rows.append({**ident, **_call_row(rec), "side": "", "num_gpu": g, "num_ctx": c, "temperature": t})
        _improvements(run_rows)
        multi = next((r for r in records if isinstance(r, MultiRunRecord)), None)
        if multi is not None and "collector" in figures and "insight" in figures:
            key = (run.config_id, run.runtime, run.language)
            iso_a, iso_b = isolated.get((*key, "a")), isolated.get((*key, "b"))
            mf = metrics.multi_figures(
                multi,
                figures["collector"],
                figures["insight"],
                isolated_collector_s=stats.mean(iso_a) if iso_a else None,
                isolated_insight_s=stats.mean(iso_b) if iso_b else None,
            )
            ca, ci = figures["collector"], figures["insight"]
            ok = result.status == "ok" and multi.ok and all(r["ok"] for r in run_rows if r["level"] == "agent")
            run_rows.append(
                {
                    **ident,
                    "level": "multi",
                    "role": "pair",
                    "side": "",
                    "ok": ok,
                    "concurrent_wall_s": mf.concurrent_wall_s,
                    "a_exec_s": ca.exec_s,
                    "b_exec_s": ci.exec_s,
                    "sequential_estimate_s": mf.original.sequential_estimate_s,
                    "speedup": mf.original.speedup,
                    "efficiency_pct": mf.original.efficiency_pct,
                    "contention": mf.original.contention,
                    "isolated_a_s": stats.mean(iso_a) if iso_a else math.nan,
                    "isolated_b_s": stats.mean(iso_b) if iso_b else math.nan,
                    "true_efficiency_pct": _nan_if_none(mf.true_efficiency_pct),
                    "aggregate_tps": mf.aggregate_tps,
                    "a_tps": _nan_if_none(ca.tps_mean),
                    "b_tps": _nan_if_none(ci.tps_mean),
                    "a_ttft_ms": _nan_if_none(ca.ttft_ms_mean),
                    "b_ttft_ms": _nan_if_none(ci.ttft_ms_mean),
                    "a_tokens": float(ca.tokens),
                    "b_tokens": float(ci.tokens),
                    "throughput_delta_tps": _nan_if_none(mf.throughput_delta_tps),
                    "ttft_delta_ms": _nan_if_none(mf.ttft_delta_ms),
                }
            )
            if timeline_run is None and ok and run.kind == "protocol":
                timeline_run = (multi, [r for r in records if isinstance(r, CallRecord)], run.run_id)
        elif multi is not None:
            notes.append(f"run {run.run_id}: multi-agent record without both agents' records; no efficiency")
        rows.extend(run_rows)
    frame = _frame(rows)
    timeline = timeline_frame(*timeline_run) if timeline_run else _empty_timeline()
    return KitData(root, frame, sweep, provenance, timeline, failed, notes)


def _agent_runs(records: Iterable[Record]) -> dict[tuple[str, int], tuple[AgentRunRecord, list[CallRecord]]]:
    """Agent runs keyed by (role, agent_run_index), each with its calls in call order."""
    calls: dict[tuple[str, int], list[CallRecord]] = defaultdict(list)
    runs: dict[tuple[str, int], AgentRunRecord] = {}
    for rec in records:
        if isinstance(rec, CallRecord):
            calls[(rec.role, rec.agent_run_index)].append(rec)
        elif isinstance(rec, AgentRunRecord):
            runs[(rec.role, rec.agent_run_index)] = rec
    return {k: (ar, sorted(calls.get(k, []), key=lambda c: c.call_index)) for k, ar in runs.items()}


def _call_row(call: CallRecord) -> dict[str, Any]:
    offsets = call.chunk_offsets_ns
    span_s = (offsets[-1] - offsets[0]) / metrics.NS_PER_S if len(offsets) >= 2 else math.nan
    eval_s = call.eval_duration_ns / metrics.NS_PER_S if call.eval_duration_ns else math.nan
    return {
        "level": "call",
        "role": call.role,
        "stage": call.stage,
        "call_index": call.call_index,
        "ok": call.ok,
        "tps": _nan_if_none(metrics.server_tps(call)),
        "client_tps": _nan_if_none(metrics.client_tps(call)),
        "ttft_ms": _nan_if_none(metrics.ttft_ms(call)),
        "tokens": _nan_if_none(call.eval_count),
        "load_ms": _nan_if_none(call.load_duration_ns) / metrics.NS_PER_MS,
        "prompt_eval_ms": _nan_if_none(call.prompt_eval_duration_ns) / metrics.NS_PER_MS,
        "eval_ms": _nan_if_none(call.eval_duration_ns) / metrics.NS_PER_MS,
        "chunk_count": float(call.chunk_count),
        "token_gap": call.eval_count - call.chunk_count if call.eval_count is not None else math.nan,
        "client_decode_s": span_s,
        "eval_s": eval_s,
        "decode_span_ratio": span_s / eval_s if eval_s and not math.isnan(span_s) else math.nan,
    }


def _empty_timeline() -> pd.DataFrame:
    return pd.DataFrame({"run_id": [], "role": [], "t_s": [], "cum_tokens": []})


def timeline_frame(multi: MultiRunRecord, calls: list[CallRecord], run_id: str) -> pd.DataFrame:
    """Cumulative streamed chunks (≈ tokens) per agent against seconds since the concurrent run started:
    where both curves rise together the agents overlapped; where one is flat it waited."""
    parts = []
    for role in sorted({c.role for c in calls}):
        times = sorted(
            (c.start_ns + off - multi.start_ns) / metrics.NS_PER_S
            for c in calls
            if c.role == role
            for off in c.chunk_offsets_ns
        )
        if times:
            parts.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "role": role,
                        "t_s": [0.0, *times],
                        "cum_tokens": [0, *range(1, len(times) + 1)],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True) if parts else _empty_timeline()


# ------------------------------------------------------------------------------------------------ summaries


def ok_rows(frame: pd.DataFrame, level: str, *, run_kind: str | None = "protocol") -> pd.DataFrame:
    """Successful rows of one level (protocol runs by default)."""
    rows = frame[(frame["level"] == level) & frame["ok"].eq(True)]
    if run_kind is not None:
        rows = rows[rows["run_kind"] == run_kind]
    return rows


def group_table(rows: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Per group: n, mean, sample σ, CV %, min, median, max of ``metric`` (NaN values ignored)."""
    out = []
    for key, grp in rows.groupby(by, sort=True, dropna=False):
        s = stats.summarize(pd.to_numeric(grp[metric], errors="coerce").to_numpy(dtype=float))
        keys = key if isinstance(key, tuple) else (key,)
        out.append(
            {
                **dict(zip(by, keys, strict=True)),
                "n": s.n,
                "mean": s.mean,
                "std": s.std,
                "cv_pct": s.cv_pct,
                "min": s.min,
                "median": s.median,
                "max": s.max,
            }
        )
    return pd.DataFrame(out)


@dataclass
class OriginalSummary:
    """The published figures recomputed: named headline values and the tables behind them."""

    report: str
    headline: dict[str, float | int | str]
    tables: dict[str, pd.DataFrame]


def summarize(frame: pd.DataFrame, report: str | None = None) -> OriginalSummary:
    """The reports' figures from a tidy table (imported or measured): multi-agent (per-config means, σ, peak
    run, best config mean, min, contention counts, per-runtime rows) and single-agent (baseline rate and TTFT,
    per-config improvement, share of configs beating the baseline, best config)."""
    rep = report or (str(frame["report"].iloc[0]) if not frame.empty else "")
    headline: dict[str, float | int | str] = {}
    tables: dict[str, pd.DataFrame] = {}
    multi = ok_rows(frame, "multi")
    if not multi.empty:
        eff = multi["efficiency_pct"].astype(float)
        contended = multi["contention"].eq(True)
        per_config = group_table(multi, "efficiency_pct", ["config_id"])
        labels = multi.groupby("config_id")["config_label"].first()
        per_config["config_label"] = per_config["config_id"].map(labels)
        best = per_config.sort_values("mean", ascending=False).iloc[0]
        peak = multi.iloc[int(np.nanargmax(eff.to_numpy(dtype=float)))]
        headline.update(
            {
                "runs": len(multi),
                "efficiency_mean_pct": stats.mean(eff),
                "efficiency_std_pct": stats.sample_std(eff),
                "efficiency_median_pct": stats.median(eff),
                "efficiency_p5_pct": stats.percentile(eff, 5),
                "efficiency_min_pct": float(eff.min()),
                "peak_run_efficiency_pct": float(eff.max()),
                "peak_run": f"{peak['config_id']} run {peak['run_index']}",
                "best_config": f"{best['config_id']} ({best['config_label']})",
                "best_config_mean_pct": float(best["mean"]),
                "contention_runs": int(contended.sum()),
                "efficiency_mean_without_contention_pct": stats.mean(eff[~contended]),
                "aggregate_tps_mean": stats.mean(multi["aggregate_tps"].astype(float)),
            }
        )
        true_eff = multi["true_efficiency_pct"].astype(float)
        if true_eff.notna().any():
            headline["true_efficiency_mean_pct"] = stats.mean(true_eff)
        tables["efficiency_per_config"] = per_config
        if multi["runtime"].nunique() > 1:
            per_rt = group_table(multi, "efficiency_pct", ["runtime"])
            per_rt["contention_runs"] = per_rt["runtime"].map(multi.groupby("runtime")["contention"].sum())
            tables["efficiency_per_runtime"] = per_rt
            for row in per_rt.itertuples():
                for stat in ("mean", "std", "max", "min"):
                    headline[f"{row.runtime}_efficiency_{stat}_pct"] = float(getattr(row, stat))
    agents = ok_rows(frame, "agent")
    singles = agents[agents["role"].isin(["baseline", "chimera"])]
    if not singles.empty:
        base = singles[singles["role"] == "baseline"]
        base_cfg = base[base["config_id"] == "baseline_default"]
        ref = base_cfg if not base_cfg.empty else base
        headline.update(
            {
                "baseline_runs": len(ref),
                "baseline_tps_mean": stats.mean(ref["tps"].astype(float)),
                "baseline_ttft_ms_mean": stats.mean(ref["ttft_ms"].astype(float)),
            }
        )
        calls = ok_rows(frame, "call")
        base_calls = calls[(calls["role"] == "baseline") & calls["config_id"].isin(ref["config_id"].unique())]
        if not base_calls.empty:
            headline["baseline_tps_cv_pct_over_calls"] = stats.cv_pct(base_calls["tps"].astype(float))
        chim = singles[singles["role"] == "chimera"]
        if not chim.empty:
            per_config = group_table(chim, "tps", ["config_id"])
            impr = chim.groupby("config_id")["tps_improvement_pct"].mean()
            per_config["tps_improvement_pct"] = per_config["config_id"].map(impr)
            per_config["ttft_reduction_pct"] = per_config["config_id"].map(
                chim.groupby("config_id")["ttft_reduction_pct"].mean()
            )
            tables["chimera_per_config"] = per_config
            valid = per_config["tps_improvement_pct"].dropna()
            if not valid.empty:
                best = per_config.iloc[int(np.nanargmax(per_config["tps_improvement_pct"].to_numpy(dtype=float)))]
                headline.update(
                    {
                        "configs": int(valid.size),
                        "configs_beating_baseline_pct": float((valid > 0).mean() * 100),
                        "best_improvement_pct": float(best["tps_improvement_pct"]),
                        "best_improvement_config": str(best["config_id"]),
                    }
                )
            headline["chimera_best_config_mean_tps"] = float(per_config["mean"].max())
            headline["chimera_max_run_tps"] = float(chim["tps"].astype(float).max())
    return OriginalSummary(report=rep, headline=headline, tables=tables)


def import_and_summarize(csv_path: Path, report: str | None = None, *, spec: Spec | None = None) -> OriginalSummary:
    """`invoke analyze --import FILE --report trNNN`: import records, recompute the published figures."""
    return summarize(import_original(csv_path, report, spec=spec), report)


def format_summary(summary: OriginalSummary) -> str:
    """Plain text for the terminal: one headline figure per line, rounded like the reports (2 decimals)."""
    lines = [f"{summary.report}: figures recomputed from the records"]
    width = max((len(k) for k in summary.headline), default=0)
    for key, value in summary.headline.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"  {key:<{width}}  {shown}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- beyond the originals


def roofline_tps(model_bytes: float | None, bandwidth_gbps: float | None) -> float | None:
    """Upper bound of batch-1 decode: every token reads the weights once, so tok/s ≤ bandwidth / bytes.
    ``None`` when either input is absent: never guessed."""
    if not model_bytes or not bandwidth_gbps or model_bytes <= 0 or bandwidth_gbps <= 0:
        return None
    return bandwidth_gbps * 1e9 / model_bytes


def roofline_table(frame: pd.DataFrame, model_bytes: float | None, bandwidth_gbps: float | None) -> pd.DataFrame:
    """Mean per-agent, per-call and aggregate throughput per config as a % of the bandwidth roofline."""
    bound = roofline_tps(model_bytes, bandwidth_gbps)
    parts = []
    agents = ok_rows(frame, "agent")
    if not agents.empty:
        t = group_table(agents, "tps", ["config_id", "role"])
        t["figure"] = "tps"
        parts.append(t)
    multi = ok_rows(frame, "multi")
    if not multi.empty:
        t = group_table(multi, "aggregate_tps", ["config_id"])
        t["role"] = "pair"
        t["figure"] = "aggregate_tps"
        parts.append(t)
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)[["config_id", "role", "figure", "n", "mean"]]
    out["roofline_tps"] = bound if bound is not None else math.nan
    out["pct_of_roofline"] = out["mean"] / bound * 100 if bound is not None else math.nan
    return out


def reconciliation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Client vs server per role: chunks vs eval_count, client decode span vs eval_duration, client vs server
    rate. Only the kit's own calls have the client-side columns; imports give an empty table."""
    calls = ok_rows(frame, "call", run_kind=None)
    calls = calls[calls["chunk_count"].notna() & calls["eval_s"].notna()]
    if calls.empty:
        return pd.DataFrame()
    out = []
    for role, grp in calls.groupby("role", sort=True):
        out.append(
            {
                "role": role,
                "calls": len(grp),
                "chunks_sum": float(grp["chunk_count"].sum()),
                "eval_count_sum": float(grp["tokens"].sum()),
                "token_gap_mean": stats.mean(grp["token_gap"].astype(float)),
                "decode_span_ratio_mean": stats.mean(grp["decode_span_ratio"].astype(float)),
                "client_tps_mean": stats.mean(grp["client_tps"].astype(float)),
                "server_tps_mean": stats.mean(grp["tps"].astype(float)),
            }
        )
    return pd.DataFrame(out)


def efficiency_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Per config: the originals' efficiency beside the true efficiency and aggregate tokens per wall s."""
    multi = ok_rows(frame, "multi")
    if multi.empty:
        return pd.DataFrame()
    g = multi.groupby("config_id", sort=True)
    return pd.DataFrame(
        {
            "config_label": g["config_label"].first(),
            "n": g.size(),
            "efficiency_pct": g["efficiency_pct"].mean(),
            "true_efficiency_pct": g["true_efficiency_pct"].mean(),
            "aggregate_tps": g["aggregate_tps"].mean(),
            "a_tps": g["a_tps"].mean(),
            "b_tps": g["b_tps"].mean(),
        }
    ).reset_index()
