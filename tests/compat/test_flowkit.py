"""The FlowKit dialect: the seed's quickstart runs with only its import line changed, and
the behaviours its document states (fan-in, retries, worker roles, worker failure
detection, cancel) hold, on a real store."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed.compat import flowkit
from riverbed.compat.flowkit import (
    BatchResult,
    Coordinator,
    CoordinatorConfig,
    RunContext,
    Worker,
    WorkerConfig,
)
from tests.compat import flowkit_app
from tests.durability.processes import child_env
from tests.store.conftest import backend, store_url

__all__ = ["backend", "store_url"]

ROOT = Path(__file__).resolve().parents[2]

QUICKSTART = """
import asyncio
from flowkit import Coordinator, CoordinatorConfig, WorkerConfig
from flowkit.worker import Worker
from your_handlers import MyHandler

# Start a coordinator
async def main():
    # Configure and start coordinator
    coord_config = CoordinatorConfig()
    coordinator = Coordinator(db=your_mongo_db, cfg=coord_config)
    await coordinator.start()

    # Configure and start worker
    worker_config = WorkerConfig(roles=["processor"])
    worker = Worker(
        db=your_mongo_db,
        cfg=worker_config,
        handlers={"processor": MyHandler()}
    )
    await worker.start()

    # Create a task with a simple graph
    graph = {
        "nodes": [
            {
                "node_id": "process_data",
                "type": "processor",
                "io": {"input_inline": {"data": "hello world"}}
            }
        ],
        "edges": []
    }

    task_id = await coordinator.create_task(params={}, graph=graph)
    print(f"Created task: {task_id}")

if __name__ == "__main__":
    asyncio.run(main())
"""

IMPORTS = {
    "from flowkit import Coordinator, CoordinatorConfig, WorkerConfig": (
        "from riverbed.compat.flowkit import Coordinator, CoordinatorConfig, WorkerConfig"
    ),
    "from flowkit.worker import Worker": "from riverbed.compat.flowkit import Worker",
    "from your_handlers import MyHandler": "from tests.compat.flowkit_app import MyHandler",
}


_started: list[Coordinator | Worker] = []


def stop_started() -> None:
    """Stop the coordinators and workers started in this process (the quickstart keeps
    no handle on its own)."""
    while _started:
        asyncio.run(_started.pop().stop())


@pytest.fixture(autouse=True)
def _stop_started(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Coordinators and workers a test started (in threads of this process) are stopped
    after it."""
    for kind in (Coordinator, Worker):
        original = kind.start

        async def start(self: Any, original: Any = original) -> None:
            _started.append(self)
            await original(self)

        monkeypatch.setattr(kind, "start", start)
    yield
    stop_started()


def node_runs(store: rb.Store, task_id: str) -> list[str]:
    """The ids of the step runs of task ``task_id``'s nodes."""
    return sorted(run.run_id for run in store.list_runs(limit=100) if run.parent == task_id)


def url_in(tmp_path: Path) -> str:
    """An SQLite store of the test's own."""
    return f"sqlite:///{tmp_path}/flowkit.db"


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    """Wait until ``predicate()``; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.02)


def test_quickstart_runs_with_only_its_import_lines_changed(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed's quickstart, imports aside, creates a task that its worker runs to the
    end; the task is a recorded riverbed run (SQLite and PostgreSQL)."""
    code = QUICKSTART
    for seed, ours in IMPORTS.items():
        assert seed in code
        code = code.replace(seed, ours)
    namespace: dict[str, Any] = {"__name__": "quickstart", "your_mongo_db": store_url}
    exec(compile(code, "quickstart.py", "exec"), namespace)
    asyncio.run(namespace["main"]())
    match = re.search(r"Created task: (\w+)", capsys.readouterr().out)
    assert match is not None
    task_id = match.group(1)

    async def finished() -> rb.RunRecord:
        coordinator = Coordinator(db=store_url, cfg=CoordinatorConfig())
        await coordinator.start()
        try:
            return await coordinator.wait_task(task_id)
        finally:
            await coordinator.stop()

    record = asyncio.run(finished())
    stop_started()  # before the store goes
    assert record.status is rb.RunStatus.SUCCEEDED, record.error
    with rb.open_store(store_url) as store:
        steps = store.steps(task_id)
        assert [step.stage for step in steps] == ["process_data"]
        import pickle

        output = pickle.loads(store.get_run(task_id).output)
    assert output == [[{"words": 1, "node": "process_data"}, {"words": 1, "node": "process_data"}]]


