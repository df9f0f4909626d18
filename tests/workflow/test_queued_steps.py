"""Workflow steps on named queues: a stage with ``queue=`` runs as a step run that only a
worker serving that queue takes, in its own process, and the workflow records its output
as the step (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from tests.durability.processes import child_env
from tests.workflow import queued_app

ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.workflow.queued_app:render_job"


def _worker(store_url: str, *queues: str) -> subprocess.Popen[str]:
    """A `riverbed worker` process serving ``queues``, until it has taken one run (not
    until its queue is idle: on a loaded machine, that run may take seconds to come)."""
    options = [option for queue in queues for option in ("--queue", queue)]
    return subprocess.Popen(
        [sys.executable, "-m", "riverbed", "worker", "--store", store_url, *options,
         "--poll", "0.05", "--max-runs", "1"],
        cwd=ROOT,
        env=child_env(),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_a_step_on_a_queue_runs_on_a_worker_of_that_queue(store_url: str) -> None:
    """`render` (queue "gpu") runs in the worker process serving "gpu", `prepare` in the
    workflow's own; both are the workflow's recorded steps, and the step run is a run of
    its own, in queue "gpu", naming its parent and step."""
    gpu = _worker(store_url, "gpu")
    result = rb.run(queued_app.render_job, {"name": "teapot"}, store=store_url)
    _, err = gpu.communicate(timeout=60)
    assert gpu.returncode == 0, err
    assert result.status is rb.RunStatus.SUCCEEDED, result.error
    assert result.output["prepared_by"] == os.getpid()
    assert result.output["rendered_by"] == gpu.pid
    assert [step.stage for step in result.steps] == ["prepare", "render"]
    assert result.stages["render"].events_in == 1
    with rb.open_store(store_url) as store:
        step_run = store.get_run(f"{result.run_id}.render.1")
    assert (step_run.queue, step_run.parent, step_run.step) == ("gpu", result.run_id, "render")
    assert step_run.status is rb.RunStatus.SUCCEEDED
    assert step_run.target == TARGET


def test_a_failed_step_run_fails_the_workflow_and_a_resume_queues_it_again(
    store_url: str, tmp_path: Path, on_runner: str
) -> None:
    """The step run's error is the workflow's (its type and message); resumed after the
    fix, the workflow replays `prepare` and queues `render` again (step run .2). On each
    runner: the workflow's and the worker's."""
    flag = tmp_path / "broken"
    flag.touch()
    job = {"name": "kettle", "fail_while": str(flag)}
    worker = rb.Worker(store_url, queues=["gpu"], max_runs=2)  # step runs .1 and .2
    gpu = threading.Thread(target=worker.run, daemon=True)
    gpu.start()
    failed = rb.run(queued_app.render_job, job, store=store_url)
    assert failed.status is rb.RunStatus.FAILED
    assert failed.error is not None
    assert (failed.error.stage, failed.error.error_type) == ("render", "ValueError")
    assert "no GPU memory for kettle" in failed.error.message
    flag.unlink()
    resumed = rb.run(queued_app.render_job, store=store_url, resume=failed.run_id)
    gpu.join(30)
    assert not gpu.is_alive()
    assert resumed.status is rb.RunStatus.SUCCEEDED, resumed.error
    assert resumed.replayed == ("prepare",)
    with rb.open_store(store_url) as store:
        runs = {run.run_id: run.status for run in store.list_runs(flow="render-job")}
        step_run = store.get_run(f"{failed.run_id}.render.2")
        assert (step_run.runner or "").startswith(on_runner)  # the worker's runner ran it
        assert (store.get_run(failed.run_id).runner or "").startswith(on_runner)
    assert runs[f"{failed.run_id}.render.1"] is rb.RunStatus.FAILED
    assert runs[f"{failed.run_id}.render.2"] is rb.RunStatus.SUCCEEDED
    with pytest.raises(ValueError, match=f"is step 'render' of run {failed.run_id}"):
        rb.run(queued_app.render_job, store=store_url, rerun_of=f"{failed.run_id}.render.2")


def test_queues_are_checked_when_the_flow_is_built_or_run(store_url: str) -> None:
    """A queue that is no name, a queue on a stream's stage, on a first-batch graph node,
    or a queued step of a run without a store or without a target: each is refused
    saying why."""
    flow = rb.Flow("bad-name")
    with pytest.raises(rb.FlowDefinitionError, match="queue: a queue name is"):
        flow.input().map(queued_app.render, queue="two words")
    stream = rb.Flow("stream")
    stream.source([1]).map(str, queue="gpu").sink(print)
    with pytest.raises(rb.FlowDefinitionError, match="queue='gpu', which is for the steps"):
        stream.validate()
    graph = {
        "nodes": [
            {"id": "read", "type": "read"},
            {"id": "sum", "type": "sum", "start": "first_batch", "queue": "gpu"},
        ],
        "edges": [["read", "sum"]],
    }

    def read(spec: object) -> object:
        yield [1]

    with pytest.raises(rb.FlowDefinitionError, match="give the queue to 'read'"):
        rb.workflow_from_graph(graph, {"read": read, "sum": sum})
    nowhere = rb.run(queued_app.render_job, {"name": "x"}, store=False)
    assert nowhere.error is not None
    assert "run the workflow with a store" in nowhere.error.message
    local = rb.Flow("no-target")
    local.input().map(queued_app.render, queue="gpu").output()
    orphan = rb.run(local, {"name": "x"}, store=store_url)
    assert orphan.error is not None
    assert "whose workers load the workflow by its target" in orphan.error.message


def test_a_cancelled_workflow_cancels_its_step_run_in_flight(
    store_url: str, tmp_path: Path
) -> None:
    """`riverbed runs cancel` of a workflow waiting for its step run: the workflow notices
    (its lease) and cancels the step run too; both end CANCELLED, and the step run's
    worker records nothing more of it."""
    flag = tmp_path / "hold"
    flag.touch()
    env = child_env(RIVERBED_LEASE_SECONDS="1")
    gpu = _worker(store_url, "gpu")
    job = json.dumps({"name": "vase", "hold_while": str(flag)})
    parent = subprocess.Popen(
        [sys.executable, "-m", "riverbed", "run", TARGET, "--input", job, "--store", store_url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with rb.open_store(store_url) as store:
            step = _wait_for(lambda: _running_step(store), "the step run running")
            cancelled = subprocess.run(
                [sys.executable, "-m", "riverbed", "runs", "cancel", step.parent or "",
                 "--store", store_url],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert cancelled.returncode == 0, cancelled.stderr
            _wait_for(
                lambda: store.get_run(step.run_id).status is rb.RunStatus.CANCELLED,
                "the step run cancelled",
            )
            flag.unlink()  # the step's call returns; its run stays CANCELLED
            parent.communicate(timeout=60)
            gpu.communicate(timeout=60)
            assert store.get_run(step.parent or "").status is rb.RunStatus.CANCELLED
            assert store.get_run(step.run_id).status is rb.RunStatus.CANCELLED
    finally:
        for process in (parent, gpu):
            if process.poll() is None:
                process.kill()
                process.communicate()


def test_a_worker_told_to_stop_while_its_workflow_waits_puts_the_workflow_back(
    store_url: str,
) -> None:
    """SIGTERM to the worker running a workflow that waits for its step run (no worker
    serves "gpu" yet): the worker stops without waiting for the step, the workflow run
    goes back into the queue and its step run stays queued; run again later, the workflow
    finds that step run (no second one is queued) and succeeds."""
    with rb.open_store(store_url) as store:
        run_id = rb.schedule(TARGET, {"name": "lamp"}, store=store)
        worker = _worker(store_url)
        try:
            step = _wait_for(lambda: _find(store, f"{run_id}.render.1"), "the step run queued")
            assert step.status is rb.RunStatus.SCHEDULED
            worker.terminate()
            _, err = worker.communicate(timeout=30)  # waited for the step: never returned
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
        assert store.get_run(run_id).status is rb.RunStatus.SCHEDULED, err
        assert store.get_run(step.run_id).status is rb.RunStatus.SCHEDULED
        for queues in (["gpu"], ["default"]):
            rb.Worker(store, queues=queues, idle_exit=0.5, poll=0.05).run()
        assert store.get_run(step.run_id).status is rb.RunStatus.SUCCEEDED
        done = store.get_run(run_id)
        assert done.status is rb.RunStatus.SUCCEEDED, done.error
        steps = [run.run_id for run in store.list_runs(flow="render-job") if run.step]
        assert steps == [step.run_id]


def _find(store: rb.Store, run_id: str) -> rb.RunRecord | None:
    try:
        return store.get_run(run_id)
    except rb.RunNotFoundError:
        return None


def _running_step(store: rb.Store) -> rb.RunRecord | None:
    return next(
        (
            run
            for run in store.list_runs(flow="render-job")
            if run.step and run.status.value == "running"
        ),
        None,
    )


def _wait_for(found: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := found()):
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)
    return value
