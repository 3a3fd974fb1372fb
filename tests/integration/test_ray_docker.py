"""``reproduce --executor ray`` on a real local Ray cluster (head + two workers, one shared Docker engine).

One sweep goes through everything a cluster does to it: runs spread over the three nodes, a worker killed
while it holds a run (the run is retried elsewhere, recorded, no completed run lost), the driver interrupted
(tasks cancelled, stacks torn down), the sweep resumed to completion, the folder verified. A TR114 sweep runs
the Rust agents the same way. Everything checked on the engine is scoped to the cluster's own stack names.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.artifacts import ArtifactDir, load_run_result
from harness.cli import main
from harness.containers.stack import LABEL_KIT, LABEL_PROJECT
from harness.run.ray_node import PROJECT_PREFIX
from tests.integration.conftest import KitImages
from tests.integration.ray_cluster import kill_worker, local_cluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SIM = ["reproduce", "--backend", "sim", "--runs", "1", "--time-scale", "0.02", "--executor", "ray"]
TR110_CONFIGS, TR110_RUNS = "^00[1-5]$", 15
"""Five configs (a protocol run and two isolated baselines each): enough runs that the interrupt lands
mid-sweep. With nine, a sweep on faster stacks finished before the test could interrupt it."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster(workers=2) as running:
        yield running


def _cluster_stacks(client: docker.DockerClient, before: frozenset[str] = frozenset()) -> list[str]:
    """Containers and networks of cluster sweeps (``cfkr-…`` projects) on the engine, less those that were there
    ``before`` the test (another sweep on this engine, or an earlier run's, is not this test's to judge)."""
    label = {"label": f"{LABEL_KIT}=1"}
    items = [*client.containers.list(all=True, filters=label), *client.networks.list(filters=label)]
    names = {(i.attrs.get("Config") or {}).get("Labels", {}).get(LABEL_PROJECT, "") for i in items}
    names |= {(i.attrs.get("Labels") or {}).get(LABEL_PROJECT, "") for i in items}
    return sorted(n for n in names if n and n.startswith(PROJECT_PREFIX) and n not in before)


def _sweep(cluster: Any, args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _wait_runs(out: Path, proc: subprocess.Popen[bytes], count: int, timeout_s: float = 420) -> dict[str, bytes]:
    deadline = time.monotonic() + timeout_s
    while len(done := sorted(out.glob("runs/*/run.json"))) < count:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else f"exited {proc.returncode}")
        assert time.monotonic() < deadline, f"fewer than {count} runs completed in time"
        time.sleep(0.5)
    return {p.parent.name: p.read_bytes() for p in done}


def _wait_lost(out: Path, proc: subprocess.Popen[bytes], victim: str, timeout_s: float = 300) -> str:
    """The run the killed node held, once the driver has marked the node lost in cluster.json."""
    deadline = time.monotonic() + timeout_s
    while True:
        if (out / "cluster.json").exists():
            nodes = {n["node_id"]: n for n in json.loads((out / "cluster.json").read_text())["nodes"]}
            if nodes.get(victim, {}).get("status") == "lost":
                return str(nodes[victim]["reason"]).split("lost during run ", 1)[1].split(":", 1)[0]
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the killed node was never marked lost"
        time.sleep(0.5)


