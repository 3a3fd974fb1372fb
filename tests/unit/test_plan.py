"""Plan expansion is pure and stable: the same spec gives the same run ids in the same order."""

from __future__ import annotations

from pathlib import Path

from harness.protocol.flags import OPTION_NAMES
from harness.protocol.plan import Plan, expand
from harness.protocol.spec import Options, load_spec

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_run_ids_are_stable_and_unique() -> None:
    spec = load_spec(EXPERIMENTS / "tr110.toml")
    first, second = expand(spec), expand(spec)
    assert [r.run_id for r in first.runs] == [r.run_id for r in second.runs]
    assert len({r.run_id for r in first.runs}) == len(first.runs)
    assert all(len(r.run_id) == 16 for r in first.runs)


def test_run_id_changes_with_what_the_run_does() -> None:
    spec = load_spec(EXPERIMENTS / "tr114.toml")
    run = expand(spec).protocol[0]
    changed = run.model_copy(update={"repetition": 2})
    from harness.protocol.plan import _run_id

    assert _run_id(changed.canonical()) != run.run_id


def test_interleaving_is_seeded() -> None:
    spec = load_spec(EXPERIMENTS / "tr115.toml")
    ordered = [r.run_id for r in expand(spec).runs]
    a = [r.run_id for r in expand(spec, interleave_seed=7).runs]
    b = [r.run_id for r in expand(spec, interleave_seed=7).runs]
    assert a == b and a != ordered and sorted(a) == sorted(ordered)


def test_overrides_select_configs_and_repetitions() -> None:
    spec = load_spec(EXPERIMENTS / "tr114.toml")
    plan = expand(spec, runs_per_config=1, config_ids={"001", "201"})
    assert len(plan.protocol) == 2
    assert len(plan.of_kind("isolated")) == 4  # one per side, capped by --runs 1


def test_multi_agent_scenario_mapping() -> None:
    spec = load_spec(EXPERIMENTS / "tr114.toml")
    runs = {r.config_id: r for r in expand(spec, runs_per_config=1, include_isolated=False).runs}
    bvc, hetero, homo = runs["001"], runs["007"], runs["013"]
    assert bvc.agents[0].options is None and bvc.agents[1].wire_options() == {
        "num_gpu": 60,
        "num_ctx": 512,
        "temperature": 0.8,
    }
    assert hetero.agents[0].options != hetero.agents[1].options
    assert homo.agents[0].options == homo.agents[1].options
    assert [a.server_index for a in bvc.agents] == [0, 1], "dual topology: A on the first server, B on the second"


def test_single_topology_sends_both_agents_to_one_server() -> None:
    spec = load_spec(EXPERIMENTS / "tr113.toml")
    assert all(a.server_index == 0 for r in expand(spec).runs for a in r.agents)


def test_tr112_runs_both_languages() -> None:
    plan = expand(load_spec(EXPERIMENTS / "tr112.toml"))
    assert {(r.language, r.runtime) for r in plan.runs} == {("python", "asyncio"), ("rust", "tokio")}
    assert len(plan.protocol) == 12


def test_plan_options_stay_typed_and_serialize_as_the_wire() -> None:
    """The plan keeps the spec's Options; plan.json and the run id see only the set fields, in wire order."""
    spec = load_spec(EXPERIMENTS / "tr114.toml")
    plan = expand(spec, runs_per_config=1, include_isolated=False)
    run = next(r for r in plan.runs if r.config_id == "001")
    assert isinstance(run.agents[1].options, Options)
    dumped = run.model_dump(mode="json")["agents"][1]["options"]
    assert dumped == {"num_gpu": 60, "num_ctx": 512, "temperature": 0.8} and list(dumped) == list(OPTION_NAMES[:3])
    assert Plan.model_validate(plan.model_dump(mode="json")) == plan
