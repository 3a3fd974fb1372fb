"""What a run on the llama.cpp backend needs beyond an Ollama run: a token budget, a server context size, the
compose variables of its servers, and the model's facts read from a serving engine.

- **Token budget.** A random-weight model has no meaningful end, so every call sends ``max_tokens``: one draw
  per run from the simulator's own length model (:func:`harness.sim.text.natural_length`, prompt class of the
  analysis/report prompts), seeded by the run id, recorded on every call record.
- **Context.** Ollama takes ``num_ctx`` per request; llama.cpp sizes its context once, at server start (``-c``,
  split between ``--parallel`` slots), and fails a prompt that does not fit instead of truncating it. The server
  therefore gets the largest of the agents' ``num_ctx``, the spec's server context and what the workflow needs
  (the report prompt embeds the analysis answer), per slot. The per-agent ``num_ctx`` difference of a hetero
  config is lost on this engine: docs/engines.md says so, and the run's ``llamacpp.json`` records the value used.
- **Offload.** On the CUDA image ``num_gpu`` (Ollama's count of layers to offload) maps to ``--n-gpu-layers``;
  unset, every layer is offloaded (what Ollama does when the model fits). Like ``num_ctx`` it is a server-start
  setting here: agents asking different values of one server get the largest, recorded. On CPU it is 0.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.artifacts import ModelFacts
from harness.digests import sha256_file
from harness.engines.llamacpp import LlamaCppClient
from harness.engines.ollama import OllamaFacts
from harness.errors import BadInputError, OllamaError
from harness.facts import absent
from harness.progress import Progress, quiet
from harness.protocol.plan import Run
from harness.protocol.spec import Spec
from harness.sim.text import natural_length

ANALYSIS_PROMPT_TOKENS = 400
"""The length model's prompt class of the kit's analysis and report prompts (≥ 400 tokens)."""
PROMPT_HEADROOM_TOKENS = 4096
"""Room for the prompts around the answers: the analysis prompt (the corpus summary) is about 3 800 llama-spm
tokens, the report template about 400 plus the embedded analysis answer."""
RECORD_FILE = "llamacpp.json"
ALL_LAYERS = 999
"""``--n-gpu-layers`` that offloads every layer of any model (llama.cpp clamps it to the model's count)."""


def token_budget(seed: int, run_id: str) -> int:
    """The run's per-call ``max_tokens``: one draw of the simulator's length model, stable for the run."""
    key = hashlib.sha256(f"llamacpp-budget:{seed}:{run_id}".encode()).digest()
    return natural_length(key, ANALYSIS_PROMPT_TOKENS)


def asked(run: Run | None, option: Literal["num_ctx", "num_gpu"]) -> list[int]:
    """The distinct values of a server-start ``option`` that ``run``'s agents ask for, sorted."""
    values = {getattr(a.options, option) for a in (run.agents if run is not None else []) if a.options is not None}
    return sorted(v for v in values if v is not None)


def context_size(spec: Spec, run: Run, budget: int) -> int:
    """The server's ``--ctx-size``: room for the workflow in every slot, never below what the spec asks."""
    per_slot = max([*asked(run, "num_ctx"), spec.server.context_length, 2 * budget + PROMPT_HEADROOM_TOKENS])
    return per_slot * max(1, spec.server.num_parallel)


def threads_per_server(servers: int, cpus: int | None = None) -> int:
    """CPU threads for each server: the host's CPUs split between the run's servers."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, servers))


@dataclass(frozen=True)
class ServerPlan:
    """How one run's llama.cpp servers are started (written to the run folder as ``llamacpp.json``)."""

    schema_version: int
    model_file: str
    model_sha256: str
    ctx_size: int
    parallel: int
    threads: int
    n_gpu_layers: int
    max_tokens: int
    num_ctx_asked: list[int]
    device: str = "cpu"
    num_gpu_asked: list[int] = field(default_factory=list)

    def variables(self, image: str) -> dict[str, str]:
        """Compose interpolation for ``compose/llamacpp*.override.yml``."""
        from harness.containers import model_volume

        return {
            "LLAMACPP_IMAGE": image,
            "LLAMACPP_MODEL_VOLUME": model_volume.volume_name(self.model_sha256),
            "LLAMACPP_CTX_SIZE": str(self.ctx_size),
            "LLAMACPP_THREADS": str(self.threads),
            "LLAMACPP_GPU_LAYERS": str(self.n_gpu_layers),
        }

    def to_json(self, *, stack_ready_s: float | None = None) -> bytes:
        """The plan, and once the servers answered, the engine's load time (stack start to /health 200)."""
        doc: dict[str, object] = {**asdict(self), "engine": "llamacpp", "stack_ready_s": stack_ready_s}
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def gpu_layers(run: Run | None, device: str) -> tuple[int, list[int]]:
    """``--n-gpu-layers`` for ``run``'s servers on ``device``, and the distinct ``num_gpu`` its agents asked."""
    gpu = asked(run, "num_gpu")
    if device != "cuda":
        return 0, gpu
    return (max(gpu) if gpu else ALL_LAYERS), gpu


def server_plan(
    spec: Spec, run: Run | None, *, model_file: Path, model_sha256: str, seed: int, device: str = "cpu"
) -> ServerPlan:
    """The servers of ``run`` (``None``: the model-preparation server) on ``device`` (``cpu`` or ``cuda``)."""
    servers = len(spec.topology.ports) if run is not None else 1
    budget = token_budget(seed, run.run_id if run is not None else "prepare")
    ctx = context_size(spec, run, budget) if run is not None else spec.server.context_length
    layers, gpu_asked = gpu_layers(run, device)
    return ServerPlan(
        schema_version=1,
        model_file=str(model_file),
        model_sha256=model_sha256,
        ctx_size=ctx,
        parallel=spec.server.num_parallel,
        threads=threads_per_server(servers),
        n_gpu_layers=layers,
        max_tokens=budget,
        num_ctx_asked=asked(run, "num_ctx"),
        device=device,
        num_gpu_asked=gpu_asked,
    )


def check_model_file(path: Path) -> Path:
    """A readable GGUF file; bad input otherwise (nothing started)."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise BadInputError(f"--model-file {path} does not exist", hint="pass a .gguf file, or run `invoke model.tiny`")
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise BadInputError(f"--model-file {path} is not a GGUF file", hint="pass a .gguf model file")
    return path  # the kit copies it into a volume owned by the server's user: its host permissions do not matter


async def describe_server(
    base_url: str, alias: str, model_sha256: str, size_bytes: int, load_s: float
) -> tuple[ModelFacts, OllamaFacts]:
    """The model's identity (sha256 of the GGUF) and what the serving engine says about itself and the model."""
    async with LlamaCppClient(base_url, read_timeout_s=30.0) as client:
        health = await client.health()
        models = await client.models()
        props = await client.props()
    if health.get("status") != "ok":
        raise OllamaError(f"llama.cpp at {base_url} is not ready: {health}")
    entry: Any = next(iter(models.get("data") or []), {})
    meta: dict[str, Any] = (entry.get("meta") or {}) if isinstance(entry, dict) else {}
    build = str(props.get("build_info") or "llama.cpp")
    version = f"llama.cpp {build}"
    facts = ModelFacts(
        name=alias,
        digest=f"sha256:{model_sha256}",
        size_bytes=size_bytes,
        server_version=version,
        simulated=False,
        pull_duration_s=load_s,
    )
    server = OllamaFacts(
        base_url=base_url.rstrip("/"),
        version=version,
        simulated=False,
        model=alias,
        model_digest=f"sha256:{model_sha256}",
        model_digest_synthetic=False,
        model_size_bytes=size_bytes,
        model_details=absent("llama.cpp reports no Ollama model details"),
        model_parameter_count=int(meta["n_params"]) if "n_params" in meta else absent("/v1/models has no n_params"),
        model_context_length=int(meta["n_ctx_train"]) if "n_ctx_train" in meta else absent("no n_ctx_train"),
        model_capabilities=["completion"],
    )
    return facts, server


def ensure_tiny_model(*, progress: Progress = quiet) -> Path:
    """The kit's tiny test model, generated once into the cache and checked against the pinned sha256."""
    from harness.containers.llamacpp_build import cache_root, load_llamacpp_pin, vocab_file
    from harness.containers.pins import PINS_PATH
    from harness.engines import tiny_model

    pin = load_llamacpp_pin(PINS_PATH)
    dest = cache_root() / "models" / "chimeraforge-tiny.gguf"
    if dest.is_file() and sha256_file(dest) == pin.tiny_model_sha256:
        return dest
    vocab = vocab_file(pin, tiny_model.DEFAULT_VOCAB, progress=progress)
    progress(f"writing the tiny test model {dest} (llama architecture, {vocab.name}, seeded weights)")
    model = tiny_model.write_tiny_model(vocab, dest)
    if pin.tiny_model_sha256 and model.sha256 != pin.tiny_model_sha256:
        raise OllamaError(
            f"the tiny model came out as sha256 {model.sha256}, docker/pins.toml pins {pin.tiny_model_sha256}",
            hint="the generator, gguf or numpy changed its output: regenerate on purpose and update the pin",
        )
    return dest
