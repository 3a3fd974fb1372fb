"""``doctor --report``: is the report's model in the kit's model store, or can the server pull it?

The store is the Docker volume every Ollama server of the kit mounts (``OLLAMA_MODELS``). Ollama keeps one
manifest per model at ``manifests/<registry>/<namespace>/<name>/<tag>`` in it; when the volume's directory is
readable from here (a local engine, run as root) the manifest says whether the model is there. Otherwise the
answer is "unknown", and model preparation checks through the server before any run. Whether a pull could work
is a name lookup of the registry: an air-gapped host fails it, and then the model must be pre-loaded.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.containers.compose import MODEL_VOLUME

REGISTRY_HOST = "registry.ollama.ai"
AIR_GAPPED_DOC = "docs/air-gapped.md"

Resolver = Callable[[str, int], Any]


def manifest_path(store: Path, model: str) -> Path:
    """Where Ollama keeps ``model``'s manifest in a store (``gemma3`` → ``…/library/gemma3/latest``)."""
    name, _, tag = model.partition(":")
    parts = name.split("/")
    host = parts[0] if len(parts) == 3 else REGISTRY_HOST
    namespace = parts[-2] if len(parts) >= 2 else "library"
    return store / "manifests" / host / namespace / parts[-1] / (tag or "latest")


def in_store(client: Any, model: str, volume: str = MODEL_VOLUME) -> bool | str:
    """True/False when the volume could be looked into; else why not (a sentence)."""
    import docker.errors

    try:
        found = client.volumes.get(volume)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        return f"volume {volume} unreadable: {exc.explanation or exc}"
    mount = Path(str(found.attrs.get("Mountpoint") or ""))
    try:
        if not mount.is_dir():
            return f"volume {volume}'s directory is not visible from here (a remote engine, or not root)"
        return manifest_path(mount, model).is_file()
    except PermissionError:
        return f"volume {volume}'s directory is not readable from here (not root)"


def registry_reachable(resolve: Resolver = socket.getaddrinfo) -> bool:
    try:
        resolve(REGISTRY_HOST, 443)
    except OSError:
        return False
    return True


def store_finding(stored: bool | str, reachable: bool, model: str, volume: str = MODEL_VOLUME) -> tuple[str, str, str]:
    """(status, detail, fix) of the ``model_store`` check."""
    pull = f"the registry ({REGISTRY_HOST}) resolves: `reproduce --pull` can fetch it"
    offline = f"the registry ({REGISTRY_HOST}) does not resolve: this host cannot pull"
    preload = f"pre-load the model store from another host ({AIR_GAPPED_DOC})"
    if stored is True:
        return "ok", f"{model} is in the model store (volume {volume})", ""
    if stored is False:
        if reachable:
            return "warn", f"{model} is not in the model store (volume {volume}); {pull}", "run with --pull once"
        return "fail", f"{model} is not in the model store (volume {volume}) and {offline}", preload
    if reachable:
        return "warn", f"{stored}; {pull} if the store lacks it", "model preparation checks the store before any run"
    return "warn", f"{stored}; {offline}, so the store must hold {model}", preload
