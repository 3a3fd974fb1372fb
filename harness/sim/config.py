"""Everything one simulator instance needs, in one frozen object built at the edge and passed down.

``SimConfig.from_server_settings`` maps Ollama's own ``OLLAMA_*`` knobs (read once by ``__main__``) onto it;
tests build it directly. Units are in the field names.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.settings import OllamaServerSettings
from harness.sim.catalog import CATALOG, normalize_name
from harness.sim.faults import DEFAULT_SLOW_START_MS, DEFAULT_STALL_MS, Fault
from harness.sim.runners import parse_keep_alive
from harness.sim.timing import PerfModel


class SimConfig(BaseModel):
    """One simulated Ollama server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    seed: int = 1234
    time_scale: float = Field(default=1.0, gt=0, description="multiplies every simulated delay")

    num_parallel: int = Field(default=1, ge=1, description="OLLAMA_NUM_PARALLEL")
    keep_alive: str = Field(default="5m", description="OLLAMA_KEEP_ALIVE, a Go duration")
    context_length: int = Field(default=4096, ge=1, description="OLLAMA_CONTEXT_LENGTH, default num_ctx")
    flash_attention: bool | None = Field(default=None, description="OLLAMA_FLASH_ATTENTION; None: per model")
    registry_reachable: bool = Field(default=True, description="False: /api/pull fails like an offline host")
    unload_delay_ms: float = Field(default=150.0, ge=0, description="how long a keep_alive: 0 unload takes")
    gpu_id: str = Field(default="0", description="the GPU this server reports it runs on (device_ids)")
    models_dir: Path | None = Field(default=None, description="OLLAMA_MODELS; None keeps pulls in memory")
    preload: tuple[str, ...] = Field(default=(), description="models available without a pull")

    tokens: int | None = Field(default=None, ge=0, description="force every answer to this many tokens")
    decode_tps: float | None = Field(default=None, gt=0, description="full-offload decode rate override")
    prompt_tps: float | None = Field(default=None, gt=0, description="full-offload prompt-eval rate override")
    load_ms: float | None = Field(default=None, ge=0, description="cold-load time override")
    warm_load_ms: float = Field(default=40.0, ge=0)
    pull_bytes_per_s: float = Field(default=2.0e9, gt=0, description="simulated download speed of /api/pull")

    shared_device: str | None = Field(default=None, description="group name of a shared simulated GPU")
    device_dir: Path | None = Field(default=None, description="coordination dir; default <models>/.sim-device/<group>")
    shared_efficiency: float = Field(default=0.7, gt=0, le=1.0, description="device efficiency with k ≥ 2")
    rate_update_ms: float = Field(default=20.0, gt=0, description="real ms between decode-rate recomputes")

    faults: tuple[Fault, ...] = ()
    stall_ms: float = Field(default=DEFAULT_STALL_MS, ge=0)
    slow_start_ms: float = Field(default=DEFAULT_SLOW_START_MS, ge=0)
    record_path: Path | None = Field(default=None, description="append the ground-truth logs as JSON Lines")

    @field_validator("keep_alive")
    @classmethod
    def _check_keep_alive(cls, value: str) -> str:
        parse_keep_alive(value)
        return value

    @field_validator("preload")
    @classmethod
    def _check_preload(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(normalize_name(v) for v in value)
        unknown = [n for n in names if n not in CATALOG]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(unknown)}; the simulator knows {', '.join(CATALOG)}")
        return names

    @classmethod
    def from_server_settings(cls, settings: OllamaServerSettings, **overrides: object) -> SimConfig:
        """Ollama's env knobs first, then explicit values (command-line flags) win; ``None`` means unset."""
        values: dict[str, object] = {
            "num_parallel": settings.num_parallel,
            "keep_alive": settings.keep_alive,
            "context_length": settings.context_length,
            "flash_attention": settings.flash_attention,
            "models_dir": settings.models,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def keep_alive_ns(self) -> int:
        return parse_keep_alive(self.keep_alive)

    def perf_model(self) -> PerfModel:
        return PerfModel(
            shared_efficiency=self.shared_efficiency,
            warm_load_ms=self.warm_load_ms,
            decode_tps=self.decode_tps,
            prompt_tps=self.prompt_tps,
            load_ms=self.load_ms,
        )

    def device_path(self) -> Path | None:
        """Where a shared device coordinates, or None for a private device."""
        if self.shared_device is None:
            return None
        if self.device_dir is not None:
            return self.device_dir
        if self.models_dir is None:
            raise ValueError("a shared device needs --device-dir or OLLAMA_MODELS (where instances meet)")
        return self.models_dir / ".sim-device" / self.shared_device

    @model_validator(mode="after")
    def _check_device(self) -> SimConfig:
        self.device_path()
        return self
