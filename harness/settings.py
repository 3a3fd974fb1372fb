"""Where and how to run, from ``HARNESS_*`` (and, for servers, ``OLLAMA_*``) environment variables.

Settings objects are built once at the edge (``harness.cli``, ``harness.sim.__main__``) and passed down; no
other module reads ``os.environ``. What to run lives in the experiment spec, not here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from harness.errors import SettingsError

Backend = Literal["auto", "ollama", "sim", "llamacpp"]

MAX_TIME_SCALE = 100.0
"""A rehearsal slower than 100 × real time is a typo; ``inf`` would hang the simulator."""
MAX_TIMEOUT_S = 86_400.0
"""No timeout of the kit is longer than a day (``inf`` overflowed the HTTP clients)."""


class Settings(BaseSettings):
    """The kit's own settings (``HARNESS_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_", extra="ignore", frozen=True, allow_inf_nan=False)

    experiments_dir: Path = Field(default=Path("experiments"), description="where trNNN.toml specs live")
    artifacts_dir: Path = Field(default=Path("artifacts"), description="where run outputs are written")
    backend: Backend = Field(
        default="auto", description="auto: Ollama when Docker sees an NVIDIA GPU, else sim; llamacpp: llama.cpp"
    )
    model_file: Path | None = Field(
        default=None, description="llamacpp: the GGUF weights to serve (default: the kit's tiny test model)"
    )
    llamacpp_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="llamacpp: cuda (the CUDA image, NVIDIA GPU), cpu, or auto: cuda when Docker sees an NVIDIA GPU",
    )
    time_scale: float = Field(
        default=1.0, gt=0, le=MAX_TIME_SCALE, description="simulator only: multiply every delay by this (0 < x ≤ 100)"
    )
    sim_seed: int = Field(
        default=1234, ge=0, le=2**63 - 1, description="simulator seed; the same seed gives the same tokens"
    )
    read_timeout_s: float = Field(
        default=600.0, gt=0, le=MAX_TIMEOUT_S, description="per-read idle timeout: longest wait for the next bytes"
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT_S, description="longest TCP connect")
    call_deadline_s: float = Field(
        default=1800.0, gt=0, le=MAX_TIMEOUT_S, description="whole-call deadline: one request, stream included"
    )
    retries_per_run: int = Field(default=1, ge=0, le=10, description="extra attempts for a failed run (0 to 10)")
    allow_pull: bool = Field(default=False, description="model preparation may pull from the Ollama registry")
    sim_registry: Literal["reachable", "unreachable"] = Field(
        default="reachable", description="local simulator: whether its registry answers pulls (air-gap rehearsal)"
    )
    sim_store: Literal["prepared", "empty"] = Field(
        default="prepared", description="local simulator: whether its model store already holds the spec's model"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class OllamaServerSettings(BaseSettings):
    """The server knobs Ollama reads from ``OLLAMA_*``; the simulator honours the same variables.

    Defaults are Ollama 0.12.10's, which is what the reports' committed server logs show.
    """

    model_config = SettingsConfigDict(env_prefix="OLLAMA_", extra="ignore", frozen=True, allow_inf_nan=False)

    num_parallel: int = Field(default=1, ge=1, le=1024)
    keep_alive: str = Field(default="5m", description="Go duration string, as Ollama takes it")
    context_length: int = Field(default=4096, ge=1, le=1 << 24)
    flash_attention: bool | None = Field(default=None, description="None: unset, the server decides per model")
    models: Path | None = Field(default=None, description="model store directory")
    gpus: tuple[str, ...] = Field(default=("0",), description="the GPU of each server (index or UUID), in order")

    @field_validator("flash_attention", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """Ollama reads an empty ``OLLAMA_FLASH_ATTENTION`` as unset (the compose files pass it empty)."""
        return None if isinstance(value, str) and not value.strip() else value


RENAMED = {
    "HARNESS_REQUEST_TIMEOUT_S": "HARNESS_READ_TIMEOUT_S (the wait for the next bytes) and HARNESS_CALL_DEADLINE_S "
    "(the whole call)"
}
"""Variables the kit no longer reads: refused by name, so an old setting is never silently ignored."""


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings` from the environment plus explicit overrides (command-line flags win)."""
    for old, new in RENAMED.items():
        if old in os.environ:
            raise SettingsError(f"{old} is no longer read: it was a per-read timeout", hint=f"set {new}")
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc), hint="fix the HARNESS_* variable or the option") from None


def load_server_settings() -> OllamaServerSettings:
    """Build :class:`OllamaServerSettings` from ``OLLAMA_*`` variables."""
    try:
        return OllamaServerSettings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc), hint="fix the OLLAMA_* variable") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(settings)"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid settings: " + "; ".join(parts)
