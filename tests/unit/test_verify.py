"""The run manifest and `harness verify`: tampering is found and named, schema versions checked, drift shown."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.evidence.manifest import PREDICATE_TYPE, STATEMENT_TYPE, write_manifest
from harness.settings import load_settings
from tests.unit.conftest import ROOT


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json"}


def _verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "runs").iterdir() if p.is_dir())


def test_manifest_is_an_in_toto_statement_over_every_other_file(local_artifact: Path) -> None:
    doc = json.loads((local_artifact / "manifest.json").read_text())
    assert doc["_type"] == STATEMENT_TYPE and doc["predicateType"] == PREDICATE_TYPE
    names = [s["name"] for s in doc["subject"]]
    files = _files(local_artifact)
    assert names == sorted(files) and "manifest.json" not in names
    assert {"sweep.json", "plan.json", "spec.toml", "report/report.md"} <= set(names)
    for subject in doc["subject"]:
        assert subject["digest"] == {"sha256": hashlib.sha256(files[subject["name"]].read_bytes()).hexdigest()}
    predicate = doc["predicate"]
    assert predicate["schema_version"] == 1 and predicate["simulated"] and predicate["report"] == "tr110"
    assert predicate["command"][:4] == ["harness", "reproduce", "--report", "tr110"]
    assert predicate["settings"]["sim_seed"] == 1234 and predicate["settings"]["time_scale"] == 0.01
    provenance = json.loads((local_artifact / "provenance.json").read_text())
    assert predicate["provenance"] == provenance
    assert predicate["fingerprint"]["source"] == "provenance.json"
    assert predicate["fingerprint"]["sha256"] == provenance["fingerprint_sha256"]
    runs = predicate["timings"]["runs"]
    assert runs["count"] == 3 and runs["ok"] == 3 and runs["min_s"] <= runs["median_s"] <= runs["max_s"]
    assert predicate["timings"]["sweep_started_at"] <= predicate["timings"]["sweep_ended_at"]


def test_an_untouched_folder_verifies(local_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _verify(capsys, str(local_artifact))
    count = len(json.loads((local_artifact / "manifest.json").read_text())["subject"])
    assert code == 0
    assert out.splitlines()[-1] == f"verified {count} files"
    assert "environment fingerprint" in out and "\x1b[" not in out  # plain text when not a terminal


def test_one_changed_byte_is_named(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = artifact / "report" / "report.md"
    data = bytearray(report.read_bytes())
    data[len(data) // 2] ^= 0x01
    report.write_bytes(bytes(data))
    code, out, _ = _verify(capsys, str(artifact))
    assert code == 1
    assert "changed  report/report.md" in out.splitlines()
    assert out.splitlines()[-1].startswith("FAILED: 1 changed, 0 missing, 0 extra")


def test_a_deleted_file_is_named(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dirs(artifact)[0]
    (run / "records.jsonl").unlink()
    code, out, _ = _verify(capsys, str(artifact))
    assert code == 1 and f"missing  runs/{run.name}/records.jsonl" in out.splitlines()


def test_an_added_file_is_named(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (artifact / "runs" / "notes.txt").write_text("not from the kit\n")
    code, out, _ = _verify(capsys, str(artifact))
    assert code == 1 and "extra    runs/notes.txt" in out.splitlines()


def test_unknown_schema_versions_are_reported(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dirs(artifact)[0]
    records = run / "records.jsonl"
    lines = records.read_text().splitlines()
    first = json.loads(lines[0])
    first["schema_version"] = 99
    records.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    summary = artifact / "report" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "schema_version": 2}))
    # re-vouch for the edited files, so only the versions are wrong
    write_manifest(artifact, command=["test"], settings=load_settings())
    code, out, _ = _verify(capsys, str(artifact))
    assert code == 1
    lines_out = out.splitlines()
    assert f"schema   runs/{run.name}/records.jsonl:1: schema_version 99 (this kit reads 1)" in lines_out
    assert "schema   report/summary.json: schema_version 2 (this kit reads 1)" in lines_out
    assert lines_out[-1].startswith("FAILED: 0 changed, 0 missing, 0 extra, 2 unknown schema version(s)")


def test_a_folder_without_manifest_is_bad_input(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (artifact / "manifest.json").unlink()
    code, out, err = _verify(capsys, str(artifact))
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and "has no manifest.json" in err and "re-run the same reproduce command" in err


def test_a_manifest_of_an_unknown_version_is_refused(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = artifact / "manifest.json"
    doc = json.loads(path.read_text())
    doc["predicate"]["schema_version"] = 2
    path.write_text(json.dumps(doc))
    code, _, err = _verify(capsys, str(artifact))
    assert code == 2 and "schema_version 2 is not supported" in err


def _provenance(driver: str, kernel: str, extra: dict[str, object]) -> dict[str, object]:
    body: dict[str, object] = {
        "schema_version": 1,
        "fingerprint_keys": ["gpu.name", "gpu.driver_version", "docker.images"],
        "gpu": {"name": "NVIDIA GeForce RTX 4080 Laptop GPU", "driver_version": driver, "processes": [{"pid": 7}]},
        "host": {"kernel": kernel},
        "docker": {"images": {"harness": "sha256:" + "a" * 64}},
        "ollama": {"present": False, "reason": "simulated backend"},
        **extra,
    }
    canonical = json.dumps({k: body[k] for k in ("gpu", "docker")}, sort_keys=True)
    body["fingerprint_sha256"] = hashlib.sha256((driver + canonical).encode()).hexdigest()
    return body


def test_against_shows_the_drift_key_by_key(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = artifact.parent.parent / "other" / artifact.name
    shutil.copytree(artifact, other)
    here = _provenance("550.54", "6.1.0-18", {"cuda": {"version": "12.4"}})
    there = _provenance("555.42", "6.5.0-1", {"runtime": {"name": "nvidia"}})
    for root, doc in ((artifact, here), (other, there)):
        (root / "provenance.json").write_text(json.dumps(doc))
        write_manifest(root, command=["test"], settings=load_settings())
    manifest = json.loads((artifact / "manifest.json").read_text())["predicate"]
    assert manifest["provenance"] == here and manifest["fingerprint"]["source"] == "provenance.json"

    code, out, _ = _verify(capsys, str(artifact), "--against", str(other))
    assert code == 0  # drift is information; the folder itself verifies
    lines = out.splitlines()
    assert lines[1] == f"verified {len(json.loads((artifact / 'manifest.json').read_text())['subject'])} files"
    assert any(line.startswith("  fingerprints differ (provenance.json)") for line in lines)
    assert "  2 key(s) differ, 1 only here, 1 only there" in lines
    assert "  * gpu.driver_version: 550.54 → 555.42" in lines
    assert "    host.kernel: 6.1.0-18 → 6.5.0-1" in lines
    assert f"    cuda.version: 12.4 (only in {artifact})" in lines
    assert f"    runtime.name: nvidia (only in {other})" in lines
    assert not any("fingerprint_sha256" in line for line in lines[2:])


def test_against_a_twin_says_the_fingerprints_match(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    twin = artifact.parent.parent / "twin" / artifact.name
    shutil.copytree(artifact, twin)
    code, out, _ = _verify(capsys, str(artifact), "--against", str(twin))
    assert code == 0 and "  fingerprints match (provenance.json: " in out
    assert "0 key(s) differ, 0 only here, 0 only there" in out


def test_against_a_missing_folder_is_bad_input(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _verify(capsys, str(artifact), "--against", str(artifact.parent / "nope"))
    assert code == 2 and out == "" and "is not an artifact folder" in err
