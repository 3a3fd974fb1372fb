"""``--executor ray``: every run of a sweep is a Ray task on some node of a cluster, the driver writes the folder.

Ray schedules and accounts for the resources (a whole GPU per run on the real backend, one unit of the custom
``docker`` resource on the simulator) and reports lost nodes; the kit adds only what a reproduction needs:

- *admission*: before the first run each node is asked whether it holds the sweep's images (by image ID, not
  tag) and what its environment fingerprint is; a node with other images is refused for the sweep, with the
  reason, in ``cluster.json``. Without ``across_hosts`` every admitted node must share one fingerprint;
- *placement*: a run is pinned to an admitted node (Ray's node affinity), so a refused node never gets one;
- *node loss*: a run whose node died is retried on another node and the lost attempt is recorded in its
  run.json; completed runs are already on the driver's disk;
- *teardown*: Ctrl-C cancels the tasks (each tears its own stack down) and then removes whatever is left of this
  sweep's stacks on every live node; stacks a dead node left are removed by the next task on its engine.

Where the cluster is comes from Ray's own ``RAY_ADDRESS``; without it a local Ray is started on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.artifacts import ArtifactDir, LostAttempt, load_json_doc
from harness.containers.images import save_images
from harness.errors import BadInputError, DockerError, HarnessError
from harness.evidence.provenance import REPO_ROOT
from harness.protocol.plan import Plan, Run
from harness.protocol.spec import Spec
from harness.run import ray_node
from harness.run.orchestrator import DockerExecutor, PreparedModel, RunOutcome

CLUSTER_FILE = "cluster.json"
ADMIT_TIMEOUT_S = 3600.0
"""Admission pulls the model on every node: a first pull of gigabytes, like the local executor's."""
TEARDOWN_WAIT_S = 60.0
UPLOAD_EXCLUDES = [".git", ".venv", "artifacts", "benchmarks", "harness/rust/target", "docker/context"]
"""Not shipped to the nodes with the kit's code (Ray's working_dir): outputs, environments, build trees."""


class ClusterNode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str
    hostname: str
    status: Literal["admitted", "refused", "lost"]
    fingerprint_sha256: str | None = None
    capacity: float = Field(ge=0, description="runs the node can hold at once (its GPUs or docker units)")
    reason: str | None = None


