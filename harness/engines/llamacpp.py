"""Async client of llama.cpp's server (``llama-server``): its OpenAI-compatible ``/v1/completions`` over SSE.

It reuses the Ollama client's stamped transport and call observation, so TTFT and chunk arrivals are measured
at the same place for both engines; only the request body, the endpoint and the stream's framing differ. The
engine's own ``timings`` (prompt and decode token counts and milliseconds) are mapped onto the record's
server-side fields (``prompt_eval_count``/``_duration_ns``, ``eval_count``/``_duration_ns``) and kept raw.

Spec options map to the request like this (the Rust agents build the same bytes, ``chimeraforge_core::body``):
``num_predict`` → ``max_tokens``; ``temperature``, ``top_p``, ``top_k``, ``repeat_penalty``, ``seed`` keep their
names; ``num_ctx`` and ``num_gpu`` are not per-request settings on llama.cpp (``-c`` and ``-ngl`` at server
start) and are left out of the body: the executor sizes the server from them (docs/engines.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx

from harness.engines.ollama import CallObservation, OllamaClient
from harness.errors import OllamaError

ENGINE = "llamacpp"
COMPLETIONS = "/v1/completions"
SAMPLING_ORDER = ("temperature", "top_p", "top_k", "repeat_penalty", "seed")
"""Sampling keys on the wire, in this order, after ``model``, ``prompt``, ``max_tokens`` and ``stream``."""
SERVER_ONLY_OPTIONS = ("num_ctx", "num_gpu")
SSE_DATA = b"data:"
SSE_DONE = b"[DONE]"


def completion_body(model: str, prompt: str, *, stream: bool, options: dict[str, float | int] | None) -> bytes:
    """The exact bytes sent to ``/v1/completions``: compact JSON, fixed key order."""
    options = options or {}
    known = {"num_predict", *SAMPLING_ORDER, *SERVER_ONLY_OPTIONS}
    unknown = set(options) - known
    if unknown:
        raise OllamaError(f"unsupported option(s) {', '.join(sorted(unknown))}")
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    budget = options.get("num_predict")
    if budget is not None and budget >= 0:
        body["max_tokens"] = int(budget)
    body["stream"] = stream
    for key in SAMPLING_ORDER:
        if key in options:
            body[key] = options[key]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ms_to_ns(ms: float) -> int:
    """Engine milliseconds → ns, rounded half up (the Rust agents use the same formula)."""
    return math.floor(ms * 1_000_000.0 + 0.5)


def final_from_timings(chunk: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    """An engine's last chunk, in the record's terms (Ollama's field names), with the raw timings kept."""
    timings = chunk.get("timings") or {}
    prompt_ms = float(timings.get("prompt_ms") or 0.0)
    predicted_ms = float(timings.get("predicted_ms") or 0.0)
    return {
        "done": True,
        "done_reason": finish_reason,
        "prompt_eval_count": int(timings.get("prompt_n") or 0),
        "prompt_eval_duration": ms_to_ns(prompt_ms),
        "eval_count": int(timings.get("predicted_n") or 0),
        "eval_duration": ms_to_ns(predicted_ms),
        "total_duration": ms_to_ns(prompt_ms + predicted_ms),
        "timings": timings,
        "usage": chunk.get("usage"),
    }


class LlamaCppClient(OllamaClient):
    """One llama.cpp server. Use as ``async with LlamaCppClient(url) as client``."""

    engine = ENGINE

    def __init__(
        self,
        base_url: str,
        *,
        read_timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        call_deadline_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """The same three timeouts as Ollama's client: connect, per-read idle, whole call (stream included)."""
        super().__init__(
            base_url,
            read_timeout_s=read_timeout_s,
            connect_timeout_s=connect_timeout_s,
            call_deadline_s=call_deadline_s,
            transport=transport,
        )
        self._finish_reason: str | None = None

    async def __aenter__(self) -> LlamaCppClient:
        await super().__aenter__()
        return self

    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        options: dict[str, float | int] | None = None,
        stream: bool = True,
        keep_alive: str | int | None = None,
    ) -> CallObservation:
        """``/v1/completions``; errors are recorded on the observation, never raised (``keep_alive`` unused)."""
        body = completion_body(model, prompt, stream=stream, options=options)
        self._finish_reason = None
        obs = await self._observe(COMPLETIONS, body, stream, text_of=_choice_text)
        if not stream and obs.ok and not obs.final:
            obs.error = "response had no timings"
        return obs

    def _take_line(  # type: ignore[override]
        self,
        line: bytes,
        now: int,
        obs: CallObservation,
        parts: list[str],
        text_of: Callable[[dict[str, Any]], str],
    ) -> bool:
        """One SSE line (or the whole body when not streaming); True when the call must stop."""
        line = line.strip()
        if not line or line.startswith(b":"):
            return False
        if line.startswith(SSE_DATA):
            line = line[len(SSE_DATA) :].strip()
        elif not line.startswith(b"{"):
            return False  # another SSE field (event:, id:, retry:)
        if line == SSE_DONE:
            return False
        chunk = json.loads(line)
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            obs.error = f"server error mid-stream: {message}"
            return True
        obs.add_piece(text_of(chunk), now, parts)
        reason = _finish_reason(chunk)
        if reason is not None:
            self._finish_reason = reason
        if "timings" in chunk and reason is not None:
            obs.final = final_from_timings(chunk, self._finish_reason)
        return False

    async def unload(self, model: str, *, wait_s: float = 30.0, poll_s: float = 0.2) -> None:
        """llama.cpp keeps its one model loaded for the server's life: a cold start is a fresh server."""
        return None

    async def health(self) -> dict[str, Any]:
        """``/health``: ``{"status": "ok"}`` once the model is loaded (503 while loading)."""
        return await self._get_json("/health")

    async def models(self) -> dict[str, Any]:
        """``/v1/models``: the alias served and the GGUF's metadata (``meta``: n_params, size, n_ctx_train...)."""
        return await self._get_json("/v1/models")

    async def props(self) -> dict[str, Any]:
        """``/props``: the server's build info and its slots' settings (n_ctx...)."""
        return await self._get_json("/props")

    def _transport_error(self, exc: httpx.HTTPError) -> OllamaError:
        return OllamaError(
            f"cannot reach llama.cpp at {self.base_url}: {exc!r}",
            hint="start the server (or the stack), or check the URL and port",
        )


def _choice(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices") or []
    return choices[0] if choices and isinstance(choices[0], dict) else {}


def _choice_text(chunk: dict[str, Any]) -> str:
    return str(_choice(chunk).get("text") or "")


def _finish_reason(chunk: dict[str, Any]) -> str | None:
    reason = _choice(chunk).get("finish_reason")
    return str(reason) if reason else None
