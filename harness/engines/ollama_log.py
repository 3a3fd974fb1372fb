"""What an Ollama server actually ran with, read from its own log and ``/api/ps`` (never from the kit's inputs).

The spec says which settings the kit asked for; this says which the server used. From the server log:

- the "server config" line ``server/routes.go`` prints at start (``env="map[K:V …]"``). Note that in 0.12.10 it
  prints ``OLLAMA_FLASH_ATTENTION:false`` when the variable is unset, so it cannot tell whether flash attention ran;
- the flash-attention decision of a runner load ("enabling flash attention", or llama.cpp's
  ``flash_attn = 0/1`` line), and the KV-cache type ("kv cache type" with ``type=…``, or ``type_k = '…'``);
- the offload: "offloaded N/M layers to GPU".

From ``/api/ps`` after the first load: size, size_vram and context length of the loaded model. Anything the
log does not show is recorded as absent with the reason, never guessed.
"""

from __future__ import annotations

import re
from typing import Any

from harness.facts import Absent, absent
from harness.schemas import LoadedModel, ServerRuntime

_CONFIG_RE = re.compile(r'msg="server config".*?env="map\[(?P<body>.*?)\]"')
_PAIR_RE = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<value>\[[^\]]*\]|\S*)")
_OFFLOAD_RE = re.compile(r"offloaded (?P<gpu>\d+)/(?P<total>\d+) layers to GPU")
_FA_ON_RE = re.compile(r"enabling flash attention|flash_attn\s*=\s*(?:1|true|enabled)", re.IGNORECASE)
_FA_OFF_RE = re.compile(
    r"flash attention (?:is )?(?:disabled|not supported)|flash_attn\s*=\s*(?:0|false|disabled)", re.IGNORECASE
)
_KV_RE = re.compile(r'msg="kv cache type" type=(?P<a>\S+)|type_k\s*=\s*\'(?P<b>[^\']+)\'')


def parse_server_config(log: str) -> dict[str, str] | None:
    """The last "server config" line's settings, or None when the log has none."""
    found = None
    for match in _CONFIG_RE.finditer(log):
        found = {m["key"]: m["value"] for m in _PAIR_RE.finditer(match["body"])}
    return found


def _last(pattern: re.Pattern[str], log: str) -> re.Match[str] | None:
    match = None
    for match in pattern.finditer(log):  # noqa: B007 (the last one wins: the latest load)
        pass
    return match


def _flash_attention(log: str) -> bool | None:
    on, off = _last(_FA_ON_RE, log), _last(_FA_OFF_RE, log)
    if on is None and off is None:
        return None
    if on is None or off is None:
        return on is not None
    return on.start() > off.start()


def _loaded(ps: dict[str, Any], model: str) -> LoadedModel | Absent:
    wanted = {model} if ":" in model.rsplit("/", 1)[-1] else {model, f"{model}:latest"}
    for entry in ps.get("models") or []:
        if isinstance(entry, dict) and {entry.get("name"), entry.get("model")} & wanted:
            context = entry.get("context_length")
            return LoadedModel(
                size_bytes=int(entry.get("size") or 0),
                size_vram_bytes=int(entry.get("size_vram") or 0),
                context_length=int(context) if context is not None else None,
            )
    return absent(f"/api/ps did not list {model} after its load")


def runtime_facts(ps: dict[str, Any], model: str, log: str | None) -> ServerRuntime:
    """Combine ``/api/ps`` with what the server log says (``log`` None: the log could not be read)."""
    if log is None:
        gone = absent("the server log could not be read")
        return ServerRuntime(
            server_config=gone,
            flash_attention=gone,
            kv_cache_type=gone,
            layers_on_gpu=gone,
            layers_total=gone,
            loaded=_loaded(ps, model),
        )
    config = parse_server_config(log)
    fa = _flash_attention(log)
    kv = _last(_KV_RE, log)
    offload = _last(_OFFLOAD_RE, log)
    no_load = "the server log has no model-load line saying so"
    return ServerRuntime(
        server_config=config if config is not None else absent('the server log has no "server config" line'),
        flash_attention=fa if fa is not None else absent(no_load),
        kv_cache_type=(kv["a"] or kv["b"]) if kv is not None else absent(no_load),
        layers_on_gpu=int(offload["gpu"]) if offload is not None else absent(no_load),
        layers_total=int(offload["total"]) if offload is not None else absent(no_load),
        loaded=_loaded(ps, model),
    )