class ClusterRecord(BaseModel):
    """``cluster.json``: which nodes a sweep used, which it refused or lost, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    resource: str = Field(description="what one run asks Ray for: GPU (real backend) or docker (simulator)")
    across_hosts: bool
    nodes: list[ClusterNode]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BadInputError(
            "--executor ray needs Ray, which is the kit's optional `cluster` extra",
            hint="pip install --require-hashes -r requirements-cluster.lock",
        ) from None
    return ray


@dataclass
class RayExecutor:
    """Runs each run through the Docker executor on a Ray node; same interface as the local executors."""

    docker: DockerExecutor
    across_hosts: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    task_body: Callable[..., RunOutcome] = ray_node.run_here
    """What a run's task executes on its node (the bench swaps in a no-op to time the scheduling alone)."""
    admitted: dict[str, ray_node.Admission] = field(default_factory=dict)
    capacity: dict[str, float] = field(default_factory=dict)
    refused: dict[str, ClusterNode] = field(default_factory=dict)
    lost: dict[str, str] = field(default_factory=dict)
    _load: Counter[str] = field(default_factory=Counter)
    _inflight: dict[str, Any] = field(default_factory=dict)
    _out: ArtifactDir | None = None
    _torn_down: bool = False

    @property
    def backend(self) -> str:
        return self.docker.backend

    @property
    def time_scale(self) -> float:
        return self.docker.time_scale

    @property
    def client(self) -> Any:
        """The driver's engine, where the images were built (what provenance.json describes)."""
        return self.docker.client

    @property
    def resource(self) -> str:
        return "GPU" if self.backend == "ollama" else "docker"

    @property
    def seed(self) -> int:
        return self.docker.seed

    def reap_own_leftovers(self) -> list[str]:
        """The driver runs no stack of its own: each node's leftovers are reaped on that node (ray_node)."""
        return []

    @property
    def parallel_runs(self) -> int:
        """How many runs the admitted nodes hold at once; the orchestrator keeps that many in flight."""
        return max(1, int(sum(self.capacity[n] for n in self.admitted)))

    def image_ids(self) -> dict[str, str]:
        return self.docker.image_ids()

    def _task_options(self, node: str) -> dict[str, Any]:
        """A run's claim on ``node``: a whole GPU, or one docker unit; no CPU so tiny nodes still take runs."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        pinned = {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False), "max_retries": 0}
        if self.resource == "GPU":
            return {"num_gpus": 1, "num_cpus": 0, **pinned}
        return {"resources": {"docker": 1}, "num_cpus": 0, **pinned}

    def check(self, plan: Plan) -> None:
        """The Docker executor's checks, then connect to the cluster (RAY_ADDRESS, else a local Ray)."""
        self.docker.check(plan)
        ray = _ray()
        if ray.is_initialized():
            return
        runtime_env = {"working_dir": str(REPO_ROOT), "excludes": UPLOAD_EXCLUDES}
        local: dict[str, Any] = {}
        if not os.environ.get("RAY_ADDRESS"):  # "local": a new Ray here, never a cluster that happens to run here
            local = {"address": "local", **({"resources": {"docker": 1}} if self.resource == "docker" else {})}
        on_term = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
        try:
            ray.init(runtime_env=runtime_env, log_to_driver=False, logging_level="WARNING", **local)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BadInputError(
                f"cannot reach the Ray cluster at {os.environ.get('RAY_ADDRESS') or '(local)'}: {exc}",
                hint="start it with `ray start --head` (docs/cluster.md) or unset RAY_ADDRESS for a local one",
            ) from None
        finally:
            # ray.init installs a native SIGTERM handler that aborts the driver (exit -6): the sweep's own
            # handler (teardown, then exit 143) must stay the one that runs, so it is put back.
            if on_term is not None:
                signal.signal(signal.SIGTERM, on_term)

    async def prepare_model(self, spec: Spec) -> PreparedModel:
        """Admit the nodes (images, fingerprint, model on each); the sweep's model is the first admitted node's."""
        return await asyncio.to_thread(self._admit_all, spec)

    def _admit_all(self, spec: Spec) -> PreparedModel:
        ray = _ray()
        nodes = {
            str(n["NodeID"]): float(n["Resources"].get(self.resource, 0))
            for n in ray.nodes()
            if n.get("Alive") and n["Resources"].get(self.resource, 0) >= 1
        }
        if not nodes:
            raise BadInputError(
                f"no live node of the Ray cluster declares the {self.resource} resource a run needs",
                hint="start the nodes with `ray start --resources '{\"docker\": 1}'` for the simulator (a GPU "
                "node declares its GPUs itself); see docs/cluster.md",
            )
        task = ray.remote(ray_node.admit)
        settings, images = ray_node.recipe(self.docker), self.image_ids()
        refs = {node: task.options(**self._task_options(node)).remote(settings, images, spec) for node in nodes}
        answers = self._collect(refs, nodes)
        lacking = [node for node, adm in answers.items() if adm.missing and adm.refused and node not in self.refused]
        if lacking:  # ship the driver's exact images to the nodes that lack them, then ask those again
            shipped = [ray.put(self._saved_images(images))]
            again = {n: task.options(**self._task_options(n)).remote(settings, images, spec, shipped) for n in lacking}
            answers |= self._collect(again, nodes)
        for node, admission in answers.items():
            if admission.refused is None:
                self.admitted[node], self.capacity[node] = admission, nodes[node]
            else:
                self.refused[node] = self._entry(admission, "refused", nodes[node], admission.refused)
        return self._judge(nodes)

    def _collect(self, refs: dict[str, Any], nodes: dict[str, float]) -> dict[str, ray_node.Admission]:
        """Each node's admission; a node whose task fails is refused with the failure as its reason."""
        ray = _ray()
        answers = {}
        for node, ref in refs.items():
            try:
                answers[node] = ray.get(ref, timeout=ADMIT_TIMEOUT_S)
            except (ray.exceptions.RayError, HarnessError) as exc:
                self.refused[node] = ClusterNode(
                    node_id=node, hostname="?", status="refused", capacity=nodes[node], reason=str(exc)[:500]
                )
        return answers

    def _saved_images(self, images: dict[str, str]) -> bytes:
        """``docker save`` of the sweep's images by ID from the driver's engine (held in memory once)."""
        chunks: list[bytes] = []
        save_images(self.docker.client, sorted(set(images.values())), chunks.append)
        return b"".join(chunks)

    def _entry(self, adm: ray_node.Admission, status: Any, capacity: float, reason: str | None) -> ClusterNode:
        return ClusterNode(
            node_id=adm.node_id,
            hostname=adm.hostname,
            status=status,
            fingerprint_sha256=adm.fingerprint_sha256,
            capacity=capacity,
            reason=reason,
        )

    def _judge(self, nodes: dict[str, float]) -> PreparedModel:
        """One model digest across the admitted nodes, and one fingerprint unless ``across_hosts``."""
        if not self.admitted:
            reasons = "; ".join(f"{n[:12]}: {c.reason}" for n, c in self.refused.items())
            raise DockerError(f"every node of the cluster was refused for this sweep: {reasons}")
        first = self.admitted[sorted(self.admitted)[0]]
        assert first.model is not None
        for node, adm in list(self.admitted.items()):
            if adm.model is not None and adm.model.facts.digest != first.model.facts.digest:
                reason = (
                    f"holds {adm.model.facts.name} {adm.model.facts.digest[:19]}…, not {first.model.facts.digest[:19]}…"
                )
                self.refused[node] = self._entry(adm, "refused", nodes[node], reason)
                del self.admitted[node]
        prints = {adm.fingerprint_sha256 for adm in self.admitted.values()}
        if len(prints) > 1 and not self.across_hosts:
            listing = ", ".join(f"{a.hostname} {a.fingerprint_sha256[:12]}" for a in self.admitted.values())
            raise BadInputError(
                f"the cluster's nodes differ in environment ({listing}): one sweep needs one environment",
                hint="pass --across-hosts to group results per environment and report the spread between hosts",
            )
        return first.model

    def record(self, out: ArtifactDir) -> None:
        """Write cluster.json (merged with an earlier invocation's); a resume may not bring another environment."""
        self._out = out
        before = _read_record(out.root)
        if before is not None and not self.across_hosts:
            old = {n.fingerprint_sha256 for n in before.nodes if n.status != "refused" and n.fingerprint_sha256}
            new = {a.fingerprint_sha256 for a in self.admitted.values()}
            if old and old != new:
                raise BadInputError(
                    f"{out.root} was made on nodes of environment {sorted(old)[0][:12]}…, the cluster now has "
                    f"{sorted(new)[0][:12]}…: resuming would mix two environments",
                    hint="pass a new --out folder, or --across-hosts on a new sweep to compare hosts",
                )
        self._write(before)

    def _write(self, before: ClusterRecord | None = None) -> None:
        if self._out is None:
            return
        before = before if before is not None else _read_record(self._out.root)
        nodes = {n.node_id: n for n in (before.nodes if before else [])}
        for node, adm in self.admitted.items():
            nodes[node] = self._entry(adm, "admitted", self.capacity[node], None)
        nodes.update(self.refused)
        for node, reason in self.lost.items():
            nodes[node] = nodes[node].model_copy(update={"status": "lost", "reason": reason})
        record = ClusterRecord(resource=self.resource, across_hosts=self.across_hosts, nodes=list(nodes.values()))
        self._out.write_json(CLUSTER_FILE, record)

    def _pick(self) -> str:
        live = [n for n in self.admitted if n not in self.lost]
        if not live:
            raise DockerError("every admitted node of the cluster was lost", hint="start nodes again and resume")
        return min(live, key=lambda n: (self._load[n] / self.capacity[n], n))

    async def execute(self, run: Run, spec: Spec) -> RunOutcome:
        """Run on an admitted node; a node lost mid-run costs a recorded attempt and the run goes elsewhere."""
        ray = _ray()
        task = ray.remote(self.task_body)
        lost: list[LostAttempt] = []
        while True:
            node = self._pick()
            ref = task.options(**self._task_options(node)).remote(
                ray_node.recipe(self.docker), self.token, run, spec, self.admitted[node].run_node()
            )
            self._load[node] += 1
            self._inflight[run.run_id] = ref
            try:
                outcome: RunOutcome = await ref
            except asyncio.CancelledError:
                self._teardown()
                raise
            except ray.exceptions.RayTaskError as exc:  # the task itself raised: a run failure, not a lost node
                outcome = RunOutcome(error=f"ray task failed: {str(exc)[-500:]}")
            except ray.exceptions.RayError as exc:
                lost.append(LostAttempt(node_id=node, reason=f"{type(exc).__name__}: {str(exc)[:300]}", at=_now()))
                self.lost.setdefault(node, f"lost during run {run.run_id}: {type(exc).__name__}")
                self._write()
                continue
            finally:
                self._load[node] -= 1
                self._inflight.pop(run.run_id, None)
            outcome.lost_attempts = lost
            return outcome

    def _teardown(self) -> None:
        """Cancel every task in flight (each tears its stack down), then reap this sweep's stacks on live nodes."""
        if self._torn_down:
            return
        self._torn_down = True
        ray = _ray()
        refs = list(self._inflight.values())
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        with contextlib.suppress(Exception):
            ray.wait(refs, num_returns=len(refs), timeout=TEARDOWN_WAIT_S)
        self.reap(token=self.token)

    def reap(self, token: str | None) -> list[str]:
        """On every live admitted node: remove this sweep's stacks (``token``) and dead nodes' orphans."""
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        alive = {str(n["NodeID"]) for n in ray.nodes() if n.get("Alive")}
        task = ray.remote(ray_node.reap_here)
        refs = [
            task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False), num_cpus=0).remote(token)
            for n in self.admitted
            if n in alive
        ]
        removed: list[str] = []
        with contextlib.suppress(ray.exceptions.RayError):
            for names in ray.get(refs, timeout=TEARDOWN_WAIT_S):
                removed += names
        return removed

    def finish(self) -> None:
        """After the sweep: nothing of it may stay on a live engine; cluster.json gets the nodes lost meanwhile."""
        self.reap(token=self.token)
        self._write()


def _read_record(root: Path) -> ClusterRecord | None:
    path = root / CLUSTER_FILE
    return ClusterRecord.model_validate(load_json_doc(path)) if path.exists() else None
