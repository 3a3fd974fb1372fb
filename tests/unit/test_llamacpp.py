"""The llama.cpp backend without a running engine: request bytes, SSE parsing, budgets, context, compose, inputs.

The SSE bodies below follow the framing of llama.cpp's server (``data: {json}`` lines, a last chunk with
``finish_reason`` and ``timings``, then ``data: [DONE]``); the Docker tests run the same client against the real
server.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from harness.analysis.engine import engine_note
from harness.containers.compose import COMPOSE_DIR, compose_files, load_compose
from harness.containers.llamacpp_build import load_llamacpp_pin
from harness.containers.pins import PINS_PATH
from harness.engines.llamacpp import LlamaCppClient, completion_body, final_from_timings, ms_to_ns
from harness.errors import BadInputError, OllamaError
from harness.protocol.plan import expand
from harness.protocol.spec import load_spec, spec_path
from harness.run import llamacpp
from harness.sim.text import natural_length

ROOT = Path(__file__).resolve().parents[2]

# The same literal is asserted by the Rust agents' test (chimeraforge_core::body::tests): byte-identical bodies.
BODY = (
    b'{"model":"tiny","prompt":"Hi \\"there\\"\\n\xc3\xa9","max_tokens":321,"stream":true,'
    b'"temperature":0.8,"top_p":0.9,"top_k":40,"seed":7}'
)


def test_completion_body_bytes_and_option_mapping() -> None:
    options: dict[str, float | int] = {
        "seed": 7, "num_gpu": 80, "top_k": 40, "num_ctx": 512, "temperature": 0.8, "top_p": 0.9, "num_predict": 321,
    }  # fmt: skip
    assert completion_body("tiny", 'Hi "there"\né', stream=True, options=options) == BODY
    assert completion_body("m", "p", stream=False, options=None) == b'{"model":"m","prompt":"p","stream":false}'
    assert b"max_tokens" not in completion_body("m", "p", stream=True, options={"num_predict": -1})
    with pytest.raises(OllamaError, match="mirostat"):
        completion_body("m", "p", stream=True, options={"mirostat": 1})


def _sse(*chunks: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _choice(text: str, reason: str | None = None) -> dict[str, object]:
    return {"choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": reason}], "object": "x"}


TIMINGS = {"prompt_n": 12, "prompt_ms": 3.25, "predicted_n": 3, "predicted_ms": 1.5000004, "cache_n": 0}


async def _generate(body: bytes, *, status: int = 200) -> tuple[object, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body, headers={"content-type": "text/event-stream"})

    async with LlamaCppClient("http://engine", transport=httpx.MockTransport(handler)) as client:
        obs = await client.generate("tiny", "prompt", options={"num_predict": 3, "temperature": 0.8})
    return obs, seen


async def test_stream_is_parsed_and_timings_become_the_record_fields() -> None:
    last = {**_choice("", "length"), "timings": TIMINGS, "usage": {"completion_tokens": 3}}
    obs, seen = await _generate(_sse(_choice("a"), _choice(" b"), _choice(" c"), last))
    assert seen[0].url.path == "/v1/completions"
    assert seen[0].content == b'{"model":"tiny","prompt":"prompt","max_tokens":3,"stream":true,"temperature":0.8}'
    assert obs.ok and obs.text == "a b c" and len(obs.chunk_offsets_ns) == 3  # type: ignore[attr-defined]
    final = obs.final  # type: ignore[attr-defined]
    assert final["eval_count"] == 3 and final["prompt_eval_count"] == 12
    assert final["eval_duration"] == 1_500_000 and final["prompt_eval_duration"] == 3_250_000
    assert final["done_reason"] == "length" and final["timings"] == TIMINGS


async def test_a_stream_without_timings_or_with_an_error_fails_the_call() -> None:
    obs, _ = await _generate(_sse(_choice("a")))
    assert obs.error == "stream ended without a final chunk (done=true)"  # type: ignore[attr-defined]
    obs, _ = await _generate(_sse(_choice("a"), {"error": {"code": 500, "message": "context full"}}))
    assert obs.error == "server error mid-stream: context full"  # type: ignore[attr-defined]
    obs, _ = await _generate(b'{"error":{"message":"bad"}}', status=400)
    assert obs.error.startswith("HTTP 400")  # type: ignore[attr-defined]


def test_ms_to_ns_rounds_half_up_like_the_rust_agents() -> None:
    assert ms_to_ns(0.0000005) == 1 and ms_to_ns(1.25) == 1_250_000 and ms_to_ns(0) == 0
    assert final_from_timings({}, None)["eval_count"] == 0


def test_token_budget_is_a_stable_draw_of_the_simulators_length_model() -> None:
    budgets = {llamacpp.token_budget(1234, f"run{i}") for i in range(200)}
    assert llamacpp.token_budget(1234, "run1") == llamacpp.token_budget(1234, "run1")
    assert min(budgets) >= 900 and max(budgets) <= 4800 and len(budgets) > 50
    assert any(b > 1200 for b in budgets)  # the length model's long-answer tail is kept
    assert natural_length(b"k", 400) == natural_length(b"k", 400)


def test_server_plan_fits_the_workflow_and_never_shrinks_the_spec() -> None:
    spec = load_spec(spec_path(ROOT / "experiments", "tr114"))
    plan = expand(spec, runs_per_config=1, config_ids={"011"} if any(c.id == "011" for c in spec.configs) else None)
    run = next(r for r in plan.runs if len(r.agents) == 2)
    server = llamacpp.server_plan(spec, run, model_file=Path("/m.gguf"), model_sha256="ab" * 32, seed=1234)
    assert server.ctx_size >= spec.server.context_length * spec.server.num_parallel
    assert server.ctx_size >= 2 * server.max_tokens + llamacpp.PROMPT_HEADROOM_TOKENS
    assert server.ctx_size >= max([*server.num_ctx_asked, 0])
    assert server.variables("img")["LLAMACPP_CTX_SIZE"] == str(server.ctx_size)
    assert json.loads(server.to_json(stack_ready_s=1.5))["stack_ready_s"] == 1.5
    assert llamacpp.threads_per_server(2, cpus=2) == 1 and llamacpp.threads_per_server(1, cpus=16) == 16


@pytest.mark.parametrize("topology", ["single", "dual"])
def test_llamacpp_override_keeps_loopback_non_root_and_mounts_the_model_read_only(topology: str) -> None:
    variables = {"HARNESS_IMAGE": "h", "LLAMACPP_IMAGE": "chimeraforge/llamacpp:x", "LLAMACPP_MODEL_VOLUME": "gguf-x"}
    project = load_compose(compose_files(topology, "llamacpp"), variables, gpu=False)  # type: ignore[arg-type]
    names = ["ollama", "ollama2"] if topology == "dual" else ["ollama"]
    for name in names:
        svc = project.services[name]
        assert svc.image == "chimeraforge/llamacpp:x" and svc.command is not None
        assert svc.command[0] == "llama-server" and "/gguf/model.gguf" in svc.command
        # the weights come through a named volume, read-only: the container policy refuses host bind mounts
        assert [(m.kind, m.source, m.target, m.read_only) for m in svc.mounts] == [("volume", "gguf", "/gguf", True)]
        assert all(p.host_ip == "127.0.0.1" for p in svc.ports)
        assert svc.user == "10001:10001" and svc.cap_drop == ("ALL",) and svc.gpus == ()
        assert svc.ready_http == (11434, "/health")
    assert project.volumes["gguf"].external and project.volumes["gguf"].name == "gguf-x"
    assert (COMPOSE_DIR / "llamacpp.override.yml").is_file()


def test_model_file_checks_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        llamacpp.check_model_file(tmp_path / "none.gguf")
    text = tmp_path / "x.gguf"
    text.write_bytes(b"not a model")
    with pytest.raises(BadInputError, match="not a GGUF"):
        llamacpp.check_model_file(text)
    private = tmp_path / "p.gguf"
    private.write_bytes(b"GGUF....")
    private.chmod(0o600)  # only the kit reads it: the servers read their own copy in a volume
    assert llamacpp.check_model_file(private) == private


def test_pins_carry_the_sdist_hash_and_the_tiny_models_digest() -> None:
    pin = load_llamacpp_pin(PINS_PATH)
    assert len(pin.sdist_sha256) == 64 and len(pin.tiny_model_sha256) == 64 and pin.llama_cpp_commit


def test_bad_llamacpp_pin_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "pins.toml"
    bad.write_text('[llamacpp]\npackage = "x"\nversion = "1"\nsdist_sha256 = "nothex"\nllama_cpp_commit = "c"\n')
    with pytest.raises(BadInputError, match="not a sha256"):
        load_llamacpp_pin(bad)


def test_report_names_the_engine() -> None:
    assert "llama.cpp" in (engine_note("llamacpp") or "") and "not comparable" in (engine_note("llamacpp") or "")
    assert engine_note("sim") is None and engine_note("ollama") is None


@pytest.mark.slow
def test_tiny_model_is_byte_stable_and_matches_its_pin(tmp_path: Path) -> None:
    """Written twice from the vendored vocabulary: the same bytes, and the digest docker/pins.toml pins."""
    from harness.containers.llamacpp_build import vocab_file
    from harness.engines import tiny_model

    pin = load_llamacpp_pin(PINS_PATH)
    vocab = vocab_file(pin, tiny_model.DEFAULT_VOCAB)
    model = tiny_model.write_tiny_model(vocab, tmp_path / "a.gguf")
    assert model.sha256 == pin.tiny_model_sha256
    assert 3_000_000 < model.size_bytes < 8_000_000
    assert (tmp_path / "a.gguf").stat().st_mode & 0o004  # readable by the non-root server
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
