"""Where and how to run, from ``HARNESS_*`` (and, for servers, ``OLLAMA_*``) environment variables.

Settings objects are built once at the edge (``harness.cli``, ``harness.sim.__main__``) and passed down; no
other module reads ``os.environ``. What to run lives in the experiment spec, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from harness.errors import SettingsError

Backend = Literal["auto", "ollama", "sim", "llamacpp"]


class Settings(BaseSettings):
    """The kit's own settings (``HARNESS_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_", extra="ignore", frozen=True)

    experiments_dir: Path = Field(default=Path("experiments"), description="where trNNN.toml specs live")
    artifacts_dir: Path = Field(default=Path("artifacts"), description="where run outputs are written")
    backend: Backend = Field(
        default="auto", description="auto: Ollama when Docker sees an NVIDIA GPU, else sim; llamacpp: llama.cpp"
    )
    model_file: Path | None = Field(
        default=None, description="llamacpp: the GGUF weights to serve (default: the kit's tiny test model)"
    )
    time_scale: float = Field(default=1.0, gt=0, description="simulator only: multiply every delay by this")
    sim_seed: int = Field(default=1234, description="simulator seed; the same seed gives the same tokens")
    request_timeout_s: float = Field(default=600.0, gt=0, description="per Ollama request, whole stream")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    retries_per_run: int = Field(default=1, ge=0, description="extra attempts for a failed run")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class OllamaServerSettings(BaseSettings):
    """The server knobs Ollama reads from ``OLLAMA_*``; the simulator honours the same variables.

    Defaults are Ollama 0.12.10's, which is what the reports' committed server logs show.
    """

    model_config = SettingsConfigDict(env_prefix="OLLAMA_", extra="ignore", frozen=True)

    num_parallel: int = Field(default=1, ge=1)
    keep_alive: str = Field(default="5m", description="Go duration string, as Ollama takes it")
    context_length: int = Field(default=4096, ge=1)
    flash_attention: bool = False
    models: Path | None = Field(default=None, description="model store directory")


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings` from the environment plus explicit overrides (command-line flags win)."""
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
