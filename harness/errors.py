"""One error family for the kit.

Adapters translate third-party exceptions into these so the edge (``harness.cli``) can print a message that
says what to do and pick the exit code without knowing about httpx, docker or pynvml.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILURE = 1
EXIT_BAD_INPUT = 2


class HarnessError(Exception):
    """Base of every error the kit raises on purpose; ``str()`` is the message shown to the user."""

    exit_code = EXIT_RUN_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}: {hint}" if hint else message)


class BadInputError(HarnessError):
    """The user gave something the kit cannot use; nothing was started or written."""

    exit_code = EXIT_BAD_INPUT


class SpecError(BadInputError):
    """An experiment spec is malformed; the message names the file, the field path and what is allowed."""


class SettingsError(BadInputError):
    """A ``HARNESS_*`` variable or a command-line option has a value the kit cannot use."""


class SchemaVersionError(BadInputError):
    """An artifact carries a ``schema_version`` this kit does not know."""


class OllamaError(HarnessError):
    """An Ollama server (real or simulated) answered with an error, dropped the stream or could not be reached."""

    def __init__(self, message: str, *, status_code: int | None = None, hint: str | None = None) -> None:
        self.status_code = status_code
        super().__init__(message, hint=hint)


class AgentError(HarnessError):
    """An agent could not finish its workflow (its completed calls are still recorded)."""


class ArtifactError(HarnessError):
    """Artifacts could not be written or read back as expected."""


class DockerError(HarnessError):
    """The Docker engine refused or failed an operation of the kit."""


class GpuError(HarnessError):
    """NVML or the GPU could not be queried."""


class BenchError(HarnessError):
    """A benchmark step could not run (a process failed, a peer tool would not install); says which and why."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` (stack teardown, lock release) runs; the edge exits 143."""