def test_tr110_on_three_nodes_survives_a_killed_worker_an_interrupt_and_resumes(
    tmp_path: Path, cluster: Any, docker_client: docker.DockerClient, kit_images: KitImages
) -> None:
    before = frozenset(_cluster_stacks(docker_client))
    out = tmp_path / "tr110-ray"
    args = [*SIM, "--report", "tr110", "--configs", TR110_CONFIGS, "--out", str(out)]
    proc = _sweep(cluster, args)
    try:
        before_kill = _wait_runs(out, proc, 1)
        victim = next(iter(cluster.worker_nodes)).node_id
        kill_worker(cluster)
        retried = _wait_lost(out, proc, victim)
        _wait_runs(out, proc, len(before_kill) + 2)
        while not (out / "runs" / retried / "run.json").exists():  # the lost run, made again on another node
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # the sweep tears down and exits 143 (SIGTERM), as without Ray
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr.decode()[-3000:]
    assert _cluster_stacks(docker_client, before) == [], "the interrupted sweep left stacks behind"
    for run_id, body in before_kill.items():  # a completed run is never lost or rewritten
        assert (out / "runs" / run_id / "run.json").read_bytes() == body
    assert not list((out / "runs").glob(".*")), "no half-written run folder is left"
    interrupted = ArtifactDir(out).completed_run_ids()
    assert len(interrupted) < TR110_RUNS, "the sweep ended before the interrupt: give it more runs"

    resumed = _sweep(cluster, args)
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr.decode()[-3000:]
    assert f"({TR110_RUNS - len(interrupted)} this time" in stdout.decode()  # results on stdout, diagnostics on stderr
    results = [load_run_result(p) for p in sorted(out.glob("runs/*/run.json"))]
    assert len(results) == TR110_RUNS and all(r.status == "ok" for r in results)
    assert all(r.node is not None and r.node.node_id and r.node.fingerprint_sha256 for r in results)
    assert len({r.node.node_id for r in results if r.node}) >= 2, "runs were spread over the nodes"
    lost = [a for r in results for a in r.lost_attempts]
    assert lost and {a.node_id for a in lost} == {victim}, "the killed worker's in-flight run was retried elsewhere"
    again = next(r for r in results if r.run.run_id == retried)
    assert again.lost_attempts and again.node and again.node.node_id != victim
    nodes = {n["node_id"]: n for n in json.loads((out / "cluster.json").read_text())["nodes"]}
    assert nodes[victim]["status"] == "lost" and len(nodes) == 3
    assert main(["verify", str(out)]) == 0
    assert (out / "report" / "hosts.json").exists()
    assert _cluster_stacks(docker_client, before) == []


def test_tr114_rust_agents_run_on_the_cluster(
    tmp_path: Path, cluster: Any, docker_client: docker.DockerClient, kit_images: KitImages
) -> None:
    before = frozenset(_cluster_stacks(docker_client))
    out = tmp_path / "tr114-ray"
    args = [*SIM, "--report", "tr114", "--configs", "^00[12]$", "--no-isolated", "--out", str(out)]
    proc = _sweep(cluster, args)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    results = [load_run_result(p) for p in sorted(out.glob("runs/*/run.json"))]
    assert len(results) == 2 and all(r.status == "ok" and r.run.language == "rust" for r in results)
    assert all(r.node is not None for r in results)
    assert main(["verify", str(out)]) == 0
    assert _cluster_stacks(docker_client, before) == []


def test_a_cluster_without_the_docker_resource_is_bad_input(tmp_path: Path, kit_images: KitImages) -> None:
    """A local Ray that declares no ``docker`` unit cannot take a simulated run: exit 2, nothing written."""
    from harness.run.ray_executor import RayExecutor

    assert RayExecutor.__doc__  # the module imports without a cluster
    out = tmp_path / "never"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    code = (
        "import ray, sys; from harness.cli import main; "
        "ray.init(address='local', num_cpus=1, object_store_memory=80 * 2**20, include_dashboard=False); "
        f"sys.exit(main({[*SIM, '--report', 'tr110', '--configs', '^001$', '--out', str(out)]!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert proc.returncode == 2, proc.stderr.decode()[-2000:]
    assert "declares the docker resource" in proc.stderr.decode()
    assert not out.exists()


def test_a_node_that_lacks_the_images_loads_the_drivers_and_one_with_another_build_is_refused(
    cluster: Any, docker_client: docker.DockerClient, kit_images: KitImages
) -> None:
    """Admission with the driver's ``docker save`` shipped through the object store (run as a task on a node)."""
    import ray

    from harness.containers.images import save_images
    from harness.run.ray_node import admit

    want = docker_client.images.get(kit_images.harness_tag).id
    alias = f"cfk-ray-test/harness:{os.getpid()}"  # a tag no engine here has: the node "lacks" the image
    settings = {"harness_image": alias, "kit_version": "test", "seed": 1, "time_scale": 1.0}
    chunks: list[bytes] = []
    save_images(docker_client, [want], chunks.append)
    ray.init(address=cluster.address, runtime_env={"working_dir": str(ROOT), "excludes": ["artifacts", ".git"]})
    try:
        task = ray.remote(admit).options(resources={"docker": 1}, num_cpus=0)
        refused = ray.get(task.remote(settings, {"harness": want}, None))
        assert refused.missing == ("harness",) and "not on this node's engine" in (refused.refused or "")
        shipped = [ray.put(b"".join(chunks))]
        loaded = ray.get(task.remote(settings, {"harness": want}, None, shipped))
        assert loaded.refused is None and docker_client.images.get(alias).id == want
        other = ray.get(task.remote(settings, {"harness": "sha256:" + "0" * 64}, None, shipped))
        assert other.refused and "another build" in other.refused and other.missing == ()
    finally:
        ray.shutdown()
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(alias)  # the test's own tag only; the image stays
