"""The agents under test and their command lines: the Python agent and every Rust runtime.

The lines are the ones the containers run (``harness.run.agent_line.agent_command``), pointed at host URLs.
Two runtimes reproduce the originals' flaws on purpose; their rows are measured and shown but judged
against no target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PYTHON = "python"
RUST_RUNTIMES = ("tokio", "tokio-local", "smol", "smol-1kb", "async-std", "async-std-mutex")
AGENTS = (PYTHON, *RUST_RUNTIMES)
FLAWS = {
    "smol-1kb": "parses nothing before 1 KiB of body is buffered: the original smol-1kb flaw, kept on purpose",
    "async-std-mutex": "holds the coordinator lock across each whole agent run: the original async-std flaw",
}
TEMPERATURE = "0.8"
"""The one option the bench's agents send (both agents the same: chimera_homo), so requests carry options."""


@dataclass(frozen=True)
class AgentCommands:
    """Builds agent command lines: ``python`` is the kit's interpreter, ``rust_bin`` the release binaries."""

    python: str
    rust_bin: Path

    def _program(self, agent: str, kind: str) -> list[str]:
        if agent == PYTHON:
            return [self.python, "-m", "harness", "agent", kind]
        binary = "chimeraforge-agent" if kind == "single" else "chimeraforge-multi"
        return [str(self.rust_bin / binary), "--runtime", agent]

    def single(self, agent: str, url: str, *, runs: int, workflow: str, role: str = "baseline") -> list[str]:
        """``runs`` passes of one agent back to back (no pause) against one server."""
        options = [] if role == "baseline" else ["--chimera-temperature", TEMPERATURE]
        return [
            *self._program(agent, "single"), "--output-dir", "-", "--workflow", workflow, "--base-url", url,
            "--agents", role, "--runs", str(runs), "--pause-s", "0", *options,
        ]  # fmt: skip

    def multi(self, agent: str, collector_url: str, insight_url: str, *, workflow: str) -> list[str]:
        """The collector and the insight agent concurrently (chimera_homo: both send the same options)."""
        return [
            *self._program(agent, "multi"), "--output-dir", "-", "--workflow", workflow,
            "--collector-ollama-url", collector_url, "--insight-ollama-url", insight_url,
            "--scenario", "chimera_homo", "--chimera-temperature", TEMPERATURE,
        ]  # fmt: skip
