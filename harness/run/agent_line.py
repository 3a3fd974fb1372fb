"""The agent command line a containerised run executes: the same flags for the Python and the Rust agents,
derived from the run and the spec (the one place that turns a planned run into an agent invocation)."""

from __future__ import annotations

from harness.agents.runner import Timeouts
from harness.protocol.flags import option_flags
from harness.protocol.plan import Run
from harness.protocol.spec import Spec


def is_multi(run: Run) -> bool:
    """A concurrent collector + insight run (isolated runs have one agent and run as a single agent)."""
    return len(run.agents) == 2 and run.agents[0].role == "collector"


def agent_command(
    run: Run,
    spec: Spec,
    urls: list[str],
    time_scale: float,
    *,
    timeouts: Timeouts | None = None,
    engine: str = "ollama",
    max_tokens: int | None = None,
) -> list[str]:
    """The agent command line a containerised run executes (records go to stdout); both languages take it."""
    agent = spec.agent
    timeouts = timeouts or Timeouts()
    common = ["--model", run.model, "--output-dir", "-", "--run-id", run.run_id]
    if engine != "ollama":
        common += ["--engine", engine]
    if max_tokens is not None:
        common += ["--max-tokens", str(max_tokens)]
    common += ["--read-timeout-s", repr(timeouts.read_timeout_s)]
    common += ["--call-deadline-s", repr(timeouts.call_deadline_s)]
    common += ["--connect-timeout-s", repr(timeouts.connect_timeout_s)]
    common += ["--workflow", agent.workflow if agent else "single_call"]
    if agent is not None and not agent.streaming:
        common.append("--no-stream")
    python = ["python", "-m", "harness", "agent"]
    if run.language == "rust":
        common += ["--runtime", run.runtime]
    if is_multi(run):
        a, b = run.agents
        flags = option_flags("chimera", (a if run.scenario != "baseline_vs_chimera" else b).wire_options())
        if run.scenario == "chimera_hetero":
            flags += option_flags("chimera2", b.wire_options())
        program = ["chimeraforge-multi"] if run.language == "rust" else [*python, "multi"]
        return [
            *program, *common,
            "--collector-ollama-url", urls[a.server_index], "--insight-ollama-url", urls[b.server_index],
            "--scenario", run.scenario, *flags,
        ]  # fmt: skip
    options = next((a.wire_options() for a in run.agents if a.wire_options()), None)
    program = ["chimeraforge-agent"] if run.language == "rust" else [*python, "single"]
    cmd = [
        *program, *common, "--base-url", urls[run.agents[0].server_index],
        "--agents", ",".join(a.role for a in run.agents), "--runs", "1", "--pause-s", "0",
        *option_flags("chimera", options),
    ]  # fmt: skip
    if agent is not None and agent.cooldown_s:
        cmd += ["--cooldown-s", str(agent.cooldown_s * time_scale)]
    if agent is not None and agent.unload_between_runs:
        cmd.append("--unload-between-runs")
    return cmd
