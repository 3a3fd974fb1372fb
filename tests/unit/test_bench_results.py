"""The bench's results file, its verdicts and the Markdown block it writes into the docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench.results import (
    BenchResults,
    ClientRow,
    EfficiencyRow,
    Kit,
    Machine,
    PeerResult,
    StackOverhead,
    load_results,
    write_results,
)
from harness.bench.spread import spread
from harness.bench.table import BEGIN, END, render, replace_block
from harness.bench.targets import judge
from harness.errors import SchemaVersionError


def _client(agent: str, rate: float, ttft: list[float], tps: list[float], *, flaw: str | None = None) -> ClientRow:
    return ClientRow(
        agent=agent, rate_tps=rate, tokens=100, calls=len(ttft), ttft_error_ms=spread(ttft),
        true_ttft_ms=spread([1.0] * len(ttft)), throughput_error_pct=spread(tps),
        pacing_error_pct=spread([0.0] * len(tps)), flaw=flaw,
    )  # fmt: skip


def _results(**update: object) -> BenchResults:
    base = BenchResults(
        created_at="2026-11-23T13:00:00+00:00",
        command=["python", "-m", "harness", "bench"],
        quick=False,
        only=[],
        duration_s=600.0,
        kit=Kit(version="0.1.0", commit="abc123", dirty=False),
        machine=Machine(
            cpu_model="Test CPU",
            cores=2,
            memory_bytes=24 * 2**30,
            kernel="6.1",
            os="Linux",
            python="3.11.7",
            docker_version="20.10.24",
            load_avg_start=(1.0, 1.0, 1.0),
            load_avg_end=(2.0, 1.5, 1.0),
        ),
        clients=[
            _client("python", 100, [0.2, 0.3, 0.4], [0.1, -0.1, 0.2]),
            _client("python", 5000, [5.0, 6.0], [9.0, 9.0]),  # above 2,000 tok/s: shown, not judged
            _client("tokio", 100, [0.6, 0.9], [0.1, 0.1]),
            _client("smol-1kb", 100, [90.0], [16.0], flaw="deliberate"),
        ],
        efficiency=[
            EfficiencyRow(
                agent="python",
                setup="two_servers",
                formula="original",
                runs=2,
                true_pct=100.0,
                measured_pct=spread([99.9, 99.8]),
                error_pp=spread([-0.1, -0.2]),
            ),
            EfficiencyRow(
                agent="python",
                setup="one_server",
                formula="true",
                runs=2,
                true_pct=50.0,
                measured_pct=spread([50.5, 50.7]),
                error_pp=spread([0.5, 0.7]),
            ),
        ],
        stack=StackOverhead(
            image="img",
            repetitions=3,
            total_s=spread([1.2, 1.3, 1.4]),
            up_s=spread([1.0]),
            down_s=spread([0.3]),
            image_check_s=2.0,
        ),
        peer=PeerResult(name="aiperf", version="0.13.0", status="ok", rows=[_client("aiperf", 100, [0.5], [1.0])]),
    )
    return base.model_copy(update=update)


def test_verdicts_follow_the_rules() -> None:
    verdicts = {v.target: v for v in judge(_results())}
    assert verdicts["python: TTFT error p99 ≤ 0.5 ms"].met is True
    assert verdicts["python: throughput error ≤ 0.5 %"].met is True  # the 5,000 tok/s row is not judged
    assert verdicts["tokio: TTFT error p99 ≤ 0.5 ms"].met is False
    assert "at 100 tok/s" in verdicts["tokio: TTFT error p99 ≤ 0.5 ms"].measured
    assert not any(t.startswith("smol-1kb") for t in verdicts)  # a deliberate flaw is shown, not judged
    assert verdicts["python: efficiency error ≤ 0.3 pp"].met is False  # one_server/true: median 0.6 pp
    assert verdicts["stack overhead ≤ 1.5 s per run"].met is True
    assert verdicts["python: error no larger than the peer's"].met is True
    assert verdicts["tokio: error no larger than the peer's"].met is False
    assert verdicts["invoke bench runs in under 15 minutes"].met is True


def test_failed_rows_are_not_measured_and_partial_runs_skip_the_duration_target() -> None:
    failed = _client("python", 100, [], []).model_copy(update={"error": "exit 1"})
    verdicts = {v.target: v for v in judge(_results(clients=[failed], only=["clients"]))}
    assert verdicts["python: TTFT error p99 ≤ 0.5 ms"].met is None
    assert "invoke bench runs in under 15 minutes" not in verdicts


def test_results_round_trip_and_refuse_other_versions(tmp_path: Path) -> None:
    results = _results()
    stamped, latest = write_results(results, tmp_path)
    assert stamped.name == "20261123T130000Z.json"
    assert stamped.read_bytes() == latest.read_bytes()
    assert load_results(latest) == results
    data = json.loads(latest.read_text())
    data["schema_version"] = 99
    latest.write_text(json.dumps(data))
    with pytest.raises(SchemaVersionError, match="schema_version 99"):
        load_results(latest)


def test_render_shows_machine_command_and_every_section() -> None:
    results = _results()
    block = render(results.model_copy(update={"verdicts": judge(results)}))
    assert block.startswith(BEGIN) and block.rstrip().endswith(END)
    for text in ("Test CPU, 2 cores, 24.0 GiB", "`python -m harness bench`", "abc123", "| python | 100 | 100 | 3 |",
                 "deliberate flaw", "Ours ÷ aiperf's", "| tokio | 100 | 1.50 | 1.79 |", "two servers", "**missed**",
                 "| 3 | 1.30 |"):  # fmt: skip
        assert text in block, text


def test_replace_block_keeps_the_prose_around_it() -> None:
    doc = f"# Bench\n\nIntro.\n\n{BEGIN}\nold figures\n{END}\n\n## Definitions\n\nText.\n"
    new = replace_block(doc, f"{BEGIN}\nnew figures\n{END}\n")
    assert new == f"# Bench\n\nIntro.\n\n{BEGIN}\nnew figures\n{END}\n\n## Definitions\n\nText.\n"
    assert replace_block("# Bench\n", f"{BEGIN}\nx\n{END}\n") == f"# Bench\n\n{BEGIN}\nx\n{END}\n"


def test_the_scheduling_sections_local_loop_runs_the_sweep_it_times() -> None:
    """The no-op executor is held to the sweep loop's protocol: a bench crashed after 11 minutes when the
    protocol grew a member the fake lacked."""
    from harness.bench import scheduling
    from harness.protocol.plan import expand
    from harness.protocol.spec import load_spec, spec_path

    spec = load_spec(spec_path(Path(__file__).resolve().parents[2] / "experiments", scheduling.REPORT))
    plan = expand(spec, runs_per_config=1)
    plan = plan.model_copy(update={"runs": plan.runs[:3]})
    per_run = scheduling._per_run(scheduling._LocalNoop(), spec, plan)
    assert len(per_run) == 3 and all(0 <= s < 5 for s in per_run)
