"""What a Ray task does on its node: admit the node to a sweep, make one run there, reap what dead nodes left.

These functions run inside a Ray worker process on a cluster node, with the driver's kit (shipped as Ray's
``working_dir``) and the node's own Docker engine. They never touch the artifact folder: a run comes back to the
driver as a value (:class:`~harness.run.orchestrator.RunOutcome`) and the driver writes it, so it stays the one
writer of the folder whatever happens to the nodes.

Every stack a cluster run starts is named ``cfkr-<sweep token>-<node id[:12]>-…``: the sweep's own stacks and a
dead node's orphans can then be found and removed on any engine by name alone, never touching anyone else's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python

from harness.artifacts import RunNode
from harness.containers import engine
from harness.containers.images import load_images, tag_image
from harness.errors import DockerError
from harness.evidence.provenance import docker_facts, fingerprint, host_facts
from harness.evidence.telemetry import gpu_facts, nvml_session
from harness.protocol.plan import Run
from harness.protocol.spec import Spec
from harness.run.orchestrator import DockerExecutor, PreparedModel, RunOutcome

PROJECT_PREFIX = "cfkr-"
_PROJECT = re.compile(r"^cfkr-(?P<token>[0-9a-f]{6})-(?P<node>[0-9a-f]{12})-")
IMAGE_FIELDS = {"harness": "harness_image", "rust-agent": "rust_image", "ollama": "ollama_image"}
"""Image role (as in sweep.json ``images``) → the DockerExecutor field holding its content-hashed tag."""


def stack_prefix(token: str, node_id: str) -> str:
    """The project-name prefix of every stack this sweep starts on this node."""
    return f"{PROJECT_PREFIX}{token}-{node_id[:12]}-"


@dataclass(frozen=True)
class Admission:
    """A node's answer to "may this sweep run here?": what it has, its environment, and any reason to refuse."""

    node_id: str
    hostname: str
    fingerprint_sha256: str
    refused: str | None
    model: PreparedModel | None = None
    missing: tuple[str, ...] = ()
    """Image roles whose tag is not on the node (the driver may ship them)."""

    def run_node(self) -> RunNode:
        return RunNode(node_id=self.node_id, hostname=self.hostname, fingerprint_sha256=self.fingerprint_sha256)


def recipe(executor: DockerExecutor) -> dict[str, Any]:
    """The executor's settings without its engine connection: what a node needs to rebuild it on its own engine."""
    skip = {"client", "_live"}
    return {f.name: getattr(executor, f.name) for f in dataclasses.fields(executor) if f.name not in skip}


def _executor(settings: Mapping[str, Any], client: Any, prefix: str = "") -> DockerExecutor:
    return DockerExecutor(client=client, **{**settings, "stack_prefix": prefix})


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def _dead_nodes() -> set[str]:
    """Node ids the cluster knows to be dead (it remembers them): their stacks are orphans wherever they are."""
    import ray

    return {str(n["NodeID"]) for n in ray.nodes() if not n.get("Alive")}


def node_fingerprint(client: Any, images: Mapping[str, str]) -> str:
    """sha256 over what a claim depends on at this node: GPU, driver, engine, image IDs, CPU, kernel, OS.

    The same keys as provenance.json's fingerprint, restricted to the machine (the driver records the rest once).
    """
    with nvml_session() as nvml:
        doc = {"gpu": gpu_facts(nvml), "docker": docker_facts(client, images), "host": host_facts()}
    digest, _keys = fingerprint(to_jsonable_python(doc))
    return digest


