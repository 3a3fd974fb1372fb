"""``stack up`` / ``stack down``: kit servers started by hand, outside any run, on fixed loopback ports.

They carry the run-id label ``by-hand``: ``stack down`` (or ``clean``) removes them, runs never touch them.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import __version__
from harness.containers.compose import Topology
from harness.containers.engine import ReapReport
from harness.progress import Progress
from harness.run.reproduce import docker_executor, with_images
from harness.settings import OllamaServerSettings, Settings

MANUAL_RUN_ID = "by-hand"
"""Run-id label of stacks started by ``stack up``: ``stack down`` removes them, runs never touch them."""


@dataclass(frozen=True)
class StackUp:
    """A stack left running: its compose project name, backend and the URL of each server."""

    name: str
    backend: str
    urls: dict[str, str]


def stack_up(
    settings: Settings,
    server: OllamaServerSettings,
    *,
    topology: Topology,
    model: str | None,
    ports: tuple[int, int],
    progress: Progress,
) -> StackUp:
    """Build (or find) the images and bring up one or two servers that outlive this process."""
    from harness.containers import pins, stack

    executor = with_images(docker_executor(settings, progress), progress, rust=False)
    executor.require_server_image()
    project = executor.project(
        server,
        topology=topology,
        model=model or pins.load_pins().model,
        sim_seed=settings.sim_seed,
        device_group="by-hand",
        ports={"OLLAMA_PORT": str(ports[0]), "OLLAMA2_PORT": str(ports[1])},
    )
    live = stack.Stack(
        project, client=executor.client, run_id=MANUAL_RUN_ID, kit_version=__version__, publish="as_written"
    )
    live.up()  # stays up after this process exits: `stack down` (or `clean`) removes it
    services = ("ollama", "ollama2")[: 1 + (topology == "dual")]
    return StackUp(name=live.name, backend=executor.backend, urls={s: live.url(s) for s in services})


def stack_down(name: str | None) -> ReapReport:
    """Remove the by-hand stacks (one by compose project name, or all)."""
    from harness.containers import engine

    return engine.reap(engine.connect(), run_id=MANUAL_RUN_ID, project=name, volumes=True)
