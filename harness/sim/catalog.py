"""The models the simulator knows, and where pulled ones are remembered.

Sizes, parameter counts, quantizations and layer counts are approximate public facts about the Ollama library
builds the reports used; they drive ``/api/tags``, ``/api/show``, ``/api/ps`` and the performance model.
Digests are SYNTHETIC on purpose: ``sha256("chimeraforge-sim:<model name>")``. They are stable and unique per
name but never equal a registry digest, so a simulated run can never be mistaken for a measured one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_text_atomic

DIGEST_SOURCE = "chimeraforge-sim:<model name>"
"""The documented preimage of every synthetic digest."""


def synthetic_digest(name: str) -> str:
    """Hex sha256 of ``chimeraforge-sim:<name>`` (no ``sha256:`` prefix, as ``/api/tags`` reports digests)."""
    return hashlib.sha256(f"chimeraforge-sim:{name}".encode()).hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry; ``weights_bytes_per_token`` is what a decode step must read (the roofline input)."""

    name: str
    family: str
    parameter_size: str
    parameter_count: int
    quantization_level: str
    size_bytes: int
    layers: int
    weights_bytes_per_token: int
    context_length: int
    calibrated_decode_tps: float | None = None
    """Full-offload decode rate at num_ctx 4096 on the reports' GPU, where the reports measured one."""
    capabilities: tuple[str, ...] = ("completion",)
    flash_attention: bool = True
    """Whether the model's architecture supports flash attention, which Ollama 0.12.10 enables by default for
    such models when ``OLLAMA_FLASH_ATTENTION`` is unset (gemma3 and llama do)."""

    @property
    def digest(self) -> str:
        return synthetic_digest(self.name)

    def details(self) -> dict[str, object]:
        """The ``details`` object of ``/api/tags``, ``/api/show`` and ``/api/ps``."""
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


_GEMMA_CAPS = ("completion", "vision")

CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="gemma3:latest",
            family="gemma3",
            parameter_size="4.3B",
            parameter_count=4_300_079_472,
            quantization_level="Q4_K_M",
            size_bytes=3_338_801_804,
            layers=34,
            weights_bytes_per_token=2_490_000_000,
            context_length=131_072,
            calibrated_decode_tps=108.0,
            capabilities=_GEMMA_CAPS,
        ),
        ModelSpec(
            name="gemma3:270m",
            family="gemma3",
            parameter_size="268.10M",
            parameter_count=268_098_176,
            quantization_level="Q8_0",
            size_bytes=291_554_930,
            layers=18,
            weights_bytes_per_token=290_000_000,
            context_length=32_768,
        ),
        ModelSpec(
            name="gemma3:1b-it-qat",
            family="gemma3",
            parameter_size="999.89M",
            parameter_count=999_885_952,
            quantization_level="Q4_0",
            size_bytes=1_003_000_000,
            layers=26,
            weights_bytes_per_token=720_000_000,
            context_length=32_768,
        ),
        ModelSpec(
            name="llama3.1:8b-instruct-q4_0",
            family="llama",
            parameter_size="8.0B",
            parameter_count=8_030_261_248,
            quantization_level="Q4_0",
            size_bytes=4_661_224_676,
            layers=32,
            weights_bytes_per_token=4_660_000_000,
            context_length=131_072,
            calibrated_decode_tps=76.6,
        ),
        ModelSpec(
            name="llama3.1:8b-instruct-q5_K_M",
            family="llama",
            parameter_size="8.0B",
            parameter_count=8_030_261_248,
            quantization_level="Q5_K_M",
            size_bytes=5_733_981_892,
            layers=32,
            weights_bytes_per_token=5_730_000_000,
            context_length=131_072,
            calibrated_decode_tps=65.2,
        ),
        ModelSpec(
            name="llama3.1:8b-instruct-q8_0",
            family="llama",
            parameter_size="8.0B",
            parameter_count=8_030_261_248,
            quantization_level="Q8_0",
            size_bytes=8_540_770_532,
            layers=32,
            weights_bytes_per_token=8_540_000_000,
            context_length=131_072,
            calibrated_decode_tps=46.6,
        ),
    )
}


def normalize_name(name: str) -> str:
    """Ollama's implicit tag: ``gemma3`` means ``gemma3:latest``."""
    name = name.strip()
    return name if ":" in name else f"{name}:latest"


def lookup(name: str) -> ModelSpec | None:
    return CATALOG.get(normalize_name(name))


_MANIFEST_SCHEMA = "chimeraforge-sim-manifest/1"


class ModelStore:
    """Which catalog models are "pulled"; persisted as tiny manifests so a shared volume remembers them.

    Manifests live under ``<models dir>/chimeraforge-sim/manifests/`` (never where a real Ollama keeps its
    own), one JSON file per model. Without a directory the store is in memory only.
    """

    def __init__(self, models_dir: Path | None) -> None:
        self._dir = models_dir / "chimeraforge-sim" / "manifests" if models_dir is not None else None
        self._memory: dict[str, float] = {}

    def _path(self, name: str) -> Path:
        assert self._dir is not None
        return self._dir / (name.replace(":", "__").replace("/", "_") + ".json")

    def add(self, name: str) -> None:
        """Remember ``name`` as pulled now (a catalog name, already normalized)."""
        now = time.time()
        self._memory[name] = now
        if self._dir is not None:
            with contextlib.suppress(OSError):
                self._dir.mkdir(parents=True, exist_ok=True)
            body = {
                "schema": _MANIFEST_SCHEMA,
                "model": name,
                "digest": "sha256:" + synthetic_digest(name),
                "synthetic": True,
                "digest_source": DIGEST_SOURCE,
                "pulled_at_unix_s": now,
            }
            # A unique temporary name per write: two simulators pulling into one shared volume at once
            # must not write through the same temporary file.
            try:
                write_text_atomic(self._path(name), json.dumps(body, sort_keys=True) + "\n", fsync=False)
            except OSError:
                # A store mounted read-only (every run but the preparation step): the model is known to this
                # instance only, which is all a preload needs.
                return

    def remove(self, name: str) -> bool:
        found = self._memory.pop(name, None) is not None
        if self._dir is not None and self._path(name).exists():
            self._path(name).unlink()
            found = True
        return found

    def pulled(self) -> dict[str, float]:
        """Pulled catalog names → modification time (unix s), newest state of memory and disk."""
        result = dict(self._memory)
        if self._dir is not None and self._dir.is_dir():
            for path in self._dir.glob("*.json"):
                try:
                    body = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                name = body.get("model")
                if isinstance(name, str) and name in CATALOG:
                    result[name] = float(body.get("pulled_at_unix_s", path.stat().st_mtime))
        return result

    def has(self, name: str) -> bool:
        return name in self.pulled()

    def preload(self, names: Iterable[str]) -> None:
        for name in names:
            if normalize_name(name) not in self.pulled():
                self.add(normalize_name(name))
