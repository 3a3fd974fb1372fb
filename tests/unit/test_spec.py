"""Specs load, expand to the published run counts, and fail clearly when malformed."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from harness.errors import SpecError
from harness.protocol.plan import expand
from harness.protocol.spec import load_spec, parse_spec

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
REPORTS = ["tr108", "tr109", "tr110", "tr111", "tr112", "tr113", "tr114", "tr115"]


@pytest.mark.parametrize("report", REPORTS)
def test_every_spec_loads_with_claims_and_sources(report: str) -> None:
    spec = load_spec(EXPERIMENTS / f"{report}.toml")
    assert spec.id == report
    assert spec.server.ollama_version == "0.12.10"
    assert spec.claims, "every report is judged against at least one published claim"
    assert all(c.source and c.comparability for c in spec.claims)


def test_tr114_is_the_v2_grid_with_original_test_ids() -> None:
    spec = load_spec(EXPERIMENTS / "tr114.toml")
    ids = [c.id for c in spec.configs]
    assert len(ids) == 27
    assert ids[:18] == [f"{n:03d}" for n in range(1, 19)]
    assert {"101", "102", "105"}.isdisjoint(ids)
    assert {"100", "103", "104", "106", "107", "108", "200", "201", "202"} <= set(ids)
    hetero_b = [c.b for c in spec.configs if c.scenario == "chimera_hetero"]
    assert all(b is not None and b.temperature == 0.8 for b in hetero_b)
    assert spec.topology.ollama == "dual" and spec.topology.ports == [11434, 11435]


@pytest.mark.parametrize(("report", "protocol"), [("tr114", 135), ("tr115", 150), ("tr110", 150)])
def test_plan_counts(report: str, protocol: int) -> None:
    plan = expand(load_spec(EXPERIMENTS / f"{report}.toml"))
    assert len(plan.protocol) == protocol
    isolated = plan.of_kind("isolated")
    assert isolated, "multi-agent reports need isolated single-agent baselines for the true efficiency"
    configs = {r.config_id for r in plan.protocol}
    assert {r.config_id for r in isolated} == configs
    assert all(len(r.agents) == 1 and r.isolated_side in ("a", "b") for r in isolated)


def test_tr115_has_five_runtimes_plus_the_flawed_variant_as_diagnostic() -> None:
    plan = expand(load_spec(EXPERIMENTS / "tr115.toml"))
    assert {r.runtime for r in plan.protocol} == {"tokio", "tokio-local", "smol", "smol-1kb", "async-std"}
    assert {r.runtime for r in plan.of_kind("diagnostic")} == {"async-std-mutex"}
    assert len(plan.of_kind("diagnostic")) == 30


def _tr114_data() -> dict:
    return tomllib.loads((EXPERIMENTS / "tr114.toml").read_text())


def test_unknown_key_names_file_and_field() -> None:
    data = _tr114_data()
    data["configs"][3]["b"]["num_gpus"] = 80
    with pytest.raises(SpecError) as err:
        parse_spec(data, where="experiments/tr114.toml")
    message = str(err.value)
    assert "experiments/tr114.toml" in message
    assert "configs[3](id=004).b.num_gpus" in message and "unknown key" in message


def test_wrong_type_names_field() -> None:
    data = _tr114_data()
    data["agent"]["runs"] = "five"
    with pytest.raises(SpecError, match=r"tr114\.toml: agent\.runs: "):
        parse_spec(data, where="tr114.toml")


def test_unknown_scenario_lists_allowed_values() -> None:
    data = _tr114_data()
    data["configs"][0]["scenario"] = "chimera_mixed"
    with pytest.raises(SpecError) as err:
        parse_spec(data, where="tr114.toml")
    assert "configs[0](id=001).scenario" in str(err.value)
    assert "'baseline_vs_chimera'" in str(err.value) and "chimera_homo" in str(err.value)


def test_homo_config_with_different_sides_is_rejected() -> None:
    data = _tr114_data()
    homo = next(c for c in data["configs"] if c["scenario"] == "chimera_homo")
    homo["b"] = {**homo["b"], "num_ctx": 4096}
    with pytest.raises(SpecError, match="chimera_homo: `a` and `b` must set the same options"):
        parse_spec(data, where="tr114.toml")


def test_unknown_schema_version_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "tr114.toml"
    path.write_text((EXPERIMENTS / "tr114.toml").read_text().replace("schema_version = 1", "schema_version = 9"))
    with pytest.raises(SpecError, match="schema_version 9 is not supported"):
        load_spec(path)


def test_missing_spec_lists_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "tr110.toml").write_text("")
    with pytest.raises(SpecError, match="pick one of: tr110"):
        load_spec(tmp_path / "tr199.toml")


@pytest.mark.parametrize("report", REPORTS)
def test_every_spec_runs_the_servers_at_the_pinned_versions_defaults(report: str) -> None:
    spec = load_spec(EXPERIMENTS / f"{report}.toml")
    spec.server.require_reasons(report)
    assert spec.server.changed() == {}  # as the originals' server logs show
    assert spec.server.flash_attention is None  # left unset: the server decides per model
    assert spec.topology.gpus() == ["0"] * len(spec.topology.ports)  # both servers on one GPU


def test_a_server_setting_that_differs_from_the_default_needs_a_reason() -> None:
    data = _tr114_data()
    data["server"]["flash_attention"] = False
    spec = parse_spec(data, where="tr114.toml")  # still readable: artifacts of earlier kits wrote it out
    with pytest.raises(SpecError, match=r"flash_attention = False differs from Ollama 0\.12\.10's default None"):
        spec.server.require_reasons("tr114.toml")
    data["server"]["reasons"] = {"flash_attention": "measure the kernels the reports' text claims"}
    spec = parse_spec(data, where="tr114.toml")
    spec.server.require_reasons("tr114.toml")
    assert spec.server.changed() == {"flash_attention": False}
    data["server"]["num_parallel"] = 1  # the default, written out: allowed and not a change
    assert parse_spec(data, where="tr114.toml").server.changed() == {"flash_attention": False}
    data["server"]["reasons"]["num_ctx"] = "typo"
    with pytest.raises(SpecError, match="reasons for unknown setting"):
        parse_spec(data, where="tr114.toml").server.require_reasons("tr114.toml")
    data = _tr114_data()
    data["server"]["ollama_version"] = "0.13.0"
    with pytest.raises(SpecError, match=r"no defaults are known for Ollama 0\.13\.0"):
        parse_spec(data, where="tr114.toml").server.require_reasons("tr114.toml")


def test_reproduce_refuses_an_unexplained_server_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    experiments = tmp_path / "experiments"
    shutil.copytree(EXPERIMENTS, experiments)
    spec = experiments / "tr110.toml"
    changed = spec.read_text().replace('ollama_version = "0.12.10"', 'ollama_version = "0.12.10"\nnum_parallel = 2')
    spec.write_text(changed)
    monkeypatch.setenv("HARNESS_EXPERIMENTS_DIR", str(experiments))
    out = tmp_path / "never"
    assert main(["reproduce", "--report", "tr110", "--executor", "local", "--backend", "sim", "--out", str(out)]) == 2
    assert "server.num_parallel = 2 differs" in capsys.readouterr().err
    assert not out.exists()


def test_device_ids_pin_one_gpu_per_server() -> None:
    data = _tr114_data()
    data["topology"]["device_ids"] = ["0", "1"]
    assert parse_spec(data, where="tr114.toml").topology.gpus() == ["0", "1"]
    data["topology"]["device_ids"] = ["0"]
    with pytest.raises(SpecError, match="dual topology needs 2 device id"):
        parse_spec(data, where="tr114.toml")


def test_a_pinned_model_digest_is_64_hex() -> None:
    data = _tr114_data()
    data["model"]["digest"] = "a" * 64
    assert parse_spec(data, where="tr114.toml").model.digest == "a" * 64
    data["model"]["digest"] = "sha256:" + "a" * 64
    with pytest.raises(SpecError, match=r"model\.digest"):
        parse_spec(data, where="tr114.toml")
