"""Async Ollama client: the only module that speaks HTTP (httpx).

Streaming calls record raw client timestamps (``time.monotonic_ns``) of the request start, every chunk with
text, and the end, plus the server's final timings untouched, so metrics can be derived later. Every transport
or HTTP failure becomes an :class:`OllamaError` that says what to do.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpcore
import httpx

from harness.errors import OllamaError
from harness.facts import Absent, absent
from harness.protocol.flags import OPTION_NAMES
from harness.schemas import ModelDetails, OllamaFacts

SIMULATED_HEADER = "x-chimeraforge-simulated"
UNLOAD_WAIT_S = 60.0
"""How long an unload may take before it is a failure (a big model's VRAM is released in seconds)."""
OPTION_ORDER = OPTION_NAMES
"""Key order of ``options`` on the wire: the spec's ``Options`` fields; the Rust agent uses the same order (a test
checks it), so bodies match byte for byte."""


def request_body(
    model: str,
    *,
    prompt: str | None = None,
    messages: list[dict[str, str]] | None = None,
    stream: bool,
    options: dict[str, float | int] | None,
    keep_alive: str | int | None = None,
) -> bytes:
    """The exact bytes sent: compact JSON, fixed key order, ``options`` only when something is set."""
    body: dict[str, Any] = {"model": model}
    if prompt is not None:
        body["prompt"] = prompt
    if messages is not None:
        body["messages"] = messages
    body["stream"] = stream
    if options:
        unknown = set(options) - set(OPTION_ORDER)
        if unknown:
            raise OllamaError(f"unsupported option(s) {', '.join(sorted(unknown))}")
        body["options"] = {k: options[k] for k in OPTION_ORDER if k in options}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass
class CallObservation:
    """What one generate/chat call looked like from the client."""

    endpoint: str
    request_sha256: str
    start_ns: int
    start_unix_ns: int
    end_ns: int = 0
    first_chunk_ns: int | None = None
    chunk_offsets_ns: list[int] = field(default_factory=list)
    text: str = ""
    final: dict[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    error: str | None = None
    simulated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def add_piece(self, text: str, now_ns: int, parts: list[str]) -> None:
        """A streamed piece of text read at ``now_ns``: the first stamps the TTFT, each keeps its offset (the
        inter-token gaps); empty pieces (keep-alive chunks, the final summary) count as neither."""
        if not text:
            return
        if self.first_chunk_ns is None:
            self.first_chunk_ns = now_ns
        self.chunk_offsets_ns.append(now_ns - self.start_ns)
        parts.append(text)


_SENT_NS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("chimeraforge_sent_ns", default=None)
"""Per call: the clock at its first write on the connection (the request head, serialised, about to go out)."""


class _StampedStream(httpcore.AsyncNetworkStream):
    """A connection that stamps its writes and reads at the bottom of the HTTP stack (below h11 and httpx)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self.read_ns = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        self.read_ns = time.monotonic_ns()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        sent = _SENT_NS.get()
        if sent is not None and not sent:
            sent.append(time.monotonic_ns())
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _StampedStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _StampingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's asyncio backend (anyio), with every connection wrapped in a :class:`_StampedStream`."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return _StampedStream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        return _StampedStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _StampingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport on a connection pool whose connections stamp their reads.

    httpx builds its pool without a way to pass a network backend, so the pool is rebuilt here with httpx's
    default limits; everything else (request/response mapping, error translation) is httpx's.
    """

    def __init__(self) -> None:
        super().__init__()
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_StampingBackend(),
        )


class OllamaClient:
    """One server. Use as ``async with OllamaClient(url) as client``."""

    engine = "ollama"

    def __init__(
        self,
        base_url: str,
        *,
        read_timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        call_deadline_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``read_timeout_s``: longest wait for the next bytes (httpx's read timeout: a stream that keeps coming
        never trips it); ``connect_timeout_s``: the TCP connect; ``call_deadline_s``: one call in all, stream
        included (None: no deadline)."""
        self.base_url = base_url.rstrip("/")
        self.call_deadline_s = call_deadline_s
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport or _StampingTransport()
        )

    async def __aenter__(self) -> OllamaClient:
        # httpcore loads anyio's asyncio backend (about 30 modules, 40 ms here) on its first request; load it
        # now, so a process's first call does not charge an import to the agent's clocks.
        await anyio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- generation ---------------------------------------------------------------------------------------

    async def generate(
        self,
        model: str,
        prompt: str,
        *,
        options: dict[str, float | int] | None = None,
        stream: bool = True,
        keep_alive: str | int | None = None,
    ) -> CallObservation:
        """``/api/generate``; server and transport errors are recorded on the observation, never raised."""
        body = request_body(model, prompt=prompt, stream=stream, options=options, keep_alive=keep_alive)
        return await self._observe("/api/generate", body, stream, text_of=lambda c: str(c.get("response") or ""))

    async def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        options: dict[str, float | int] | None = None,
        stream: bool = True,
    ) -> CallObservation:
        body = request_body(model, messages=messages, stream=stream, options=options)
        return await self._observe(
            "/api/chat", body, stream, text_of=lambda c: str((c.get("message") or {}).get("content") or "")
        )

    async def _observe(
        self, endpoint: str, body: bytes, stream: bool, *, text_of: Callable[[dict[str, Any]], str]
    ) -> CallObservation:
        """One call, timed where the bytes move, not where the Python objects are built.

        ``start_ns`` is read when the serialised request head is written to the connection (the kit's transport
        stamps its writes), so building the request, the pool lookup and a TCP connect are not charged to the
        server's TTFT; a transport of another kind (tests' mock transports) keeps the stamp taken before the
        call. Each body chunk gets the time its bytes were read off the connection, before h11 and httpx parsed
        them, and its lines are split here: every chunk of one read shares that read's time, as in the Rust agents.
        """
        obs = CallObservation(
            endpoint=endpoint,
            request_sha256=hashlib.sha256(body).hexdigest(),
            start_ns=0,
            start_unix_ns=time.time_ns(),
        )
        parts: list[str] = []
        sent_ns: list[int] = []
        token = _SENT_NS.set(sent_ns)
        called_ns = time.monotonic_ns()
        obs.start_ns = called_ns
        try:
            async with (
                asyncio.timeout(self.call_deadline_s),
                self._http.stream(
                    "POST", endpoint, content=body, headers={"content-type": "application/json"}
                ) as response,
            ):
                if sent_ns:
                    obs.start_ns = sent_ns[0]
                obs.http_status = response.status_code
                obs.simulated = response.headers.get(SIMULATED_HEADER) == "1"
                if response.status_code != 200:
                    detail = (await response.aread()).decode("utf-8", "replace")
                    obs.error = f"HTTP {response.status_code}: {_error_text(detail)}"
                    return obs
                pending = b""
                network = response.extensions.get("network_stream")
                async for data in response.aiter_bytes():
                    now = time.monotonic_ns()
                    if isinstance(network, _StampedStream) and network.read_ns:
                        now = min(now, network.read_ns)  # when the bytes came off the socket, before h11 and httpx
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if self._take_line(line, now, obs, parts, text_of):
                            return obs
                if pending.strip() and self._take_line(pending, time.monotonic_ns(), obs, parts, text_of):
                    return obs
                if not obs.final:
                    obs.error = "stream ended without a final chunk (done=true)"
        except httpx.TimeoutException as exc:
            obs.error = f"timed out ({type(exc).__name__})"
        except TimeoutError:
            obs.error = f"call deadline of {self.call_deadline_s:g} s exceeded"
        except httpx.TransportError as exc:
            obs.error = f"connection failed: {exc!r}"
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            obs.error = f"malformed chunk: {exc}"
        finally:
            obs.end_ns = time.monotonic_ns()
            obs.text = "".join(parts)
            if obs.start_ns == called_ns and sent_ns:
                obs.start_ns = sent_ns[0]
            _SENT_NS.reset(token)
        if not stream and obs.ok:
            # One body: the "first chunk" is the whole answer, as a non-streaming client sees it.
            obs.chunk_offsets_ns = [obs.end_ns - obs.start_ns] if obs.text else []
            obs.first_chunk_ns = obs.end_ns if obs.text else None
        return obs

    @staticmethod
    def _take_line(
        line: bytes,
        now: int,
        obs: CallObservation,
        parts: list[str],
        text_of: Callable[[dict[str, Any]], str],
    ) -> bool:
        """Record one NDJSON line that arrived at ``now``; True when the call must stop (a server error)."""
        if not line.strip():
            return False
        chunk = json.loads(line)
        if "error" in chunk:
            obs.error = f"server error mid-stream: {chunk['error']}"
            return True
        obs.add_piece(text_of(chunk), now, parts)
        if chunk.get("done"):
            obs.final = chunk
        return False

    # -- model management ---------------------------------------------------------------------------------

    async def version(self) -> dict[str, Any]:
        return await self._get_json("/api/version")

    async def tags(self) -> dict[str, Any]:
        return await self._get_json("/api/tags")

    async def ps(self) -> dict[str, Any]:
        return await self._get_json("/api/ps")

    async def show(self, model: str) -> dict[str, Any]:
        return await self._post_json("/api/show", {"model": model})

    async def unload(self, model: str, *, wait_s: float = UNLOAD_WAIT_S, poll_s: float = 0.05) -> None:
        """Drop the model (``keep_alive: 0``) and wait until ``/api/ps`` no longer lists it.

        Ollama answers the request before its scheduler has unloaded the runner (``server/sched.go``), so the
        next call could still meet the warm runner, or start loading before the GPU memory is free; the wait is
        bounded by ``wait_s`` and fails with an :class:`OllamaError` that says what to check.
        """
        body = request_body(model, prompt="", stream=False, options=None, keep_alive=0)
        try:
            response = await self._http.post("/api/generate", content=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        self._check(response)
        deadline = time.monotonic() + wait_s
        while True:
            loaded = [entry for entry in (await self.ps()).get("models") or [] if _is_model(entry, model)]
            if not loaded:
                return
            if time.monotonic() >= deadline:
                raise OllamaError(
                    f"{model} is still loaded on {self.base_url} {wait_s:g} s after keep_alive: 0 asked to unload it",
                    hint="another client may be using the model, or the runner is stuck: see the server log",
                )
            await anyio.sleep(poll_s)

    async def pull(self, model: str) -> AsyncIterator[dict[str, Any]]:
        """Pull a model, yielding Ollama's progress objects; raises on an ``error`` object or HTTP failure."""
        try:
            async with self._http.stream("POST", "/api/pull", json={"model": model, "stream": True}) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode("utf-8", "replace")
                    raise OllamaError(
                        f"pull of {model} failed: HTTP {response.status_code}: {_error_text(detail)}",
                        status_code=response.status_code,
                        hint="check the model name, and that the server can reach its registry",
                    )
                async for line in response.aiter_lines():
                    if line.strip():
                        progress = json.loads(line)
                        if "error" in progress:
                            raise OllamaError(f"pull of {model} failed: {progress['error']}")
                        yield progress
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    async def _get_json(self, path: str) -> dict[str, Any]:
        try:
            response = await self._http.get(path)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._check(response)

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._check(response)

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise OllamaError(
                f"{response.request.method} {response.request.url.path} on {self.base_url} answered "
                f"HTTP {response.status_code}: {_error_text(response.text)}",
                status_code=response.status_code,
            )
        try:
            body = response.json()
        except ValueError:
            raise OllamaError(f"{self.base_url}{response.request.url.path} did not answer JSON") from None
        return body if isinstance(body, dict) else {"value": body}

    def _transport_error(self, exc: httpx.HTTPError) -> OllamaError:
        return OllamaError(
            f"cannot reach Ollama at {self.base_url}: {exc!r}",
            hint="start the server (or the stack), or check the URL and port",
        )


# -- server facts (provenance) ----------------------------------------------------------------------------


def _is_model(entry: object, model: str) -> bool:
    """Whether a ``/api/tags`` or ``/api/ps`` entry is ``model`` (``gemma3`` is listed as ``gemma3:latest``)."""
    wanted = {model} if ":" in model.rsplit("/", 1)[-1] else {model, f"{model}:latest"}
    return isinstance(entry, dict) and bool({entry.get("name"), entry.get("model")} & wanted)


def _model_entry(tags: dict[str, Any], model: str) -> dict[str, Any] | None:
    for entry in tags.get("models") or []:
        if _is_model(entry, model):
            return dict(entry)
    return None


async def server_facts(
    base_url: str, model: str, *, timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
) -> OllamaFacts:
    """``/api/version``, the model's digest and size from ``/api/tags`` and a few ``/api/show`` details.

    Raises :class:`OllamaError` when the server does not answer ``/api/version`` (the caller records the
    section as absent with that message); a model the server does not have is recorded field by field as absent.
    """
    async with OllamaClient(
        base_url, read_timeout_s=timeout_s, connect_timeout_s=timeout_s, transport=transport
    ) as client:
        version = await client.version()
        simulation = version.get("simulated")
        simulated = simulation is not None
        try:
            entry: dict[str, Any] | Absent | None = _model_entry(await client.tags(), model)
        except OllamaError as exc:
            entry = absent(f"/api/tags failed: {exc}")
        if entry is None:
            entry = absent(f"{model} is not in /api/tags (not pulled on this server)")
        try:
            show: dict[str, Any] | Absent = await client.show(model)
        except OllamaError as exc:
            show = absent(f"/api/show failed: {exc}")
    info = show.get("model_info") or {} if isinstance(show, dict) else {}
    arch = str(info.get("general.architecture") or "")
    sim_show = show.get("simulated") if isinstance(show, dict) else None

    def from_show(value: Any, what: str) -> Any:
        if isinstance(show, Absent):
            return show
        return value if value is not None else absent(f"/api/show has no {what}")

    def from_entry(key: str) -> Any:
        if isinstance(entry, Absent):
            return entry
        value = entry.get(key)
        return value if value not in (None, "") else absent(f"/api/tags has no {key} for {model}")

    details = from_entry("details")
    parameter_count = info.get("general.parameter_count")
    context_length = info.get(f"{arch}.context_length") if arch else None
    capabilities = show.get("capabilities") if isinstance(show, dict) else None
    return OllamaFacts(
        base_url=base_url.rstrip("/"),
        version=str(version.get("version") or ""),
        simulated=simulated,
        simulation_seed=simulation.get("seed") if isinstance(simulation, dict) else None,
        simulation_time_scale=simulation.get("time_scale") if isinstance(simulation, dict) else None,
        model=model,
        model_digest=from_entry("digest"),
        model_digest_synthetic=simulated or bool(isinstance(sim_show, dict) and sim_show.get("synthetic_digest")),
        model_size_bytes=from_entry("size"),
        model_details=details if isinstance(details, Absent) else ModelDetails.model_validate(details),
        model_parameter_count=from_show(None if parameter_count is None else int(parameter_count), "parameter count"),
        model_context_length=from_show(None if context_length is None else int(context_length), "context length"),
        model_capabilities=from_show(
            [str(c) for c in capabilities] if isinstance(capabilities, list) else None, "capabilities"
        ),
    )


def _error_text(detail: str) -> str:
    try:
        body = json.loads(detail)
    except ValueError:
        return detail.strip()[:300]
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)