READ_THEN_SUM = {
    "nodes": [
        {"node_id": "read", "type": "read"},
        {"node_id": "sum", "type": "sum", "io": {"start_when": "first_batch"}},
    ],
    "edges": [["read", "sum"]],
}
"""A node whose batches a first-batch node reads."""


async def run_task(url: str, graph: dict[str, Any], *workers: Worker) -> rb.RunRecord:
    """The record of a task of ``graph`` once it ended, run by ``workers`` and a
    coordinator started for it."""
    coordinator = await started(url, *workers)
    return await coordinator.wait_task(await coordinator.create_task({}, graph))


async def started(url: str, *workers: Worker) -> Coordinator:
    """A started coordinator on ``url``, after starting ``workers``."""
    for worker in workers:
        await worker.start()
    coordinator = Coordinator(db=url)
    await coordinator.start()
    return coordinator


def test_fan_in_any_starts_on_the_first_upstream(tmp_path: Path) -> None:
    """fan_in "any": the join runs once, on the first upstream to finish, while the other
    is still running; "count:2" and "all" (depends_on) wait for that many."""
    join_started = threading.Event()
    seen: dict[str, list[str]] = {}

    def fast(loaded: Any) -> str:
        return "fast"

    def slow(loaded: Any) -> str:
        assert join_started.wait(10), "the join did not start before the slow branch ended"
        return "slow"

    def join(loaded: Any) -> list[str]:
        seen.setdefault("any", []).append(",".join(sorted(k for k in loaded if k != "input")))
        join_started.set()
        return sorted(loaded)

    url = url_in(tmp_path)
    worker = Worker(
        db=url,
        cfg=WorkerConfig(roles=["fast", "slow", "join"]),
        handlers={"fast": fast, "slow": slow, "join": join},
    )
    graph = {
        "nodes": [
            {"node_id": "f", "type": "fast"},
            {"node_id": "s", "type": "slow"},
            {"node_id": "j", "type": "join", "depends_on": ["f", "s"], "fan_in": "any"},
        ],
        "edges": [],
    }

    async def main() -> rb.RunRecord:
        coordinator = await started(url, worker)
        task_id = await coordinator.create_task(params={}, graph=graph)
        return await coordinator.wait_task(task_id)

    record = asyncio.run(main())
    assert record.status is rb.RunStatus.SUCCEEDED, record.error
    assert seen == {"any": ["f"]}
    with rb.open_store(url) as store:
        join_run = next(r for r in store.stage_runs(record.run_id) if r.stage == "j")
    assert join_run.skipped == 1  # the slow arrival, ignored and recorded


def test_retry_policy_retries_then_fails(tmp_path: Path) -> None:
    """retry_policy max=3: a node failing twice succeeds on its third attempt; with max=2
    the task fails, naming the node."""
    attempts: list[int] = []

    class Flaky:
        async def iter_batches(self, loaded: Any) -> Any:
            yield loaded

        async def process_batch(self, batch: Any, ctx: RunContext) -> BatchResult:
            attempts.append(1)
            if len(attempts) % 3 != 0:
                return BatchResult(success=False, error="not yet")
            return BatchResult(metrics={"attempt": len(attempts)})

    url = url_in(tmp_path)
    worker = Worker(db=url, cfg=WorkerConfig(roles=["flaky"]), handlers={"flaky": Flaky()})

    def graph(tries: int) -> dict[str, Any]:
        policy = {"max": tries, "backoff_sec": 0.01}
        node = {"node_id": "n", "type": "flaky", "retry_policy": policy, "io": {"input_inline": 1}}
        return {"nodes": [node], "edges": []}

    async def main() -> tuple[rb.RunRecord, rb.RunRecord]:
        coordinator = await started(url, worker)
        ok = await coordinator.wait_task(await coordinator.create_task({}, graph(3)))
        failed = await coordinator.wait_task(await coordinator.create_task({}, graph(2)))
        return ok, failed

    ok, failed = asyncio.run(main())
    assert ok.status is rb.RunStatus.SUCCEEDED
    assert failed.status is rb.RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.stage == "n"
    assert "a batch failed: not yet" in failed.error.message
    assert len(attempts) == 5


