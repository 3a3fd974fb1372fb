"""Finding and removing what a dead controller left on the engine, and nothing else.

Every kit resource names its controller (harness.containers.controller). Resources are grouped by compose
project; a project is *orphaned* when its controller is gone on this host. ``clean`` removes orphaned
projects only: a live sweep (this user's or another's) and a project of another host or of an older kit that
named no controller are listed and kept unless ``everything`` is asked for. A sweep reaps its own folder's
orphans when it starts or resumes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.containers import controller
from harness.containers.engine import (
    LABEL_KIT,
    LABEL_PROJECT,
    LABEL_ROLE,
    MODEL_VOLUME,
    ROLE_MODEL_STORE,
    docker_op,
    remove_labelled,
)

State = Literal["orphaned", "running", "other-host", "unknown-controller"]


@dataclass
class Project:
    """One compose project's resources on the engine, and who controls it."""

    name: str
    controller: controller.Controller | None
    resources: list[str] = field(default_factory=list)

    @property
    def state(self) -> State:
        if self.controller is None:
            return "unknown-controller"
        alive = self.controller.alive()
        if alive is None:
            return "other-host"
        return "running" if alive else "orphaned"


def _labels(resource: Any) -> dict[str, str]:
    attrs = getattr(resource, "attrs", {}) or {}
    return dict(attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {})


def projects(client: Any, label: str = f"{LABEL_KIT}=1") -> list[Project]:
    """Every kit project with a resource carrying ``label`` (the shared model store is never one)."""
    found: dict[str, Project] = {}

    def add(kind: str, items: Iterable[Any]) -> None:
        for item in items:
            labels = _labels(item)
            if labels.get(LABEL_ROLE) == ROLE_MODEL_STORE or getattr(item, "name", "") == MODEL_VOLUME:
                continue
            name = labels.get(LABEL_PROJECT) or f"(no project) {item.name}"
            project = found.setdefault(name, Project(name, controller.from_labels(labels)))
            if project.controller is None:
                project.controller = controller.from_labels(labels)
            project.resources.append(f"{kind} {item.name}")

    with docker_op("listing the kit's resources"):
        add("container", client.containers.list(all=True, filters={"label": label}))
        add("network", client.networks.list(filters={"label": label}))
        add("volume", client.volumes.list(filters={"label": label}))
    return sorted(found.values(), key=lambda p: p.name)


@dataclass(frozen=True)
class CleanReport:
    removed: tuple[Project, ...]
    kept: tuple[Project, ...]
    failed: tuple[str, ...]


def clean(client: Any, *, everything: bool = False, dry_run: bool = False, label: str | None = None) -> CleanReport:
    """Remove orphaned projects (every project with ``everything``); ``dry_run`` only says what it would do."""
    removed, kept, failed = [], [], []
    for project in projects(client, label or f"{LABEL_KIT}=1"):
        if project.state != "orphaned" and not everything:
            kept.append(project)
            continue
        removed.append(project)
        if not dry_run and not project.name.startswith("(no project)"):
            failed += remove_labelled(client, f"{LABEL_PROJECT}={project.name}", volumes=True)
    return CleanReport(tuple(removed), tuple(kept), tuple(failed))


def reap_sweep(client: Any, sweep: str) -> list[str]:
    """Remove the stacks a previous, dead controller of this sweep's folder left; returns what went."""
    me = controller.current()
    gone: list[str] = []
    for project in projects(client, f"{controller.LABEL_SWEEP}={sweep}"):
        if project.controller is not None and project.controller.key == me.key:
            continue
        if project.state == "running":
            continue  # cannot happen while we hold the folder's lock; never touch a live stack regardless
        remove_labelled(client, f"{LABEL_PROJECT}={project.name}", volumes=True)
        gone += project.resources
    return gone
