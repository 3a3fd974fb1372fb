"""The report lists every attempt of a run that was retried or failed, with its cause (issue: causes kept)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.analysis.report import build_report


def test_a_retried_run_shows_both_attempts_and_the_first_cause(artifact: Path) -> None:
    run_json = sorted(artifact.glob("runs/*/run.json"))[0]
    body = json.loads(run_json.read_text())
    body["attempts"] = 2
    body["attempt_history"] = [
        {
            "schema_version": 1,
            "number": 1,
            "started_at": body["started_at"],
            "ended_at": body["started_at"],
            "outcome": "failed",
            "cause": "agent container exited 137 (killed by SIGKILL)",
            "log_tail": {"agent": ["loading corpus", "calling /api/generate"]},
        },
        {
            "schema_version": 1,
            "number": 2,
            "started_at": body["started_at"],
            "ended_at": body["ended_at"],
            "outcome": "ok",
            "cause": None,
            "log_tail": {},
        },
    ]
    run_json.write_text(json.dumps(body))
    md = build_report(artifact).markdown.read_text()
    section = md[md.index("## Retries and failures") : md.index("## Warnings")]
    assert "1 run(s) needed more than one attempt or failed" in section
    assert "agent container exited 137 (killed by SIGKILL)" in section
    assert "agent: calling /api/generate" in section and body["run"]["run_id"] in section


def test_a_sweep_without_retries_says_so(artifact: Path) -> None:
    md = build_report(artifact).markdown.read_text()
    assert "## Retries and failures\n\nEvery run succeeded at its first attempt." in md