def test_a_node_runs_only_on_a_worker_serving_its_type(tmp_path: Path) -> None:
    """Each node runs on a worker whose roles include its type; a node whose type no
    worker serves waits until one starts."""
    ran_on: dict[str, str] = {}

    class Recorder:
        async def iter_batches(self, loaded: Any) -> Any:
            yield loaded

        async def process_batch(self, batch: Any, ctx: RunContext) -> bool:
            ran_on[ctx.node_id] = ctx.worker_id
            return True

    url = url_in(tmp_path)
    extractor = Worker(
        url, WorkerConfig(roles=["extract"], worker_id="w-extract"), {"extract": Recorder()}
    )
    loader = Worker(url, WorkerConfig(roles=["load"], worker_id="w-load"), {"load": Recorder()})
    reporter = Worker(
        url, WorkerConfig(roles=["report"], worker_id="w-report"), {"report": Recorder()}
    )
    graph = {
        "nodes": [
            {"node_id": "e", "type": "extract", "io": {"input_inline": 1}},
            {"node_id": "l", "type": "load"},
            {"node_id": "r", "type": "report"},
        ],
        "edges": [["e", "l"], ["l", "r"]],
    }

    async def main() -> rb.RunRecord:
        coordinator = await started(url, extractor, loader)
        task_id = await coordinator.create_task({}, graph)
        waiting = await coordinator.wait_task(task_id, timeout=1.0)
        assert waiting.status is rb.RunStatus.RUNNING  # no worker serves "report" yet
        assert "r" not in ran_on
        await reporter.start()
        return await coordinator.wait_task(task_id)

    record = asyncio.run(main())
    assert record.status is rb.RunStatus.SUCCEEDED, record.error
    assert ran_on == {"e": "w-extract", "l": "w-load", "r": "w-report"}


def test_cancel_task_stops_it_before_its_next_node(tmp_path: Path) -> None:
    """A task cancelled while a node runs ends CANCELLED; no node after it runs."""
    release = threading.Event()
    running = threading.Event()
    called: list[str] = []

    def first(loaded: Any) -> int:
        running.set()
        release.wait(10)
        return 1

    def second(loaded: Any) -> int:
        called.append("second")
        return 2

    url = url_in(tmp_path)
    worker = Worker(url, WorkerConfig(roles=["a", "b"]), {"a": first, "b": second})
    graph = {
        "nodes": [{"node_id": "x", "type": "a"}, {"node_id": "y", "type": "b"}],
        "edges": [["x", "y"]],
    }

    async def main() -> tuple[bool, rb.RunRecord]:
        coordinator = await started(url, worker)
        task_id = await coordinator.create_task({}, graph)
        await asyncio.to_thread(running.wait, 10)
        cancelled = await coordinator.cancel_task(task_id)
        release.set()
        await asyncio.sleep(0.3)
        return cancelled, await coordinator.get_task(task_id)

    cancelled, record = asyncio.run(main())
    assert cancelled
    assert record.status is rb.RunStatus.CANCELLED
    assert called == []


