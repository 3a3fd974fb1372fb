"""A real local Ray cluster for the tests: a head and worker nodes as processes of this machine.

Each node declares one unit of the ``docker`` resource (the simulator's claim) and a tiny CPU count and object
store; all of them share this machine's one Docker engine. Node death is detected within a few seconds (the
cluster's health check is tightened), so a killed worker is noticed while the sweep still runs.

Run as a script it keeps a three-node cluster up and prints its address (for trying ``--executor ray`` by hand).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

OBJECT_STORE_BYTES = 80 * 2**20
NODE_ARGS: dict[str, Any] = {"num_cpus": 1, "resources": {"docker": 1}, "object_store_memory": OBJECT_STORE_BYTES}
FAST_DEATH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3, "health_check_timeout_ms": 1000}


@contextmanager
def local_cluster(workers: int = 2) -> Iterator[Any]:
    """Head + ``workers`` nodes; yields the ``ray.cluster_utils.Cluster`` (``.address``, ``.worker_nodes``)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={**NODE_ARGS, "include_dashboard": False, "_system_config": FAST_DEATH},
    )
    try:
        for _ in range(workers):
            cluster.add_node(**NODE_ARGS)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def kill_worker(cluster: Any) -> None:
    """SIGKILL one worker node's processes (raylet, object store, its task workers): a host that dies."""
    node = next(iter(cluster.worker_nodes))
    cluster.remove_node(node, allow_graceful=False)


if __name__ == "__main__":
    with local_cluster(int(sys.argv[1]) if len(sys.argv) > 1 else 2) as running:
        print(running.address, flush=True)
        while True:
            time.sleep(3600)
