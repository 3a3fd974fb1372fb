"""The cluster executor's admission rules and cluster.json, on admissions as nodes return them (no cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.artifacts import ArtifactDir, ModelFacts
from harness.engines.ollama import OllamaFacts
from harness.errors import BadInputError, DockerError
from harness.run.orchestrator import DockerExecutor, PreparedModel
from harness.run.ray_executor import CLUSTER_FILE, RayExecutor
from harness.run.ray_node import Admission, recipe, stack_prefix


def _model(digest: str) -> PreparedModel:
    facts = ModelFacts(name="m:latest", digest=digest, server_version="0", simulated=True, pull_duration_s=0.0)
    return PreparedModel(facts, OllamaFacts.model_construct())


def _executor(across_hosts: bool = False) -> RayExecutor:
    docker = DockerExecutor(client=None, harness_image="h", kit_version="0", seed=1, time_scale=0.02)
    return RayExecutor(docker=docker, across_hosts=across_hosts)


def _admit(ex: RayExecutor, node: str, fingerprint: str, digest: str = "d1", refused: str | None = None) -> None:
    adm = Admission(node, f"host-{node}", fingerprint, refused, None if refused else _model(digest))
    if refused:
        ex.refused[node] = ex._entry(adm, "refused", 1.0, refused)
    else:
        ex.admitted[node], ex.capacity[node] = adm, 1.0


def test_one_environment_is_required_unless_across_hosts() -> None:
    ex = _executor()
    _admit(ex, "n1", "fpA")
    _admit(ex, "n2", "fpB")
    with pytest.raises(BadInputError, match="differ in environment") as err:
        ex._judge({"n1": 1.0, "n2": 1.0})
    assert "--across-hosts" in (err.value.hint or "")
    across = _executor(across_hosts=True)
    _admit(across, "n1", "fpA")
    _admit(across, "n2", "fpB")
    assert across._judge({"n1": 1.0, "n2": 1.0}).facts.digest == "d1"
    assert across.parallel_runs == 2


def test_a_node_with_another_model_is_refused_with_its_reason_and_every_refusal_is_recorded(tmp_path: Path) -> None:
    ex = _executor()
    _admit(ex, "n1", "fp")
    _admit(ex, "n2", "fp", digest="d2")
    _admit(ex, "n3", "fp", refused="the harness image h is sha256:bbb… here")
    ex._judge({"n1": 1.0, "n2": 1.0, "n3": 1.0})
    assert list(ex.admitted) == ["n1"] and ex.parallel_runs == 1
    out = ArtifactDir(tmp_path / "sweep")
    ex.record(out)
    nodes = {n["node_id"]: n for n in json.loads((out.root / CLUSTER_FILE).read_text())["nodes"]}
    assert nodes["n1"]["status"] == "admitted" and nodes["n2"]["status"] == "refused"
    assert "d2" in nodes["n2"]["reason"] and "harness image" in nodes["n3"]["reason"]


def test_every_node_refused_is_an_error_that_lists_the_reasons() -> None:
    ex = _executor()
    _admit(ex, "n1", "fp", refused="image missing")
    with pytest.raises(DockerError, match="image missing"):
        ex._judge({"n1": 1.0})


def test_a_resume_on_nodes_of_another_environment_is_refused(tmp_path: Path) -> None:
    out = ArtifactDir(tmp_path / "sweep")
    first = _executor()
    _admit(first, "n1", "fpA")
    first.record(out)
    first.lost["n1"] = "lost during run r1"
    first._write()
    assert json.loads((out.root / CLUSTER_FILE).read_text())["nodes"][0]["status"] == "lost"
    again = _executor()
    _admit(again, "n2", "fpB")
    with pytest.raises(BadInputError, match="mix two environments"):
        again.record(out)
    same = _executor()
    _admit(same, "n3", "fpA")
    same.record(out)
    assert {n["node_id"] for n in json.loads((out.root / CLUSTER_FILE).read_text())["nodes"]} == {"n1", "n3"}


def test_runs_go_to_the_least_loaded_live_node_and_none_left_is_an_error() -> None:
    ex = _executor()
    _admit(ex, "n1", "fp")
    _admit(ex, "n2", "fp")
    ex._load["n1"] = 1
    assert ex._pick() == "n2"
    ex.lost["n2"] = "gone"
    assert ex._pick() == "n1"
    ex.lost["n1"] = "gone"
    with pytest.raises(DockerError, match="every admitted node"):
        ex._pick()


def test_a_node_rebuilds_the_executor_from_its_recipe_without_the_engine_connection() -> None:
    settings = recipe(DockerExecutor(client=object(), harness_image="h", kit_version="0", seed=1, time_scale=0.5))
    assert "client" not in settings and settings["harness_image"] == "h" and settings["time_scale"] == 0.5
    assert stack_prefix("abc123", "f" * 56) == "cfkr-abc123-ffffffffffff-"


def test_across_hosts_without_ray_and_ray_with_a_bundle_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    out = tmp_path / "never"
    assert main(["reproduce", "--report", "tr110", "--across-hosts", "--out", str(out)]) == 2
    assert "--across-hosts needs --executor ray" in capsys.readouterr().err
    assert main(["reproduce", "--bundle", str(tmp_path / "b.tar"), "--executor", "ray", "--out", str(out)]) == 2
    assert "does not re-run bundles" in capsys.readouterr().err
    assert not out.exists()