def test_bad_graphs_are_refused_naming_the_node_or_edge(tmp_path: Path) -> None:
    """create_task checks the graph: an edge to an unknown node, a bad fan-in, an
    unknown key are errors naming the culprit."""

    async def create(graph: dict[str, Any]) -> str:
        coordinator = Coordinator(db=url_in(tmp_path), cfg=CoordinatorConfig())
        await coordinator.start()
        return await coordinator.create_task({}, graph)

    with pytest.raises(rb.FlowDefinitionError, match=r"edge #0 \['a', 'zz'\] names 'zz'"):
        asyncio.run(create({"nodes": [{"node_id": "a", "type": "t"}], "edges": [["a", "zz"]]}))
    bad_fan_in = {"node_id": "b", "type": "t", "depends_on": ["a"], "fan_in": "most"}
    with pytest.raises(rb.FlowDefinitionError, match="node 'b': fan_in must be"):
        asyncio.run(create({"nodes": [{"node_id": "a", "type": "t"}, bad_fan_in]}))
    with pytest.raises(rb.FlowDefinitionError, match=r"node 'a' has unknown key\(s\) \['colour'\]"):
        asyncio.run(create({"nodes": [{"node_id": "a", "type": "t", "colour": 1}]}))


def test_a_killed_worker_is_detected_and_its_node_run_again(tmp_path: Path) -> None:
    """kill -9 the worker process while it runs a task's second node: once the node run's
    lease expires, another worker serving the type takes it over and the task finishes,
    without calling the node already recorded again; the task and its node runs are runs
    `riverbed runs list` shows."""
    url = url_in(tmp_path)
    graph = {
        "nodes": [
            {
                "node_id": "extract",
                "type": "extract",
                "io": {"input_inline": {"rows": [1, 2, 3], "dir": str(tmp_path)}},
            },
            {"node_id": "load", "type": "load", "depends_on": ["extract"]},
        ],
        "edges": [],
    }

    async def create() -> str:
        coordinator = Coordinator(db=url)
        await coordinator.start()
        return await coordinator.create_task({"day": 3}, graph)

    task_id = asyncio.run(create())
    env = child_env(RIVERBED_LEASE_SECONDS="1")
    doomed = subprocess.Popen(
        [sys.executable, "-m", "tests.compat.flowkit_app", url],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / "load-started").exists(), "the load node starting")
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.communicate()
    rescuer = Worker(
        url,
        WorkerConfig(roles=["extract", "load"], worker_id="rescuer"),
        {"extract": flowkit_app.extract, "load": flowkit_app.load},
    )

    async def finish() -> rb.RunRecord:
        coordinator = await started(url, rescuer)
        return await coordinator.wait_task(task_id)

    record = asyncio.run(finish())
    assert record.status is rb.RunStatus.SUCCEEDED, record.error
    assert flowkit_app.calls(tmp_path, "extract") == 1  # recorded: not called again
    assert flowkit_app.calls(tmp_path, "load") == 2  # the killed call, and the one after
    with rb.open_store(url) as store:
        load = store.get_run(f"{task_id}.load.1")  # the load node's run, claimed twice
        statuses = [(t.status, t.worker) for t in store.history(load.run_id)]
        assert node_runs(store, task_id) == [f"{task_id}.extract.1", f"{task_id}.load.1"]
    assert load.attempt == 2
    assert load.queue == "flowkit-role:load"
    assert (rb.RunStatus.CRASHED, statuses[1][1]) in statuses  # the doomed process's lease
    assert record.attempt == 1  # the coordinator did not die: it waited for the node
    listed = subprocess.run(
        [sys.executable, "-m", "riverbed", "runs", "list", "--store", url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert task_id in listed.stdout
    assert "flowkit-task" in listed.stdout


def test_first_batch_streams_between_stages(tmp_path: Path) -> None:
    """A node with io.start_when "first_batch" processes each batch of its upstream node
    as soon as that batch is processed (before the upstream makes its second); both
    nodes are recorded steps of the task."""
    order: list[str] = []

    class Reader:
        async def iter_batches(self, loaded: Any) -> Any:
            for start in range(0, 6, 2):
                if start:
                    order.append(f"read {start // 2} after {order[-1]}")
                yield list(range(start, start + 2))

        async def process_batch(self, batch: list[int], ctx: RunContext) -> BatchResult:
            order.append(f"{ctx.node_id} {batch}")
            return BatchResult(metrics={"rows": len(batch)})

    class Summer:
        async def process_batch(self, batch: list[int], ctx: RunContext) -> BatchResult:
            order.append(f"{ctx.node_id} {batch}")
            return BatchResult(metrics={"sum": sum(batch)})

    url = url_in(tmp_path)
    worker = Worker(url, WorkerConfig(roles=["read", "sum"]), {"read": Reader(), "sum": Summer()})
    record = asyncio.run(run_task(url, READ_THEN_SUM, worker))
    assert record.status is rb.RunStatus.SUCCEEDED, record.error
    assert order[:4] == ["read [0, 1]", "sum [0, 1]", "read 1 after sum [0, 1]", "read [2, 3]"]
    import pickle

    assert pickle.loads(record.output) == [[{"sum": 1}, {"sum": 5}, {"sum": 9}]]
    with rb.open_store(url) as store:
        assert sorted(step.stage for step in store.steps(record.run_id)) == ["read", "sum"]


def test_a_task_run_without_a_store_fails_clearly() -> None:
    """A task's workflow run with no store to queue its nodes in fails naming the node
    and the fix, instead of waiting for ever."""
    graph = {"nodes": [{"node_id": "n", "type": "processor"}], "edges": []}
    result = rb.run(flowkit.task_flow(graph, {}, "t-1"), {}, store=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert "stage 'n' runs on queue 'flowkit-role:processor'" in result.error.message
    assert "run the workflow with a store" in result.error.message


def _process(url: str, mode: str, **env: str) -> subprocess.Popen[str]:
    """A process of ``flowkit_app`` in ``mode``, once it has started its component."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.compat.flowkit_app", url, mode],
        cwd=ROOT,
        env=child_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "started", process.communicate()[1]
    return process


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate()


def test_each_node_runs_in_the_process_of_a_worker_serving_its_type(store_url: str) -> None:
    """Roles across processes: the extract node goes to the other process's worker (the
    only one serving "extract"), the load node to this process's; neither process runs
    the other's type (SQLite and PostgreSQL)."""
    url = store_url
    other = _process(url, "extract")
    loads: list[int] = []

    def load(loaded: Any) -> int:
        loads.append(os.getpid())
        return loaded["extract"]["pid"]

    worker = Worker(url, WorkerConfig(roles=["load"]), {"load": load})
    graph = {
        "nodes": [
            {"node_id": "extract", "type": "extract", "io": {"input_inline": [1, 2]}},
            {"node_id": "load", "type": "load", "depends_on": ["extract"]},
        ]
    }

    async def main() -> rb.RunRecord:
        coordinator = await started(url, worker)
        return await coordinator.wait_task(await coordinator.create_task({}, graph))

    try:
        record = asyncio.run(main())
    finally:
        _kill(other)
        stop_started()  # before the store goes
    assert record.status is rb.RunStatus.SUCCEEDED, record.error
    import pickle

    assert pickle.loads(record.output) == [other.pid]  # extract ran in the other process
    assert loads == [os.getpid()]
    with rb.open_store(url) as store:
        runs = {r.run_id: r for r in store.list_runs(limit=10) if r.parent == record.run_id}
    assert runs[f"{record.run_id}.extract.1"].worker != runs[f"{record.run_id}.load.1"].worker


def test_a_killed_coordinators_task_is_taken_over_without_running_a_node_twice(
    store_url: str,
) -> None:
    """kill -9 the coordinator while a node of its task runs on a worker: once the task's
    lease expires, another coordinator takes the task over, waits for the node run in
    flight instead of queueing it again, and finishes the task (attempt 2; SQLite and
    PostgreSQL)."""
    url = store_url
    running, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(loaded: Any) -> str:
        calls.append("slow")
        running.set()
        assert release.wait(20)
        return "done"

    worker = Worker(url, WorkerConfig(roles=["slow", "after"]), {"slow": slow, "after": len})
    graph = {
        "nodes": [
            {"node_id": "s", "type": "slow"},
            {"node_id": "a", "type": "after", "depends_on": ["s"]},
        ]
    }
    doomed = _process(url, "coordinator", RIVERBED_LEASE_SECONDS="1")

    async def create() -> str:
        await worker.start()
        client = Coordinator(db=url, cfg=CoordinatorConfig(max_parallel_tasks=0))
        await client.start()  # creates the task, leaves it to the doomed coordinator
        return await client.create_task({}, graph)

    task_id = asyncio.run(create())
    try:
        assert running.wait(20), "the slow node never started"
    finally:
        _kill(doomed)
    release.set()

    async def finish() -> rb.RunRecord:
        coordinator = Coordinator(db=url)
        await coordinator.start()
        return await coordinator.wait_task(task_id)

    try:
        record = asyncio.run(finish())
        with rb.open_store(url) as store:
            nodes = node_runs(store, task_id)
    finally:
        stop_started()  # before the store goes
    assert record.status is rb.RunStatus.SUCCEEDED, record.error
    assert record.attempt == 2
    assert calls == ["slow"]  # waited for, not queued again
    assert nodes == [f"{task_id}.a.1", f"{task_id}.s.1"]


def test_a_failed_task_is_resumed_from_a_shell(tmp_path: Path) -> None:
    """A task is a run with a target: `riverbed runs resume TASK` in a shell (no
    coordinator there) rebuilds it, sends its failed node to the workers again and
    finishes it, replaying the node already recorded."""
    url = url_in(tmp_path)
    calls: list[str] = []

    def first(loaded: Any) -> int:
        calls.append("first")
        return 1

    def second(loaded: Any) -> int:
        calls.append("second")
        if calls.count("second") == 1:
            raise RuntimeError("not yet")
        return loaded["x"] + 1

    worker = Worker(
        url, WorkerConfig(roles=["first", "second"]), {"first": first, "second": second}
    )
    graph = {
        "nodes": [
            {"node_id": "x", "type": "first"},
            {"node_id": "y", "type": "second", "depends_on": ["x"]},
        ]
    }

    async def fail_once() -> rb.RunRecord:
        coordinator = await started(url, worker)
        failed = await coordinator.wait_task(await coordinator.create_task({}, graph))
        await coordinator.stop()  # the shell resumes it, not a coordinator
        return failed

    failed = asyncio.run(fail_once())
    assert failed.status is rb.RunStatus.FAILED
    assert failed.error is not None
    assert (failed.error.stage, failed.error.error_type) == ("y", "RuntimeError")
    assert failed.error.message == "not yet"  # the node's own error, from its worker
    resumed = subprocess.run(
        [sys.executable, "-m", "riverbed", "runs", "resume", failed.run_id, "--store", url],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    with rb.open_store(url) as store:
        record = store.get_run(failed.run_id)
        nodes = node_runs(store, failed.run_id)
    assert record.status is rb.RunStatus.SUCCEEDED
    assert calls == ["first", "second", "second"]
    assert nodes == [f"{failed.run_id}.x.1", f"{failed.run_id}.y.1", f"{failed.run_id}.y.2"]


def test_a_first_batch_node_runs_on_its_upstream_nodes_worker(tmp_path: Path) -> None:
    """A first-batch node runs in its upstream node's step, on the worker that runs it:
    when that worker does not serve its type too, the task fails saying so."""
    url = url_in(tmp_path)

    class Reader:
        async def iter_batches(self, loaded: Any) -> Any:
            yield [1, 2]

        async def process_batch(self, batch: list[int], ctx: RunContext) -> bool:
            return True

    worker = Worker(url, WorkerConfig(roles=["read"]), {"read": Reader()})
    record = asyncio.run(run_task(url, READ_THEN_SUM, worker))
    assert record.status is rb.RunStatus.FAILED
    assert record.error is not None
    assert "node 'sum': no FlowKit Worker of this process serves type 'sum'" in (
        record.error.message
    )
    assert "give that worker role 'sum' too" in record.error.message
