"""The simulator's server log, in the shapes Ollama 0.12.10 writes the lines the kit reads back.

Ollama logs through Go's ``log/slog`` text handler (``time=… level=INFO source=… msg="…" key=value``). The kit
reads four facts from a real server's log (:mod:`harness.engines.ollama_log`): the "server config" line that
``server/routes.go`` prints at start, the flash-attention decision and KV-cache type of a runner load, and how
many layers the runner offloaded. The simulator writes the same lines, so the parser has a producer to be
tested against without a GPU; every line says ``simulated=true`` so it cannot pass for a real server's.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import deque
from typing import TextIO

from harness.sim.catalog import ModelSpec
from harness.sim.config import SimConfig
from harness.sim.runners import go_duration

MAX_LINES = 10_000
"""Lines kept in memory (the log of a long sweep must not grow without bound)."""


def _quote(value: str) -> str:
    if value and all(c.isalnum() or c in "._-:/" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ServerLog:
    """Lines of one simulated server: kept in memory (the local executor reads them) and echoed to a stream."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._lines: deque[str] = deque(maxlen=MAX_LINES)
        self._stream = stream

    @classmethod
    def to_stderr(cls) -> ServerLog:
        return cls(sys.stderr)

    def write(self, source: str, msg: str, **attrs: object) -> None:
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        parts = [f"time={stamp}", "level=INFO", f"source={source}", f"msg={_quote(msg)}"]
        parts += [f"{key}={_quote(str(value))}" for key, value in attrs.items()]
        parts.append("simulated=true")
        line = " ".join(parts)
        self._lines.append(line)
        if self._stream is not None:
            print(line, file=self._stream, flush=True)

    def text(self) -> str:
        return "".join(line + "\n" for line in self._lines)

    def server_config(self, env: dict[str, str]) -> None:
        """``server/routes.go`` at start: every setting as Go prints a map (sorted keys, ``key:value``)."""
        body = " ".join(f"{key}:{env[key]}" for key in sorted(env))
        self.write("routes.go:1331", "server config", env=f"map[{body}]")

    def runner_loaded(
        self, model: ModelSpec, *, flash_attention: bool, kv_cache_type: str, layers_on_gpu: int, gpu_id: str
    ) -> None:
        """A runner load: the decision on flash attention, the cache type, then the offload."""
        if flash_attention:
            self.write("server.go:210", "enabling flash attention")
        self.write("server.go:400", "kv cache type", type=kv_cache_type)
        self.write(
            "ggml.go:487",
            f"offloaded {layers_on_gpu}/{model.layers + 1} layers to GPU",
            model=model.name,
            gpu=gpu_id,
        )


def config_env(config: SimConfig, port: int | None) -> dict[str, str]:
    """The settings as ``server/routes.go`` prints them at start: an unset flash attention prints ``false``."""
    return {
        "CUDA_VISIBLE_DEVICES": "",
        "OLLAMA_CONTEXT_LENGTH": str(config.context_length),
        "OLLAMA_DEBUG": "INFO",
        "OLLAMA_FLASH_ATTENTION": "true" if config.flash_attention else "false",
        "OLLAMA_GPU_OVERHEAD": "0",
        "OLLAMA_HOST": f"http://{config.host}:{port}",
        "OLLAMA_KEEP_ALIVE": go_duration(config.keep_alive_ns),
        "OLLAMA_KV_CACHE_TYPE": "",
        "OLLAMA_LOAD_TIMEOUT": "5m0s",
        "OLLAMA_MAX_LOADED_MODELS": "0",
        "OLLAMA_MAX_QUEUE": "512",
        "OLLAMA_MODELS": str(config.models_dir or ""),
        "OLLAMA_NUM_PARALLEL": str(config.num_parallel),
        "OLLAMA_SCHED_SPREAD": "false",
    }
