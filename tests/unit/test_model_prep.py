"""Model preparation against the in-process simulator: the store first, a pull only when allowed, the digest pin.

The tests whose names contain ``registry_unreachable`` are the air-gapped host: the simulator's registry does not
answer (a pull fails as Ollama's does, ``pull model manifest: …``) and the model is, or is not, in the store.
They run without Docker: ``reproduce --executor local`` and the simulator in this process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.artifacts import load_sweep
from harness.cli import main
from harness.engines.ollama import OllamaClient
from harness.errors import BadInputError
from harness.facts import Absent
from harness.run.model_prep import ModelPolicy, prepare_model
from harness.sim.catalog import synthetic_digest
from harness.sim.config import SimConfig
from harness.sim.server import SimServer
from tests.unit.conftest import LOCAL_ARGS

MODEL = "gemma3:latest"
OTHER_DIGEST = "0" * 64


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])


def _sim(*, store: tuple[str, ...], registry: bool) -> SimServer:
    return SimServer(SimConfig(seed=7, time_scale=0.01, preload=store, registry_reachable=registry))


async def test_registry_unreachable_model_in_store_prepares_without_pulling() -> None:
    async with _sim(store=(MODEL,), registry=False) as sim:
        prepared = await prepare_model(sim.base_url, MODEL, ModelPolicy(allow_pull=True), server_log=sim.log.text)
        pulls = [r for r in sim.requests if r.path == "/api/pull"]
    assert pulls == []  # the store answered; the registry was never asked
    assert prepared.facts.digest == synthetic_digest(MODEL) and prepared.facts.pull_duration_s == 0.0


async def test_registry_unreachable_pull_fails_like_ollama_even_for_a_stored_model() -> None:
    async with _sim(store=(MODEL,), registry=False) as sim, OllamaClient(sim.base_url) as client:
        with pytest.raises(Exception, match=r"pull model manifest: Get .*registry\.ollama\.ai.*no such host"):
            async for _ in client.pull(MODEL):
                pass
        assert (await client.tags())["models"][0]["name"] == MODEL  # present models keep working
        assert (await client.generate(MODEL, "hello", stream=False)).ok


async def test_registry_unreachable_model_absent_says_the_way_out() -> None:
    async with _sim(store=(), registry=False) as sim:
        with pytest.raises(BadInputError, match="not in the server's model store") as refused:
            await prepare_model(sim.base_url, MODEL, ModelPolicy())
        assert "--pull" in (refused.value.hint or "") and "air-gapped" in (refused.value.hint or "")
        with pytest.raises(BadInputError, match=r"pull failed: .*pull model manifest"):
            await prepare_model(sim.base_url, MODEL, ModelPolicy(allow_pull=True))


async def test_absent_model_is_pulled_only_when_allowed() -> None:
    async with _sim(store=(), registry=True) as sim:
        prepared = await prepare_model(sim.base_url, MODEL, ModelPolicy(allow_pull=True))
    assert prepared.facts.digest == synthetic_digest(MODEL) and prepared.facts.pull_duration_s > 0


async def test_a_pinned_digest_that_differs_is_bad_input_unless_a_repull_is_asked() -> None:
    async with _sim(store=(MODEL,), registry=True) as sim:
        pinned = ModelPolicy(allow_pull=True, digest=OTHER_DIGEST)
        with pytest.raises(BadInputError, match="these are other weights"):
            await prepare_model(sim.base_url, MODEL, pinned)
        with pytest.raises(BadInputError, match="no longer serves the pinned weights"):
            await prepare_model(sim.base_url, MODEL, ModelPolicy(allow_pull=True, digest=OTHER_DIGEST, repull=True))
        with pytest.raises(BadInputError, match="needs network access"):
            await prepare_model(sim.base_url, MODEL, ModelPolicy(repull=True))
        same = await prepare_model(sim.base_url, MODEL, ModelPolicy(digest=synthetic_digest(MODEL)))
    assert same.facts.digest == synthetic_digest(MODEL)


async def test_preparation_records_what_the_server_ran_with_and_leaves_it_unloaded() -> None:
    async with _sim(store=(MODEL,), registry=True) as sim, OllamaClient(sim.base_url) as client:
        prepared = await prepare_model(sim.base_url, MODEL, ModelPolicy(), server_log=sim.log.text)
        assert (await client.ps())["models"] == []  # the first run starts cold
    runtime = prepared.server.runtime
    assert not isinstance(runtime, Absent)
    facts = runtime.model_dump()
    assert facts["server_config"]["OLLAMA_FLASH_ATTENTION"] == "false"  # printed so although it was unset
    assert facts["flash_attention"] is True  # ...and the load enabled it: gemma3 supports it
    assert facts["kv_cache_type"] == "f16"
    assert (facts["layers_on_gpu"], facts["layers_total"]) == (35, 35)
    assert facts["loaded"]["context_length"] == 4096 and facts["loaded"]["size_vram_bytes"] > 0


def test_registry_unreachable_reproduce_runs_with_the_model_in_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_SIM_REGISTRY", "unreachable")
    out = tmp_path / "offline"
    assert main([*LOCAL_ARGS, "--out", str(out)]) == 0
    model = load_sweep(out).model
    assert model is not None and model.digest == synthetic_digest(MODEL)


def test_registry_unreachable_reproduce_without_the_model_exits_2_with_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HARNESS_SIM_REGISTRY", "unreachable")
    monkeypatch.setenv("HARNESS_SIM_STORE", "empty")
    out = tmp_path / "absent"
    assert main([*LOCAL_ARGS, "--out", str(out)]) == 2
    assert main([*LOCAL_ARGS, "--pull", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Error: gemma3:latest is not in the server's model store" in err and "--pull" in err
    assert "pull model manifest" in err
    assert not out.exists()


def test_registry_unreachable_reproduce_with_another_pinned_digest_exits_2_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HARNESS_SIM_REGISTRY", "unreachable")
    out = tmp_path / "pinned"
    assert main([*LOCAL_ARGS, "--model-digest", OTHER_DIGEST, "--out", str(out)]) == 2
    assert "these are other weights" in capsys.readouterr().err
    assert not out.exists()
    assert main([*LOCAL_ARGS, "--model-digest", "not-a-digest", "--out", str(out)]) == 2
    assert not out.exists()