def admit(
    settings: Mapping[str, Any], images: Mapping[str, str], spec: Spec | None, shipped: Sequence[Any] = ()
) -> Admission:
    """Check the node's images against the sweep's IDs, fingerprint it, and (with ``spec``) prepare the model.

    ``shipped`` (Ray object refs, nested so that only a node that needs them fetches them) holds the driver's
    ``docker save`` of the sweep's images: a node that lacks them loads and tags them; a node that holds another
    build under the same tag is refused, never overwritten.
    """
    node_id, hostname = _node_id(), socket.gethostname()
    client = engine.connect()
    reap_projects(client, token=None, dead=_dead_nodes())
    executor = _executor(settings, client)
    refs = {role: getattr(executor, IMAGE_FIELDS[role]) for role in images}
    missing, refused = _image_mismatch(client, refs, images)
    if missing and shipped and refused is None:
        import ray

        load_images(client, iter((bytes(ray.get(shipped[0])),)))  # a stream: a list would be sent as a form
        for role in missing:
            tag_image(client, images[role], refs[role])
        missing, refused = _image_mismatch(client, refs, images)
    if missing and refused is None:
        refused = (
            f"the {', '.join(missing)} image(s) are not on this node's engine (build them there with `invoke build`: "
            "the same kit gives the same content-hashed tag)"
        )
    digest = node_fingerprint(client, refs)
    if refused is not None:
        return Admission(node_id, hostname, digest, refused, missing=tuple(missing))
    model = asyncio.run(executor.prepare_model(spec)) if spec is not None else None
    return Admission(node_id, hostname, digest, None, model)


def _image_mismatch(client: Any, refs: Mapping[str, str], want: Mapping[str, str]) -> tuple[list[str], str | None]:
    """(roles whose tag is missing here, the reason to refuse when a tag names another image)."""
    missing = []
    for role, ref in sorted(refs.items()):
        try:
            have = engine.image_id(client, ref)
        except DockerError:
            missing.append(role)
            continue
        if have != want[role]:
            return (
                missing,
                f"the {role} image {ref} is {have[:19]}… here, the sweep runs {want[role][:19]}… (another build)",
            )
    return missing, None


def run_here(settings: Mapping[str, Any], token: str, run: Run, spec: Spec, node: RunNode) -> RunOutcome:
    """One run on this node's engine through the Docker executor; any failure comes back as the run's error.

    A cancellation (Ctrl-C on the driver, ``ray.cancel``) interrupts the executor, which tears its stack down.
    """
    client = engine.connect()
    reap_projects(client, token=None, dead=_dead_nodes())
    executor = _executor(settings, client, stack_prefix(token, node.node_id))
    try:
        outcome = asyncio.run(executor.execute(run, spec))
    except Exception as exc:  # the run failed, not the node: the driver records it and may retry it
        outcome = RunOutcome(error=f"{type(exc).__name__}: {exc}")
    outcome.node = node
    return outcome


def reap_here(token: str | None) -> list[str]:
    """Remove this sweep's stacks (``token``) and every dead node's orphans from this node's engine."""
    return reap_projects(engine.connect(), token=token, dead=_dead_nodes())


def reap_projects(client: Any, *, token: str | None, dead: set[str]) -> list[str]:
    """Remove the cluster stacks of sweep ``token`` and of the ``dead`` nodes; returns the project names removed."""
    label = {"label": f"{engine.LABEL_KIT}=1"}
    found: set[str] = set()
    for item in [*client.containers.list(all=True, filters=label), *client.networks.list(filters=label)]:
        found.add(str((item.attrs.get("Config") or {}).get("Labels", {}).get(engine.LABEL_PROJECT, "")))
        found.add(str((item.attrs.get("Labels") or {}).get(engine.LABEL_PROJECT, "")))
    for volume in client.volumes.list(filters=label):
        found.add(str((volume.attrs.get("Labels") or {}).get(engine.LABEL_PROJECT, "")))
    dead_prefixes = {node[:12] for node in dead}
    removed = []
    for name in sorted(found):
        match = _PROJECT.match(name)
        if match and (match["token"] == token or match["node"] in dead_prefixes):
            engine.reap(client, project=name, volumes=True)
            removed.append(name)
    return removed
