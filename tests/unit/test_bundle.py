"""`harness bundle` and `reproduce --bundle` on an in-process artifact (no images): layout, refusals, re-run."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from harness.artifacts import ArtifactDir, load_sweep
from harness.cli import main
from harness.evidence.bundle import INDEX_NAME, KIT_FILES
from harness.protocol.spec import load_spec
from harness.run.orchestrator import DockerExecutor, server_settings
from tests.unit.conftest import ROOT


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _bundle(artifact: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["bundle", str(artifact), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("sha256 ")
    return lines[-1].removeprefix("sha256 ")


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _rerun(bundle: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["reproduce", "--bundle", str(bundle), "--out", str(out)])
    return code, capsys.readouterr().err


@pytest.fixture
def plain_bundle(artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "b.tar"
    _bundle(artifact, out, capsys)
    return out


def test_bundle_holds_the_inputs_the_locks_and_its_hash_list(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "review.tar.gz"
    sha = _bundle(artifact, out, capsys)
    assert sha == hashlib.sha256(out.read_bytes()).hexdigest()
    with tarfile.open(out, "r:gz") as tar:
        names = tar.getnames()
        contents = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert names[0] == INDEX_NAME
    index = json.loads(contents[INDEX_NAME])
    assert index["schema_version"] == 1 and index["images"] == [] and index["artifact_id"] == artifact.name
    assert {m["name"] for m in index["members"]} == set(names) - {INDEX_NAME}
    for member in index["members"]:
        data = contents[member["name"]]
        assert member["sha256"] == hashlib.sha256(data).hexdigest() and member["size_bytes"] == len(data)
    for name in ("manifest.json", "sweep.json", "plan.json", "spec.toml"):
        assert contents[f"artifact/{name}"] == (artifact / name).read_bytes()
    for rel in KIT_FILES:
        assert contents[f"kit/{rel}"] == (ROOT / rel).read_bytes()
    wanted = {"kit/compose/dual-ollama.yml", "kit/compose/sim.override.yml", "kit/experiments/prompts/analysis.txt"}
    assert wanted <= set(names)
    assert sum(n.startswith("kit/experiments/corpus/") for n in names) == len(
        [p for p in (ROOT / "experiments" / "corpus").rglob("*") if p.is_file()]
    )
    assert "images/images.tar" not in names  # made in-process: nothing ran in a container


def test_bundle_refuses_a_folder_that_does_not_verify(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.tar.gz"
    (artifact / "runs" / "notes.txt").write_text("added after the manifest\n")
    assert main(["bundle", str(artifact), "--out", str(out)]) == 2
    assert "does not verify against its manifest: 0 changed, 0 missing, 1 extra" in capsys.readouterr().err
    (artifact / "runs" / "notes.txt").unlink()
    (artifact / "manifest.json").unlink()
    assert main(["bundle", str(artifact), "--out", str(out)]) == 2
    assert "has no manifest.json" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".cfk-bundle-*"))


def test_bundle_refuses_to_overwrite_and_unknown_suffixes(
    artifact: Path, plain_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = plain_bundle.read_bytes()
    assert main(["bundle", str(artifact), "--out", str(plain_bundle)]) == 2
    assert main(["bundle", str(artifact), "--out", str(plain_bundle.with_suffix(".zip"))]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "a bundle is a .tar (plain) or .tar.gz/.tgz (gzip) file" in err
    assert plain_bundle.read_bytes() == before and not plain_bundle.with_suffix(".zip").exists()


def test_a_changed_byte_in_a_member_is_refused_before_anything_is_written(
    plain_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tarfile.open(plain_bundle) as tar:
        plan = tar.getmember("artifact/plan.json")
    _flip(plain_bundle, plan.offset_data + plan.size // 2)
    code, err = _rerun(plain_bundle, tmp_path / "rerun", capsys)
    assert code == 2 and "artifact/plan.json does not match its sha256 in bundle.json" in err
    assert not (tmp_path / "rerun").exists()


def test_an_added_member_is_refused(plain_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with tarfile.open(plain_bundle, "a") as tar:
        extra = b"echo surprise\n"
        info = tarfile.TarInfo("kit/compose/extra.sh")
        info.size = len(extra)
        tar.addfile(info, io.BytesIO(extra))
    code, err = _rerun(plain_bundle, tmp_path / "rerun", capsys)
    assert code == 2 and "kit/compose/extra.sh is not listed in bundle.json" in err
    assert not (tmp_path / "rerun").exists()


def test_a_rewritten_hash_list_is_caught_by_the_bundled_manifest(
    plain_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Edit plan.json and fix its entry in bundle.json: the manifest still vouches for the original plan."""
    with tarfile.open(plain_bundle) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    contents = dict((m.name, data) for m, data in members)
    plan = json.loads(contents["artifact/plan.json"])
    plan["runs"] = plan["runs"][:1]
    contents["artifact/plan.json"] = json.dumps(plan).encode()
    index = json.loads(contents[INDEX_NAME])
    for member in index["members"]:
        data = contents[member["name"]]
        member["sha256"], member["size_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    contents[INDEX_NAME] = json.dumps(index).encode()
    forged = tmp_path / "forged.tar"
    with tarfile.open(forged, "w") as tar:
        for member, _ in members:
            info = tarfile.TarInfo(member.name)
            info.size = len(contents[member.name])
            tar.addfile(info, io.BytesIO(contents[member.name]))
    code, err = _rerun(forged, tmp_path / "rerun", capsys)
    assert code == 2 and "artifact/plan.json is not the file its manifest vouches for" in err
    assert not (tmp_path / "rerun").exists()


def test_a_damaged_compressed_bundle_is_refused(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.tgz"
    _bundle(artifact, bundle, capsys)
    _flip(bundle, bundle.stat().st_size // 2)
    code, err = _rerun(bundle, tmp_path / "rerun", capsys)
    assert code == 2 and err.startswith("Error: refusing bundle") and "changed or damaged" in err
    assert not (tmp_path / "rerun").exists()


def test_reproduce_bundle_reruns_the_bundled_plan(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.tar.gz"
    sha = _bundle(artifact, bundle, capsys)
    rerun = tmp_path / "rerun"
    code, err = _rerun(bundle, rerun, capsys)
    assert code == 0, err
    assert f"bundle {bundle} verified" in err and "made in-process" in err
    before, after = load_sweep(artifact), load_sweep(rerun)
    assert (after.report, after.backend, after.time_scale, after.spec_sha256, after.images) == (
        before.report,
        before.backend,
        before.time_scale,
        before.spec_sha256,
        before.images,
    )
    assert after.command[:3] == ["harness", "reproduce", "--bundle"]
    assert (rerun / "plan.json").read_bytes() == (artifact / "plan.json").read_bytes()
    results = ArtifactDir(rerun).load_runs()
    assert sorted(r.run.run_id for r, _ in results) == sorted(ArtifactDir(artifact).completed_run_ids())
    assert all(r.status == "ok" for r, _ in results)
    origin = json.loads((rerun / "manifest.json").read_text())["predicate"]["origin"]
    assert origin["bundle_sha256"] == sha and origin["artifact_id"] == artifact.name
    assert main(["verify", str(rerun)]) == 0


def test_reproduce_bundle_refuses_flags_that_would_change_the_plan(
    plain_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["reproduce", "--bundle", str(plain_bundle), "--runs", "2", "--configs", "x", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert "--runs, --configs cannot change it" in capsys.readouterr().err
    assert main(["reproduce", "--out", str(tmp_path / "r")]) == 2
    assert "needs --report" in capsys.readouterr().err
    assert main(["reproduce", "--bundle", str(tmp_path / "none.tar")]) == 2
    assert "no bundle at" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_container_executor_reads_the_compose_files_it_is_given(tmp_path: Path) -> None:
    """A bundle's re-run stacks come from the bundled compose files, not the checkout's."""
    bundled = tmp_path / "kit" / "compose"
    shutil.copytree(ROOT / "compose", bundled)
    override = bundled / "sim.override.yml"
    override.write_text(override.read_text().replace("retries: 60", "retries: 7"))
    spec = load_spec(ROOT / "experiments" / "tr110.toml")
    executor = DockerExecutor(
        client=None, harness_image="chimeraforge/harness:test", kit_version="0", seed=1, time_scale=1.0
    )
    kwargs = {"topology": "dual", "model": "gemma3:latest", "sim_seed": 1, "device_group": "g"}
    mine = executor.project(server_settings(spec), **kwargs)
    theirs = dataclasses.replace(executor, compose_dir=bundled).project(server_settings(spec), **kwargs)
    assert all(p.parent == bundled for p in theirs.sources)
    assert all(p.parent == ROOT / "compose" for p in mine.sources)
    health = theirs.services["ollama"].healthcheck
    assert health is not None and health.retries == 7
