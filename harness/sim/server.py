"""The simulated Ollama HTTP server (aiohttp): endpoints, the request queue and the generation engine.

One request's life, as in Ollama: arrive (recorded) → wait for one of ``num_parallel`` slots (queued time
counts into ``total_duration``) → get a runner (cold load, warm, or reload on a num_ctx/num_gpu change) →
prompt eval → decode, one token per chunk, at the rate of :mod:`harness.sim.timing` shared with whatever else
decodes on the (possibly shared) device, recomputed every ``rate_update_ms`` → final object with real elapsed
timings. Every response carries ``X-Chimeraforge-Simulated: 1``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from harness.sim.catalog import CATALOG, DIGEST_SOURCE, ModelSpec, ModelStore, normalize_name
from harness.sim.config import SimConfig
from harness.sim.device import LocalDevice, SharedDevice
from harness.sim.faults import Fault, FaultKind, FaultPlan, parse_queued
from harness.sim.formats import (
    ChatFormat,
    Format,
    GenerateFormat,
    OpenAIChatFormat,
    Timings,
    dumps,
    rfc3339_ns,
)
from harness.sim.ingress import ArrivalClock
from harness.sim.recorder import Recorder, RequestRecord
from harness.sim.runners import Runner, RunnerPool, parse_keep_alive
from harness.sim.serverlog import ServerLog, config_env
from harness.sim.text import TokenStream, content_key, count_prompt_tokens, plan_length
from harness.sim.timing import gpu_layers

OLLAMA_VERSION = "0.12.10"
REGISTRY_HOST = "registry.ollama.ai"
MIDSTREAM_ERROR = "an error was encountered while running the model: simulated runner failure"
SIM_HEADER = "X-Chimeraforge-Simulated"
REQUEST_ID_HEADER = "X-Chimeraforge-Request-Id"
_RECORD_KEY = web.RequestKey("sim_record", RequestRecord)
_ARRIVAL_KEY = web.RequestKey("sim_arrival_ns", int)


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Generation:
    """A parsed generation request, independent of its endpoint."""

    spec: ModelSpec
    prompt_text: str
    prompt_tokens: int
    key_text: str
    options: dict[str, Any]
    stream: bool
    keep_alive_ns: int | None


class _StampingRunner(web.AppRunner):
    """An AppRunner whose sites serve protocols that stamp each request's arrival (see :mod:`.ingress`)."""

    def __init__(self, app: web.Application, clock: ArrivalClock, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.clock = clock

    @property
    def server(self) -> Any:
        inner = super().server
        return None if inner is None else self.clock.wrap(inner)


class SimServer:
    """One simulated Ollama instance; ``async with SimServer(config) as sim: sim.base_url``."""

    def __init__(self, config: SimConfig, *, log: ServerLog | None = None) -> None:
        self.config = config
        self.log = log or ServerLog()
        self._unloads: set[asyncio.Task[None]] = set()
        self._perf = config.perf_model()
        self._store = ModelStore(config.models_dir)
        self._recorder = Recorder(config.record_path)
        self._faults = FaultPlan(config.seed, config.faults)
        device_path = config.device_path()
        self._device: LocalDevice = (
            SharedDevice(device_path, cache_s=config.rate_update_ms / 1000.0)
            if device_path is not None
            else LocalDevice()
        )
        self._runners: RunnerPool | None = None
        self._slots: asyncio.Semaphore | None = None
        self._runner: web.AppRunner | None = None
        self._arrivals = ArrivalClock()
        self._port: int | None = None
        self._simulated = {"time_scale": config.time_scale, "seed": config.seed}

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind (port 0 picks a free port) and start serving."""
        self._store.preload(self.config.preload)
        self._runners = RunnerPool(
            cold_load_s=self._perf.cold_load_s,
            warm_load_s=self._perf.warm_load_s(),
            time_scale=self.config.time_scale,
            default_keep_alive_ns=self.config.keep_alive_ns,
        )
        self._slots = asyncio.Semaphore(self.config.num_parallel)
        await self._device.start()
        self._runner = _StampingRunner(self._build_app(), self._arrivals, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        self._port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.log.server_config(config_env(self.config, self._port))

    async def stop(self) -> None:
        """Stop serving and remove this instance's shared-device file."""
        for task in list(self._unloads):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._device.stop()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}"

    @property
    def requests(self) -> list[RequestRecord]:
        """Every API request received so far (``/sim/*`` control calls excluded)."""
        return list(self._recorder.requests)

    @property
    def emissions(self) -> dict[int, list[int]]:
        """Request id → monotonic ns right after each chunk was handed to the transport."""
        return {k: list(v) for k, v in self._recorder.emissions.items()}

    def queue_faults(self, faults: list[Fault]) -> int:
        return self._faults.queue(faults)

    # -- app -------------------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._ground_truth], client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(self._mark)
        r = app.router
        r.add_get("/", self._root)
        r.add_get("/api/version", self._version)
        r.add_get("/api/tags", self._tags)
        r.add_get("/api/ps", self._ps)
        r.add_post("/api/show", self._show)
        r.add_post("/api/pull", self._pull)
        r.add_delete("/api/delete", self._delete)
        r.add_post("/api/generate", self._generate)
        r.add_post("/api/chat", self._chat)
        r.add_post("/v1/chat/completions", self._openai_chat)
        r.add_get("/v1/models", self._openai_models)
        r.add_get("/sim/requests", self._sim_requests)
        r.add_get("/sim/emissions", self._sim_emissions)
        r.add_post("/sim/faults", self._sim_faults)
        r.add_post("/sim/reset", self._sim_reset)
        return app

    @web.middleware
    async def _ground_truth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        handled_ns = time.monotonic_ns()
        raw = await request.read()
        # the first byte's read time when the connection was stamped (always, behind our runner), else now
        arrival = self._arrivals.take(request.transport) or handled_ns
        request[_ARRIVAL_KEY] = arrival
        if request.path.startswith("/sim/"):
            return await handler(request)
        record = self._recorder.request(request.method, request.path, raw, arrival)
        request[_RECORD_KEY] = record
        try:
            return await handler(request)
        finally:
            self._recorder.finished(record.request_id)

    async def _mark(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers[SIM_HEADER] = "1"
        record = request.get(_RECORD_KEY)
        if record is not None:
            response.headers[REQUEST_ID_HEADER] = str(record.request_id)

    async def _send(
        self, request: web.Request, body: bytes, *, status: int = 200, content_type: str
    ) -> web.StreamResponse:
        """Write a whole body ourselves so its true emission time is recorded."""
        resp = web.StreamResponse(status=status)
        resp.content_type = content_type
        if content_type.startswith("application/json") or content_type.startswith("text/plain"):
            resp.charset = "utf-8"
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body)
        self._emitted(request)
        return resp

    async def _send_json(self, request: web.Request, obj: object, status: int = 200) -> web.StreamResponse:
        return await self._send(request, dumps(obj), status=status, content_type="application/json")

    def _emitted(self, request: web.Request) -> None:
        record = request.get(_RECORD_KEY)
        if record is not None:
            self._recorder.emitted(record.request_id, time.monotonic_ns())

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            raise _ApiError(400, "missing request body")  # server/routes.go, on an empty body
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _ApiError(400, f"invalid request body: {exc}") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "invalid request body: expected a JSON object")
        return body

    def _require_model(self, name: object) -> ModelSpec:
        if not isinstance(name, str) or not name.strip():
            raise _ApiError(400, "model is required")
        full = normalize_name(name)
        spec = CATALOG.get(full)
        if spec is None or not self._store.has(full):
            raise _ApiError(404, f"model '{name}' not found")
        return spec

    # -- simple endpoints ------------------------------------------------------------------------------------

    async def _root(self, request: web.Request) -> web.StreamResponse:
        return await self._send(request, b"Ollama is running", content_type="text/plain")

    async def _version(self, request: web.Request) -> web.StreamResponse:
        return await self._send_json(request, {"version": OLLAMA_VERSION, "simulated": self._simulated})

    def _model_entry(self, spec: ModelSpec, modified_unix_s: float) -> dict[str, Any]:
        return {
            "name": spec.name,
            "model": spec.name,
            "modified_at": rfc3339_ns(int(modified_unix_s * 1e9)),
            "size": spec.size_bytes,
            "digest": spec.digest,
            "details": spec.details(),
        }

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        pulled = sorted(self._store.pulled().items(), key=lambda kv: kv[1], reverse=True)
        models = [self._model_entry(CATALOG[name], ts) for name, ts in pulled]
        return await self._send_json(request, {"models": models, "simulated": self._simulated})

    async def _ps(self, request: web.Request) -> web.StreamResponse:
        assert self._runners is not None
        now_mono, now_unix = time.monotonic_ns(), time.time_ns()
        models = []
        for runner in self._runners.loaded():
            spec = runner.model
            if runner.keep_forever:
                expires_unix = now_unix + 100 * 365 * 86400 * 10**9
            elif runner.expires_at_ns is None:
                expires_unix = now_unix + max(self.config.keep_alive_ns, 0)
            else:
                expires_unix = now_unix + (runner.expires_at_ns - now_mono)
            frac = gpu_layers(spec, runner.num_gpu) / spec.layers
            models.append(
                {
                    "name": spec.name,
                    "model": spec.name,
                    "size": spec.size_bytes,
                    "digest": spec.digest,
                    "details": spec.details(),
                    "expires_at": rfc3339_ns(expires_unix),
                    "size_vram": int(spec.size_bytes * frac),
                    "context_length": runner.num_ctx,
                }
            )
        return await self._send_json(request, {"models": models, "simulated": self._simulated})

    async def _show(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            name = body.get("model") or body.get("name")
            if not isinstance(name, str) or not name:
                raise _ApiError(400, "model is required")
            full = normalize_name(name)
            if full not in CATALOG or not self._store.has(full):
                raise _ApiError(404, f"model '{name}' not found")
        except _ApiError as exc:
            return await self._send_json(request, {"error": exc.message}, exc.status)
        spec = CATALOG[full]
        modified = self._store.pulled()[full]
        arch = spec.family
        info = {
            "general.architecture": arch,
            "general.parameter_count": spec.parameter_count,
            "general.quantization_version": 2,
            f"{arch}.block_count": spec.layers,
            f"{arch}.context_length": spec.context_length,
            "chimeraforge.sim.synthetic_digest": True,
            "chimeraforge.sim.digest_source": DIGEST_SOURCE,
        }
        return await self._send_json(
            request,
            {
                "license": "",
                "modelfile": f"# Simulated by chimeraforge-sim; no weights exist.\nFROM {spec.name}\n",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": spec.details(),
                "model_info": info,
                "capabilities": list(spec.capabilities),
                "modified_at": rfc3339_ns(int(modified * 1e9)),
                "simulated": {**self._simulated, "synthetic_digest": True, "digest_source": DIGEST_SOURCE},
            },
        )

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
        except _ApiError as exc:
            return await self._send_json(request, {"error": exc.message}, exc.status)
        name = body.get("model") or body.get("name") or ""
        if not isinstance(name, str) or not self._store.remove(normalize_name(name)):
            return await self._send_json(request, {"error": f"model '{name}' not found"}, 404)
        return await self._send(request, b"", content_type="application/json")

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
        except _ApiError as exc:
            return await self._send_json(request, {"error": exc.message}, exc.status)
        name = body.get("model") or body.get("name")
        stream = body.get("stream", True) is not False
        if not isinstance(name, str) or not name:
            return await self._send_json(request, {"error": "model is required"}, 400)
        full = normalize_name(name)
        spec = CATALOG.get(full)
        scale = self.config.time_scale
        out = _Output(self, request, "application/x-ndjson") if stream else None

        async def status(obj: dict[str, Any]) -> None:
            if out is not None:
                await out.write(dumps(obj) + b"\n")

        await status({"status": "pulling manifest"})
        await asyncio.sleep(0.05 * scale)
        if not self.config.registry_reachable:
            # server/images.go PullModel asks the registry for the manifest first, even for a model in the store.
            message = (
                f'pull model manifest: Get "https://{REGISTRY_HOST}/v2/library/{full.replace(":", "/manifests/")}": '
                f"dial tcp: lookup {REGISTRY_HOST}: no such host"
            )
            if out is not None:
                await status({"error": message})
                return out.response
            return await self._send_json(request, {"error": message}, 500)
        if spec is None:
            message = "pull model manifest: file does not exist"
            if out is not None:
                await status({"error": message})
                return out.response
            return await self._send_json(request, {"error": message}, 500)
        digest = "sha256:" + spec.digest
        total = spec.size_bytes
        already = self._store.has(full)
        steps = 1 if already else 8
        for step in range(1, steps + 1):
            if not already:
                await asyncio.sleep(total / self.config.pull_bytes_per_s / steps * scale)
            completed = total if already else total * step // steps
            await status(
                {
                    "status": f"pulling {spec.digest[:12]}",
                    "digest": digest,
                    "total": total,
                    "completed": completed,
                }
            )
        await status({"status": "verifying sha256 digest"})
        await asyncio.sleep(0.02 * scale)
        await status({"status": "writing manifest"})
        self._store.add(full)
        final = {"status": "success", "simulated": self._simulated}
        if out is not None:
            await status(final)
            return out.response
        return await self._send_json(request, final)

    async def _openai_models(self, request: web.Request) -> web.StreamResponse:
        data = [
            {"id": name, "object": "model", "created": int(ts), "owned_by": "library"}
            for name, ts in sorted(self._store.pulled().items())
        ]
        return await self._send_json(request, {"object": "list", "data": data})

    # -- control endpoints -----------------------------------------------------------------------------------

    async def _sim_requests(self, request: web.Request) -> web.StreamResponse:
        return await self._send_json(request, {"requests": [r.to_json() for r in self._recorder.requests]})

    async def _sim_emissions(self, request: web.Request) -> web.StreamResponse:
        wanted = request.query.get("request_id")
        if wanted is not None:
            try:
                rid = int(wanted)
            except ValueError:
                return await self._send_json(request, {"error": "request_id must be an integer"}, 400)
            if rid not in self._recorder.emissions:
                return await self._send_json(request, {"error": f"no request {rid}"}, 404)
            return await self._send_json(request, {"request_id": rid, "emitted_ns": self._recorder.emissions[rid]})
        data = {str(k): v for k, v in self._recorder.emissions.items()}
        return await self._send_json(request, {"emissions": data})

    async def _sim_faults(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            faults = parse_queued(json.loads(raw or b"[]"))
        except ValueError as exc:
            return await self._send_json(request, {"error": str(exc)}, 400)
        return await self._send_json(request, {"queued": self._faults.queue(faults)})

    async def _sim_reset(self, request: web.Request) -> web.StreamResponse:
        assert self._runners is not None
        self._faults.reset()
        self._recorder.reset()
        await self._runners.clear()
        return await self._send_json(request, {"reset": True})

    # -- generation ------------------------------------------------------------------------------------------

    def _options(self, body: dict[str, Any]) -> dict[str, Any]:
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise _ApiError(400, "invalid options: expected an object")
        return options

    def _keep_alive(self, body: dict[str, Any]) -> int | None:
        if body.get("keep_alive") is None:
            return None
        try:
            return parse_keep_alive(body["keep_alive"])
        except ValueError as exc:
            raise _ApiError(400, str(exc)) from None

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        fmt: Format = GenerateFormat("", self._simulated, _request_id(request))
        try:
            body = await self._body(request)
            fmt.model = str(body.get("model", ""))
            spec = self._require_model(body.get("model"))
            prompt = body.get("prompt") or ""
            system = body.get("system") or ""
            if not isinstance(prompt, str) or not isinstance(system, str):
                raise _ApiError(400, "prompt and system must be strings")
            gen = _Generation(
                spec=spec,
                prompt_text=f"{system}\n{prompt}" if system else prompt,
                prompt_tokens=count_prompt_tokens(f"{system}\n{prompt}" if system else prompt),
                key_text=dumps([system, prompt]).decode(),
                options=self._options(body),
                stream=body.get("stream", True) is not False,
                keep_alive_ns=self._keep_alive(body),
            )
        except _ApiError as exc:
            return await self._send_json(request, fmt.error_body(exc.status, exc.message), exc.status)
        if not prompt:
            return await self._load_or_unload(request, gen, fmt)
        return await self._run(request, gen, fmt)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        fmt: Format = ChatFormat("", self._simulated, _request_id(request))
        try:
            body = await self._body(request)
            fmt.model = str(body.get("model", ""))
            spec = self._require_model(body.get("model"))
            messages = _messages(body.get("messages"))
            gen = _Generation(
                spec=spec,
                prompt_text="",
                prompt_tokens=_chat_tokens(messages),
                key_text=dumps(messages).decode(),
                options=self._options(body),
                stream=body.get("stream", True) is not False,
                keep_alive_ns=self._keep_alive(body),
            )
        except _ApiError as exc:
            return await self._send_json(request, fmt.error_body(exc.status, exc.message), exc.status)
        if not messages:
            return await self._load_or_unload(request, gen, fmt)
        return await self._run(request, gen, fmt)

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        fmt: Format = OpenAIChatFormat("", self._simulated, _request_id(request), include_usage=False)
        try:
            body = await self._body(request)
            stream_options = body.get("stream_options") or {}
            fmt = OpenAIChatFormat(
                str(body.get("model", "")),
                self._simulated,
                _request_id(request),
                include_usage=isinstance(stream_options, dict) and bool(stream_options.get("include_usage")),
            )
            spec = self._require_model(body.get("model"))
            messages = _messages(body.get("messages"))
            if not messages:
                raise _ApiError(400, "[] is too short - 'messages'")
            options: dict[str, Any] = {k: body[k] for k in ("temperature", "top_p", "seed") if body.get(k) is not None}
            max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
            if max_tokens is not None:
                options["num_predict"] = max_tokens
            gen = _Generation(
                spec=spec,
                prompt_text="",
                prompt_tokens=_chat_tokens(messages),
                key_text=dumps(messages).decode(),
                options=options,
                stream=body.get("stream", False) is True,
                keep_alive_ns=None,
            )
        except _ApiError as exc:
            return await self._send_json(request, fmt.error_body(exc.status, exc.message), exc.status)
        return await self._run(request, gen, fmt)

    def _runner_settings(self, gen: _Generation) -> tuple[int, int | None]:
        try:
            num_ctx = int(gen.options.get("num_ctx") or self.config.context_length)
            raw_gpu = gen.options.get("num_gpu")
            num_gpu = None if raw_gpu is None else int(raw_gpu)
        except (TypeError, ValueError):
            raise _ApiError(400, "invalid options: num_ctx and num_gpu must be integers") from None
        if num_ctx < 1:
            raise _ApiError(400, "invalid options: num_ctx must be positive")
        return num_ctx, num_gpu

    async def _load_or_unload(self, request: web.Request, gen: _Generation, fmt: Format) -> web.StreamResponse:
        """Ollama's empty-prompt requests: load the model, or unload it with ``keep_alive: 0``."""
        assert self._runners is not None and self._slots is not None
        if gen.keep_alive_ns == 0:
            # server/sched.go: the answer goes out first, the runner is expired and unloaded later.
            runner = self._runners.current(gen.spec.name)
            if runner is not None:
                task = asyncio.create_task(self._unload_later(gen.spec.name, runner))
                self._unloads.add(task)
                task.add_done_callback(self._unloads.discard)
            return await self._send_json(request, fmt.control("unload"))
        try:
            num_ctx, num_gpu = self._runner_settings(gen)
        except _ApiError as exc:
            return await self._send_json(request, fmt.error_body(exc.status, exc.message), exc.status)
        runner, cold = await self._runners.acquire(gen.spec, num_ctx, num_gpu)
        if cold:
            self._log_load(gen.spec, num_gpu)
        await self._runners.release(runner, gen.keep_alive_ns)
        return await self._send_json(request, fmt.control("load"))

    async def _unload_later(self, name: str, runner: Runner) -> None:
        await asyncio.sleep(self.config.unload_delay_ms / 1000.0 * self.config.time_scale)
        await self._runners.unload(name, only=runner)  # type: ignore[union-attr]

    def _log_load(self, spec: ModelSpec, num_gpu: int | None) -> None:
        layers = gpu_layers(spec, num_gpu)
        self.log.runner_loaded(
            spec,
            flash_attention=self._flash_attention(spec),
            kv_cache_type="f16",
            layers_on_gpu=layers + 1 if layers == spec.layers else layers,
            gpu_id=self.config.gpu_id,
        )

    def _flash_attention(self, spec: ModelSpec) -> bool:
        """``OLLAMA_FLASH_ATTENTION`` when set, else the model's own default (envconfig ``BoolWithDefault``)."""
        return spec.flash_attention if self.config.flash_attention is None else self.config.flash_attention

    async def _run(self, request: web.Request, gen: _Generation, fmt: Format) -> web.StreamResponse:
        assert self._runners is not None and self._slots is not None
        arrival = request[_ARRIVAL_KEY]
        try:
            num_ctx, num_gpu = self._runner_settings(gen)
            num_predict = gen.options.get("num_predict")
            if num_predict is not None:
                num_predict = int(num_predict)
        except (_ApiError, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, _ApiError) else "invalid options: num_predict"
            return await self._send_json(request, fmt.error_body(400, message), 400)
        faults = self._faults.draw()
        if "error500" in faults:
            message = "llama runner process has terminated: exit status 2 (simulated fault)"
            return await self._send_json(request, fmt.error_body(500, message), 500)

        scale = self.config.time_scale
        spec = gen.spec
        prompt_count = min(gen.prompt_tokens, num_ctx)
        key = content_key(self.config.seed, spec.name, gen.key_text, gen.options)
        plan = plan_length(
            key, prompt_count, num_predict=num_predict, num_ctx=num_ctx, forced_tokens=self.config.tokens
        )
        out = _Output(self, request, fmt.stream_content_type if gen.stream else "application/json")
        tokens = TokenStream(key)
        pieces: list[str] = []
        context: list[int] = []

        # server/routes.go starts the load clock when the handler is entered and stops it when the scheduler
        # hands over a ready runner: waiting for another option set's generation and the reload count as load.
        runner, cold = await self._runners.acquire(spec, num_ctx, num_gpu)
        load_ns = time.monotonic_ns() - arrival
        if cold:
            self._log_load(spec, num_gpu)
        try:
            async with self._slots:  # llm/server.go: the runner's semaphore, taken inside the completion
                if "slow-start" in faults:
                    await asyncio.sleep(self._fault_delay(faults["slow-start"]) * scale)
                prompt_start = time.monotonic_ns()
                prompt_tps = self._perf.prompt_tps_for(spec, num_gpu, flash_attention=self._flash_attention(spec))
                await asyncio.sleep(prompt_count / prompt_tps * scale)
                eval_start = time.monotonic_ns()
                prompt_ns = eval_start - prompt_start

                async def emit(index: int) -> None:
                    word_id, text = tokens.next()
                    context.append(word_id)
                    if gen.stream:
                        await out.write(fmt.chunk(text))
                    else:
                        pieces.append(text)

                alone_tps = self._perf.decode_tps_for(spec, num_ctx, num_gpu)
                try:
                    dropped = await self._decode(plan.eval_count, alone_tps, emit, faults)
                except ConnectionResetError:  # the client went away mid-stream: stop quietly, as Ollama does
                    return out.response
                if dropped and "error-midstream" in faults:
                    # server/routes.go: a failure after output started is one NDJSON error line; the body ends.
                    await out.write(dumps({"error": MIDSTREAM_ERROR}) + b"\n")
                    return out.response
                if dropped:
                    return out.drop()
                eos = plan.done_reason == "stop"
                if eos:  # the end-of-sequence token is sampled (one more decode step) and counted, never sent
                    await asyncio.sleep(scale / alone_tps)
                eval_ns = time.monotonic_ns() - eval_start
                timings = Timings(
                    total_duration=time.monotonic_ns() - arrival,
                    load_duration=load_ns,
                    prompt_eval_count=prompt_count,
                    prompt_eval_duration=prompt_ns,
                    eval_count=plan.eval_count + (1 if eos else 0),
                    eval_duration=eval_ns,
                    done_reason=plan.done_reason,
                )
                if gen.stream:
                    for piece in fmt.final_chunks(timings, context):
                        await out.write(piece)
                else:
                    await out.write(dumps(fmt.whole("".join(pieces), timings, context)))
                return out.response
        finally:
            await self._runners.release(runner, gen.keep_alive_ns)

    def _fault_delay(self, fault: Fault) -> float:
        return fault.delay_s(self.config.stall_ms, self.config.slow_start_ms)

    async def _decode(
        self,
        count: int,
        alone_tps: float,
        emit: Callable[[int], Awaitable[None]],
        faults: dict[FaultKind, Fault],
    ) -> bool:
        """Emit ``count`` tokens on the device's schedule; True when a drop or error-midstream fault cut the stream.

        The per-token delay follows a running schedule (not a sleep per token), so scheduling overhead does
        not accumulate; the share of the device is re-read every ``rate_update_ms``.
        """
        scale = self.config.time_scale
        update_s = self.config.rate_update_ms / 1000.0
        fault_at = count // 2
        device = self._device
        device.enter()
        try:
            next_at = time.monotonic()
            checked_at = -1e18
            per_token_s = 0.0
            for index in range(count):
                if index == fault_at:
                    if "drop" in faults or "error-midstream" in faults:
                        return True
                    if "stall" in faults:
                        await asyncio.sleep(self._fault_delay(faults["stall"]) * scale)
                        next_at = time.monotonic()
                now = time.monotonic()
                if now - checked_at >= update_s:
                    rate = self._perf.shared_tps(alone_tps, device.active_sequences())
                    per_token_s = scale / rate
                    checked_at = now
                next_at = max(next_at + per_token_s, now - update_s)
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif index % 16 == 15:
                    await asyncio.sleep(0)
                await emit(index)
            return ("drop" in faults or "error-midstream" in faults) and count == 0
        finally:
            device.leave()


class _Output:
    """A lazily prepared streaming response that records the true emission time of every chunk."""

    def __init__(self, server: SimServer, request: web.Request, content_type: str) -> None:
        self._server = server
        self._request = request
        self.response = web.StreamResponse()
        self.response.content_type = content_type
        if content_type == "application/json":
            self.response.charset = "utf-8"

    async def write(self, data: bytes) -> None:
        if not self.response.prepared:
            await self.response.prepare(self._request)
        await self.response.write(data)
        self._server._emitted(self._request)

    def drop(self) -> web.StreamResponse:
        """Close the connection mid-answer, as a crashed runner or a cut network would."""
        transport = self._request.transport
        if transport is not None:
            transport.close()
        return self.response


def _request_id(request: web.Request) -> int:
    record = request.get(_RECORD_KEY)
    return record.request_id if record is not None else 0


def _messages(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise _ApiError(400, "messages must be a list of objects")
    return value


def _chat_tokens(messages: list[dict[str, Any]]) -> int:
    """Template overhead of 4 tokens per message (role markers) plus the content's tokens."""
    total = 1
    for message in messages:
        content = message.get("content") or ""
        total += count_prompt_tokens(content if isinstance(content, str) else dumps(content).decode()) + 3
    return total
