"""Model preparation: find the model in the server's store, pull only when allowed, pin the weights' digest.

Ollama's ``/api/pull`` asks the registry for the manifest before anything else, even when the model is already
in the store (``server/images.go``, ``PullModel``): offline it fails although the weights are there, and online a
republished tag silently replaces them. So the store is asked first (``/api/tags``); a pull happens only when the
model is absent (or a re-pull is asked for) and the user allowed network access. The digest the store reports
is the sweep's identity of the weights; a spec or flag may pin it, and a store holding other weights is bad
input (nothing runs) unless the user asks for a re-pull.

After preparation one default load tells what the server actually runs with: ``/api/ps`` (size, size_vram,
context length) and, from the server's log, the "server config" line, the flash-attention decision, the KV-cache
type and the offload. Then the model is unloaded (waiting until ``/api/ps`` no longer lists it) so the first
run starts cold, as every later one does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.artifacts import ModelFacts
from harness.engines.ollama import OllamaClient, OllamaFacts, server_facts
from harness.engines.ollama_log import ServerRuntime, runtime_facts
from harness.errors import BadInputError, OllamaError
from harness.facts import Absent
from harness.protocol.spec import Spec
from harness.settings import Settings

AIR_GAPPED_DOC = "docs/air-gapped.md"
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelPolicy:
    """What the user allows model preparation to do."""

    allow_pull: bool = False
    """Network access to the model registry: pull a model the store lacks."""
    digest: str | None = None
    """The manifest digest the weights must have (64 hex, as ``/api/tags`` reports it); None: any."""
    repull: bool = False
    """Pull even when the store has the model (to replace weights that differ from the pinned digest)."""


@dataclass(frozen=True)
class ModelRequest:
    """What the user asked of model preparation on the command line (``--pull``, ``--repull``,
    ``--model-digest``); :meth:`policy` combines it with the spec's pin and the settings."""

    pull: bool = False
    repull: bool = False
    digest: str | None = None

    def policy(self, spec: Spec, settings: Settings) -> ModelPolicy:
        digest = self.digest or spec.model.digest
        if digest is not None and not _DIGEST_RE.fullmatch(digest):
            raise BadInputError(f"--model-digest {digest!r} is not a digest", hint="give the 64 hex of /api/tags")
        return ModelPolicy(allow_pull=self.pull or settings.allow_pull, digest=digest, repull=self.repull)


@dataclass(frozen=True)
class PreparedModel:
    """The model after preparation: the sweep's identity of it, and what the server said (for provenance)."""

    facts: ModelFacts
    server: OllamaFacts


def model_tag(name: str) -> str:
    """Ollama's canonical name: ``gemma3`` is listed by /api/tags as ``gemma3:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


async def _store_digest(client: OllamaClient, model: str) -> str | None:
    tags = await client.tags()
    wanted = {model, model_tag(model)}
    for entry in tags.get("models") or []:
        if isinstance(entry, dict) and ({entry.get("name"), entry.get("model")} & wanted):
            digest = entry.get("digest")
            return str(digest) if digest else None
    return None


async def _pull(client: OllamaClient, model: str, why: str) -> float:
    started = time.monotonic()
    try:
        async for _progress in client.pull(model):
            pass
    except OllamaError as exc:
        raise BadInputError(
            f"{why}, and the pull failed: {exc.message}",
            hint=f"give the server access to the Ollama registry, or pre-load its model store ({AIR_GAPPED_DOC})",
        ) from None
    return time.monotonic() - started


async def ensure_model(client: OllamaClient, model: str, policy: ModelPolicy) -> tuple[str, float | None]:
    """The model's digest in the store after preparation, and how long a pull took (None: no pull)."""
    found = await _store_digest(client, model)
    pinned = policy.digest
    pulled: float | None = None
    if found is None:
        if not policy.allow_pull:
            raise BadInputError(
                f"{model} is not in the server's model store, and pulling it was not allowed",
                hint=f"pass --pull to fetch it from the registry, or pre-load the model store ({AIR_GAPPED_DOC})",
            )
        pulled = await _pull(client, model, f"{model} is not in the server's model store")
    elif policy.repull or (pinned is not None and found != pinned):
        if pinned is not None and found != pinned and not policy.repull:
            raise BadInputError(
                f"the server's store holds {model} with digest {found[:12]}…, the spec pins {pinned[:12]}…: "
                "these are other weights",
                hint=f"load the pinned weights into the store ({AIR_GAPPED_DOC}), or pass --repull --pull to "
                "fetch the registry's current ones (the pin must then match them)",
            )
        if not policy.allow_pull:
            raise BadInputError("--repull needs network access to the registry", hint="add --pull")
        pulled = await _pull(client, model, f"re-pulling {model}")
    digest = await _store_digest(client, model)
    if digest is None:
        raise OllamaError(f"{model} has no digest in /api/tags after its preparation", hint="see the server log")
    if pinned is not None and digest != pinned:
        raise BadInputError(
            f"{model} has digest {digest[:12]}… after the pull, the spec pins {pinned[:12]}…: the registry no longer "
            "serves the pinned weights",
            hint=f"load the pinned weights from another store or a bundle ({AIR_GAPPED_DOC}), or change the pin",
        )
    return digest, pulled


async def prepare_model(
    base_url: str,
    model: str,
    policy: ModelPolicy,
    *,
    server_log: Callable[[], str] | None = None,
    read_timeout_s: float = 3600.0,
) -> PreparedModel:
    """Make ``model`` ready on the server at ``base_url`` under ``policy`` and describe it for provenance."""
    async with OllamaClient(base_url, read_timeout_s=read_timeout_s) as client:
        digest, pulled = await ensure_model(client, model, policy)
        runtime = await _probe(client, model, server_log)
    server = await server_facts(base_url, model)
    server = server.model_copy(update={"runtime": runtime})
    size = server.model_size_bytes
    facts = ModelFacts(
        name=model_tag(model),
        digest=digest,
        size_bytes=size if isinstance(size, int) else None,
        server_version=server.version,
        simulated=server.simulated,
        pull_duration_s=pulled if pulled is not None else 0.0,
    )
    return PreparedModel(facts, server)


async def _probe(client: OllamaClient, model: str, server_log: Callable[[], str] | None) -> ServerRuntime | Absent:
    """One default load, ``/api/ps``, the server log's facts, then an unload that waits."""
    load = await client.generate(model, "", stream=False)
    if not load.ok:
        raise OllamaError(f"{model} does not load: {load.error}", hint="see the server log (the GPU, its memory)")
    ps = await client.ps()
    log = server_log() if server_log is not None else None
    await client.unload(model)
    return runtime_facts(ps, model, log)
