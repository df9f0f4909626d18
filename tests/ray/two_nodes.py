"""A run on a two-node Ray cluster (both on this machine) that loses its second node
mid-run: run as a script by test_cluster.py, it prints a JSON report.

The cluster is Ray's own test cluster (``ray.cluster_utils.Cluster``): a head and a
worker node, each a raylet of its own, with health checks shortened so that the lost node
is declared dead in about two seconds rather than fifteen."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
import time
from typing import Any

from ray.cluster_utils import Cluster

import ray
import riverbed as rb
from riverbed.testing import Capture
from tests.ray.flows import add, expected_totals, key_of

EVENTS = 20_000


class Log(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def where(x: int) -> tuple[int, str]:
    """Slow enough that the run lasts seconds; says which node ran it."""
    time.sleep(0.00005)
    return x, ray.get_runtime_context().get_node_id()


def value(pair: tuple[int, str]) -> int:
    return pair[0]


def node_of(x: int) -> str:
    return str(ray.get_runtime_context().get_node_id())


def _boxed_nodes(address: str) -> set[str]:
    """Where a stage that needs resource ``gpu-box`` runs: its actors, and a workflow step."""
    seen = Capture()
    flow = rb.Flow("boxed")
    flow.source(range(100), name="numbers").map(node_of, name="boxed").sink(seen, name="out")
    boxed = {"boxed": rb.StageResources(resources={"gpu-box": 1})}
    runner = rb.RayRunner(address, parallelism=2, stages=boxed)
    flow.run(runner=runner, store=False, progress=False)
    step = rb.Flow("boxed-step")
    step.input().map(node_of, name="boxed").output()
    result = rb.run(step, 1, runner=runner, store=False)
    # A graph node is a step like any other: its type's "role" is the resource it needs.
    graph = rb.workflow_from_graph({"nodes": [{"id": "boxed", "type": "gpu"}]}, {"gpu": node_of})
    node = rb.run(graph, 1, runner=runner, store=False)
    return {*seen.items, result.output, node.output}


def main() -> dict[str, Any]:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "_system_config": {
                "health_check_initial_delay_ms": 0,
                "health_check_period_ms": 500,
                "health_check_failure_threshold": 4,
            },
        },
    )
    second = cluster.add_node(num_cpus=2, resources={"gpu-box": 2})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    boxed = _boxed_nodes(cluster.address)
    log = Log()
    logging.getLogger("riverbed").addHandler(log)
    nodes: set[str] = set()

    def seen_node(pair: tuple[int, str]) -> None:
        nodes.add(pair[1])

    totals = Capture()
    flow = rb.Flow("two-nodes")
    placed = flow.source(range(EVENTS), name="numbers").map(where, name="where")
    placed.sink(seen_node, name="nodes")
    placed.map(value, name="value").key_by(key_of, name="key").fold(0, add, name="total").sink(
        totals, name="out"
    )

    def remove_second_node() -> None:
        while len(nodes) < 2:  # both nodes at work
            time.sleep(0.05)
        cluster.remove_node(second, allow_graceful=False)

    remover = threading.Thread(target=remove_second_node, daemon=True)
    remover.start()
    with tempfile.TemporaryDirectory() as scratch:
        result = flow.run(
            runner=rb.RayRunner(cluster.address, parallelism=4),
            store=f"sqlite:///{scratch}/runs.db",
            checkpoint_events=2_000,
            batch_size=500,
            progress=False,
            raise_on_failure=False,
        )
    remover.join(timeout=5)
    report = {
        "ok": result.ok,
        "summary": result.summary(),
        "exact": dict(totals.items) == expected_totals(EVENTS),
        "nodes_used": len(nodes),
        "boxed_on_second_only": boxed == {second.node_id},
        "removed": not remover.is_alive(),
        "rollbacks": [line for line in log.lines if "rolling back" in line],
    }
    ray.shutdown()
    cluster.shutdown()
    return report


if __name__ == "__main__":
    import faulthandler

    faulthandler.dump_traceback_later(240, exit=True)  # a hang says where it hangs
    sys.stdout.write(json.dumps(main()) + "\n")
