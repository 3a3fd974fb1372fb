"""A small synthetic artifact folder (protocol and isolated runs) → build_report → md, html, json, figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from matplotlib.image import imread

from harness.analysis import measured, plots
from harness.analysis.report import build_report, build_report_from_import, read_provenance
from harness.artifacts import ArtifactDir, RunResult, Sweep, canonical_json
from harness.evidence.provenance import write_provenance
from harness.protocol.plan import AgentPlan, Run
from harness.protocol.spec import Spec, parse_spec
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord
from tests.fakes.provenance import COMMIT, collected_provenance

S = 1_000_000_000
OPTS: dict[str, float | int] = {"num_gpu": 80, "num_ctx": 512, "temperature": 1.0}


def _spec() -> Spec:
    claim = {"source": "test", "unit": "%", "comparability": "portable", "statistic": "mean"}
    return parse_spec(
        {
            "schema_version": 1,
            "id": "tr115",
            "version": "v2",
            "title": "synthetic",
            "question": "does the report build?",
            "kind": "multi_agent",
            "model": {"name": "gemma3:latest"},
            "server": {"ollama_version": "0.12.10", "num_parallel": 1, "keep_alive": "5m", "context_length": 4096},
            "topology": {"ollama": "dual", "ports": [11434, 11435]},
            "agent": {
                "language": "rust",
                "workflow": "two_call",
                "streaming": True,
                "runs": 3,
                "runtimes": [{"name": "tokio", "original": "tokio-default"}],
                "isolated_baseline_runs": 1,
            },
            "configs": [{"id": "homo_80_512", "scenario": "chimera_homo", "a": OPTS, "b": OPTS}],
            "claims": [
                {
                    **claim,
                    "id": "eff",
                    "statement": "balance",
                    "metric": "efficiency_pct",
                    "value": 98.72,
                    "where": {"runtime": "tokio-default"},
                },
                {
                    **claim,
                    "id": "true",
                    "statement": "true eff",
                    "metric": "true_efficiency_pct",
                    "value": 98.0,
                    "tolerance": 2.0,
                    "tolerance_why": "test band",
                },
                {
                    **claim,
                    "id": "tps",
                    "statement": "rate",
                    "metric": "tps",
                    "value": 114.5,
                    "unit": "tok/s",
                    "comparability": "hardware_bound",
                },
            ],
        },
        where="test",
    )


def _call(role: str, index: int, start_s: float, duration_s: float, tokens: int, **common: Any) -> CallRecord:
    start = int(start_s * S)
    first = start + S // 2
    step = int((duration_s - 0.5) * S) // tokens
    offsets = [first - start + i * step for i in range(tokens)]
    return CallRecord(
        **common,
        role=role,
        call_index=index,
        stage="analysis" if index == 1 else "report",
        endpoint="/api/generate",
        base_url="http://127.0.0.1:11434",
        model="gemma3:latest",
        options=OPTS,
        streaming=True,
        request_sha256="0" * 64,
        start_ns=start,
        first_chunk_ns=first,
        end_ns=start + int(duration_s * S),
        start_unix_ns=start,
        chunk_count=tokens,
        chunk_offsets_ns=offsets,
        response_chars=tokens * 4,
        ok=True,
        eval_count=tokens,
        eval_duration_ns=int((duration_s - 0.5) * S),
        load_duration_ns=10_000_000,
        prompt_eval_duration_ns=100_000_000,
        server_simulated=True,
    )


def _agent(role: str, start_s: float, call_s: float, tokens: int, run_id: str) -> list[Any]:
    common = {"run_id": run_id, "language": "rust", "runtime": "tokio"}
    calls = [
        _call(role, 1, start_s, call_s, tokens, **common),
        _call(role, 2, start_s + call_s, call_s, tokens, **common),
    ]
    run = AgentRunRecord(
        **common,
        role=role,
        base_url="http://127.0.0.1:11434",
        model="gemma3:latest",
        options=OPTS,
        files_ingested=101,
        corpus_sha256=None,
        start_ns=int(start_s * S),
        end_ns=int((start_s + 2 * call_s) * S),
        ingest_duration_ns=1000,
        calls_ok=2,
        calls_failed=0,
        ok=True,
    )
    return [*calls, run]


def _result(run: Run) -> RunResult:
    return RunResult(
        run=run,
        status="ok",
        attempts=1,
        started_at="2025-01-01T00:00:00Z",
        ended_at="2025-01-01T00:01:00Z",
        duration_s=60.0,
    )


def _make_artifacts(root: Path, *, simulated: bool, provenance: bool) -> None:
    art = ArtifactDir(root)
    sides = [
        AgentPlan(role="collector", server_index=0, options=OPTS),
        AgentPlan(role="insight", server_index=1, options=OPTS),
    ]
    common = dict(
        report="tr115",
        config_id="homo_80_512",
        scenario="chimera_homo",
        model="gemma3:latest",
        language="rust",
        runtime="tokio",
    )
    for rep, (a_s, b_s) in enumerate(((10.0, 9.5), (10.0, 10.0), (11.0, 9.0)), 1):
        run = Run(run_id=f"p{rep}", kind="protocol", repetition=rep, agents=sides, **common)
        records = _agent("collector", 100.0, a_s, 40, run.run_id) + _agent("insight", 100.0, b_s, 40, run.run_id)
        multi = MultiRunRecord(
            run_id=run.run_id,
            language="rust",
            runtime="tokio",
            scenario="chimera_homo",
            collector_url="u",
            insight_url="v",
            start_ns=100 * S,
            end_ns=int((100 + 2 * max(a_s, b_s)) * S),
            ok=True,
        )
        art.save_run(_result(run), [*records, multi])
    for side, plan, role in (("a", sides[0], "collector"), ("b", sides[1], "insight")):
        run = Run(run_id=f"iso{side}", kind="isolated", repetition=1, agents=[plan], isolated_side=side, **common)
        art.save_run(_result(run), _agent(role, 0.0, 5.0, 40, run.run_id))
    art.write_json(
        "sweep.json",
        Sweep(
            artifact_id=root.name,
            report="tr115",
            backend="sim" if simulated else "ollama",
            simulated=simulated,
            time_scale=1.0,
            kit_version="0.1.0",
            spec_sha256="0" * 64,
            command=["invoke", "reproduce"],
            started_at="2025-01-01T00:00:00Z",
            planned_runs=5,
        ),
    )
    if provenance:
        write_provenance(art, collected_provenance(root.parent / f"{root.name}-env"))


def test_load_artifacts_true_efficiency_and_timeline(tmp_path: Path) -> None:
    _make_artifacts(tmp_path / "a1", simulated=True, provenance=False)
    kit = measured.load_artifacts(tmp_path / "a1")
    multi = kit.frame[kit.frame["level"] == "multi"].sort_values("run_index")
    assert list(multi["efficiency_pct"].round(4)) == [pytest.approx(97.5), 100.0, pytest.approx(90.9091, abs=1e-3)]
    # isolated 10 s each side: (10 + 10) / (2 · 20) = 50 %: the agents did not overlap usefully
    assert multi["true_efficiency_pct"].iloc[1] == pytest.approx(50.0)
    assert multi["aggregate_tps"].iloc[1] == pytest.approx(160 / 20)
    assert set(kit.frame[kit.frame["level"] == "agent"]["run_kind"]) == {"protocol", "isolated"}
    assert not kit.timeline.empty and set(kit.timeline["role"]) == {"collector", "insight"}
    calls = kit.frame[kit.frame["level"] == "call"]
    assert (calls["token_gap"] == 0).all()
    assert kit.simulated


def test_build_report_writes_everything(tmp_path: Path) -> None:
    root = tmp_path / "art"
    _make_artifacts(root, simulated=True, provenance=True)
    result = build_report(root, _spec(), model_bytes=2.49e9)
    md = result.markdown.read_text(encoding="utf-8")
    page = result.html.read_text(encoding="utf-8")
    order = ["## Verdicts", "## How each verdict", "## Figures", "## Method", "## Warnings", "## Environment"]
    assert [md.index(h) for h in order] == sorted(md.index(h) for h in order)
    assert "Contents: [Verdicts](#verdicts)" in md and '<h2 id="verdicts">Verdicts</h2>' in page
    assert "SIMULATED" in md and "<blockquote>" in page and "SIMULATED" in page
    assert "<details><summary>All " in md and "Environment fingerprint" in md
    assert page.count("<svg") == len([f for f in result.figures if f.drawn]) and "<img" not in page
    assert "`" not in page and "**" not in page  # Markdown rendered, never shown raw
    assert "NVIDIA H100 80GB HBM3" in md and "Roofline: 3352.3 GB/s" in md
    doc = json.loads(result.verdicts_json.read_text(encoding="utf-8"))
    assert doc["schema_version"] == 2 and doc["simulated"] is True and doc["regime"] == "re-measurement"
    by_id = {v["claim_id"]: v for v in doc["verdicts"]}
    assert by_id["eff"]["rehearsal"] and by_id["eff"]["n_runs"] == 3  # runtime filter matched the original label
    assert by_id["eff"]["verdict"] == "rehearsal_inconclusive"  # no band declared
    assert by_id["tps"]["verdict"] == "rehearsal_not_comparable"  # hardware-bound on an H100
    assert by_id["true"]["verdict"] == "rehearsal_not_reproduced"
    assert "## How each verdict was reached" in md
    drawn = [f for f in result.figures if f.drawn]
    assert {f.name for f in drawn} >= {"claims", "efficiency_per_config", "aggregate_vs_isolated", "timeline"}
    for fig in drawn:
        assert fig.png is not None and fig.svg is not None and fig.svg.stat().st_size > 0
        image = imread(fig.png)
        height, width = image.shape[:2]
        assert width == int(plots.WIDTH_IN * plots.DPI) and height >= int(plots.HEIGHT_IN * plots.DPI)
        assert image.std() > 0  # not a blank canvas
        assert "SIMULATED" in fig.svg.read_text(encoding="utf-8")  # the rehearsal mark is inside the figure
        corner = image[-30:, : width // 3, :3]  # bottom left, where the mark is drawn in red
        assert ((corner[..., 0] > 0.6) & (corner[..., 1] < 0.3) & (corner[..., 2] < 0.3)).any()
    assert json.loads((root / "report" / "summary.json").read_text())["schema_version"] == 1


def test_report_is_rebuilt_identically(tmp_path: Path) -> None:
    root = tmp_path / "art"
    _make_artifacts(root, simulated=False, provenance=False)
    first = build_report(root, _spec(), tmp_path / "r1")
    second = build_report(root, _spec(), tmp_path / "r2")
    assert first.markdown.read_bytes() == second.markdown.read_bytes()
    assert first.html.read_bytes() == second.html.read_bytes()
    text = first.markdown.read_text(encoding="utf-8")
    assert "SIMULATED" not in text and "No provenance.json" in text and "Roofline: not available" in text
    assert all("SIMULATED" not in f.svg.read_text(encoding="utf-8") for f in first.figures if f.svg is not None)


def test_report_from_imported_records_skips_timeline(tmp_path: Path) -> None:
    from tests.unit.test_analysis_golden import find_reference_data

    data = find_reference_data()
    result = build_report_from_import(data / "tr115v2_runtimes.csv", _spec(), tmp_path / "imp")
    notes = {f.name: f.note for f in result.figures}
    assert notes["timeline"] and "not drawn" in notes["timeline"]
    assert notes["aggregate_vs_isolated"] and "not drawn" in notes["aggregate_vs_isolated"]
    verdicts = {v.claim_id: v for v in result.verdicts}
    assert verdicts["eff"].verdict == "matches" and verdicts["eff"].n_runs == 30
    assert verdicts["eff"].regime == "recomputation"
    assert verdicts["tps"].verdict in ("matches", "differs")  # judged: the records come from the originals' GPU


def test_warnings_about_many_subjects_are_grouped_with_their_count() -> None:
    from harness.analysis.sections import grouped_warnings

    lines = [
        f"asyncio / {c:03d} (efficiency_pct): only 1 run(s) (< 3); intervals are wide or absent" for c in range(30)
    ]
    lines += ["no isolated runs", "no isolated runs", "tokio / 001 (efficiency_pct): unstable, CV 12.0 % (≥ 10 %)"]
    out = grouped_warnings(lines)
    assert len(out) == 3
    assert out[0].startswith("30×: only 1 run(s)") and "… (22 more)" in out[0]
    assert out[1] == "no isolated runs (×2)"
    assert out[2] == "tokio / 001 (efficiency_pct): unstable, CV 12.0 % (≥ 10 %)"


def test_counts_are_shown_and_written_as_integers() -> None:
    from harness.analysis.writers import frame_table, integer_columns

    frame = pd.DataFrame({"num_gpu": [80.0, 120.0], "num_ctx": [2048.0, None], "efficiency_pct": [99.0, 98.5]})
    headers, rows = frame_table(frame)
    assert headers == ["num_gpu", "num_ctx", "efficiency_pct"]
    assert rows == [["80", "2,048", "99.00"], ["120", "—", "98.50"]]
    assert integer_columns(frame).to_csv(index=False).splitlines()[1] == "80,2048,99.0"


# ------------------------------------------------------------------------------------------ provenance.json


def test_provenance_written_by_collect_is_read_typed_and_its_gpu_reaches_the_report(tmp_path: Path) -> None:
    root = tmp_path / "art"
    _make_artifacts(root, simulated=False, provenance=False)
    collected = collected_provenance(tmp_path / "env")
    write_provenance(ArtifactDir(root), collected)
    read = read_provenance(root)
    assert read.warning is None and read.model == collected
    written = (root / "provenance.json").read_text(encoding="utf-8")
    assert written == canonical_json(collected.model_dump(mode="json")) + "\n" and read.raw == json.loads(written)
    result = build_report(root, _spec(), model_bytes=2.49e9)
    md = result.markdown.read_text(encoding="utf-8")
    assert "(here: NVIDIA H100 80GB HBM3)" in md and "Roofline: 3352.3 GB/s" in md
    assert not any("provenance.json" in w for w in result.warnings)
    assert json.loads(result.verdicts_json.read_text())["gpu_name"] == "NVIDIA H100 80GB HBM3"
    assert json.loads((root / "report" / "summary.json").read_text())["kit_commit"] == COMMIT


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("newer schema", "(schema_version: Input should be 1)"),
        ("missing fields", "(kit: Field required)"),
        ("foreign keys", "(captured_at: Field required)"),
        ("not json", "(not JSON: Expecting value: line 1 column 1 (char 0))"),
    ],
)
def test_provenance_that_is_not_this_kits_document_gives_a_warning_not_a_crash(
    tmp_path: Path, case: str, why: str
) -> None:
    root = tmp_path / "art"
    _make_artifacts(root, simulated=False, provenance=False)
    doc = collected_provenance(tmp_path / "env").model_dump(mode="json")
    if case == "newer schema":
        doc["schema_version"] = 2
    elif case == "missing fields":
        del doc["run"], doc["kit"]
    else:  # a hand-made file whose keys a key search would have taken for the GPU's
        doc = {"schema_version": 1, "gpu": {"name": "NVIDIA H100", "memory_bandwidth_gbps": 3350.0}}
    text = "GPU: H100\n" if case == "not json" else json.dumps(doc)
    (root / "provenance.json").write_text(text, encoding="utf-8")
    result = build_report(root, _spec(), model_bytes=2.49e9)
    warning = f"provenance.json could not be read as schema_version 1 {why}: the GPU name and memory bandwidth"
    assert [w for w in result.warnings if w.startswith("provenance.json")] == [f"{warning} are unknown"]
    md = result.markdown.read_text(encoding="utf-8")
    assert "(here: unknown)" in md and "Roofline: not available (memory bandwidth not given" in md
    assert {v.claim_id: v.verdict for v in result.verdicts}["tps"] == "not_comparable"
    assert json.loads((root / "report" / "summary.json").read_text())["kit_commit"] is None
