"""`harness reproduce` with the local simulator executor: artifacts, resume, exit codes, no side effects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.artifacts import ArtifactDir, load_sweep
from harness.cli import main
from harness.records import MultiRunRecord
from tests.unit.conftest import LOCAL_ARGS

ARGS = LOCAL_ARGS


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])


def test_reproduce_writes_every_run_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "tr110"
    assert main([*ARGS, "--out", str(out)]) == 0
    sweep = load_sweep(out)
    assert sweep.simulated and sweep.backend == "sim" and sweep.planned_runs == 3
    runs = ArtifactDir(out).load_runs()
    assert sorted(r.run.kind for r, _ in runs) == ["isolated", "isolated", "protocol"]
    protocol_records = next(recs for r, recs in runs if r.run.kind == "protocol")
    assert any(isinstance(rec, MultiRunRecord) and rec.ok for rec in protocol_records)
    assert all(
        json.loads((out / "runs" / r.run.run_id / "run.json").read_text())["schema_version"] == 1 for r, _ in runs
    )
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/run.json")}
    assert main([*ARGS, "--out", str(out)]) == 0  # resume: nothing left to do, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/run.json")} == before


def test_bad_input_exits_2_without_side_effects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never"
    assert main(["reproduce", "--report", "tr999", "--backend", "sim", "--out", str(out)]) == 2
    assert main([*ARGS, "--configs", "^nope$", "--out", str(out)]) == 2
    local_tr114 = ["reproduce", "--report", "tr114", "--backend", "sim", "--executor", "local", "--out", str(out)]
    assert main(local_tr114) == 2
    err = capsys.readouterr().err
    assert "Error: no experiment spec" in err and "matches no config" in err and "Rust agents" in err
    assert not out.exists()


def test_resume_refuses_a_folder_of_another_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mixed"
    assert main([*ARGS, "--out", str(out)]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    sweep["spec_sha256"] = "0" * 64
    (out / "sweep.json").write_text(json.dumps(sweep))
    assert main([*ARGS, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "other settings (spec sha256" in err and "or pass a new --out folder" in err


def test_resume_refuses_a_folder_started_with_other_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "images"
    assert main([*ARGS, "--out", str(out)]) == 0
    assert load_sweep(out).images == {}  # the local executor runs nothing in a container
    sweep = json.loads((out / "sweep.json").read_text())
    sweep["images"] = {"harness": "sha256:" + "1" * 64}
    (out / "sweep.json").write_text(json.dumps(sweep))
    assert main([*ARGS, "--out", str(out)]) == 2
    assert "other settings (harness image" in capsys.readouterr().err


def test_the_model_is_pulled_and_described_before_the_first_run(tmp_path: Path) -> None:
    out = tmp_path / "model"
    assert main([*ARGS, "--out", str(out)]) == 0
    model = load_sweep(out).model
    assert model is not None and model.simulated
    assert model.name == "gemma3:latest" and len(model.digest) == 64 and model.server_version == "0.12.10"


def test_resume_refuses_a_folder_started_with_another_model_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "digest"
    assert main([*ARGS, "--out", str(out)]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    sweep["model"]["digest"] = "2" * 64
    (out / "sweep.json").write_text(json.dumps(sweep))
    assert main([*ARGS, "--out", str(out)]) == 2
    assert "mix two models" in capsys.readouterr().err


def test_provenance_and_per_run_telemetry_are_written(tmp_path: Path) -> None:
    out = tmp_path / "prov"
    assert main([*ARGS, "--out", str(out)]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["schema_version"] == 1 and len(prov["fingerprint_sha256"]) == 64
    assert prov["ollama"]["simulated"] and prov["ollama"]["model_digest"] == load_sweep(out).model.digest  # type: ignore[union-attr]
    assert prov["docker"] == {"present": False, "reason": "the local executor runs no container"}
    for run_dir in (out / "runs").iterdir():
        trace = json.loads((run_dir / "telemetry.json").read_text())
        assert trace["schema_version"] == 1 and trace["present"] is (prov["gpu"].get("present") is not False)


def test_resume_refuses_another_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "env"
    assert main([*ARGS, "--out", str(out)]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    prov["fingerprint_sha256"] = "0" * 64
    prov["kit"]["version"] = "0.0.1"
    (out / "provenance.json").write_text(json.dumps(prov))
    assert main([*ARGS, "--out", str(out)]) == 2
    assert "another environment (kit.version changed since)" in capsys.readouterr().err


def test_the_plan_is_said_first_and_the_rehearsal_pace_is_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "paced"
    args = [a for a in ARGS if a not in ("--time-scale", "0.01")]  # no pace given: the rehearsal pace applies
    assert main([*args, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "time scale 0.01: the rehearsal pace" in captured.err
    assert "plan: TR110 v1, 3 runs (1 protocol, 2 isolated, 0 diagnostic) on the sim backend" in captured.err
    assert "ETA about" in captured.err and f"new folder {out}" in captured.err
    assert captured.err.index("plan: TR110") < captured.err.index("preparing")  # before anything runs
    # results and paths on stdout, diagnostics on stderr
    assert captured.out.splitlines()[0].startswith(f"3/3 runs complete in {out}")
    assert "report: " in captured.out and "manifest: " in captured.out and "report: " not in captured.err
    assert load_sweep(out).time_scale == 0.01
    assert main([*args, "--out", str(out)]) == 0
    assert f"resuming {out}: 3 of 3 runs already complete" in capsys.readouterr().err
