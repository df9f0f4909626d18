"""``rb.schedule``: a run put into a named queue of the store from Python, and run by a
worker serving that queue (SQLite and PostgreSQL)."""

from __future__ import annotations

import pickle

import pytest

import riverbed as rb
from tests import cli_runs_app
from tests.store.conftest import backend, store_url

__all__ = ["backend", "store_url"]


def test_a_scheduled_target_is_run_by_a_worker_of_its_queue(store_url: str) -> None:
    """A target with its input and queue: the worker of that queue runs it to its end;
    a worker of the default queue leaves it alone."""
    run_id = rb.schedule(
        "tests.cli_runs_app:workflow", {"net": 10.0}, store=store_url, queue="taxes"
    )
    with rb.open_store(store_url) as store:
        queued = store.get_run(run_id)
        assert (queued.status, queued.queue) == (rb.RunStatus.SCHEDULED, "taxes")
        assert queued.target == "tests.cli_runs_app:workflow"
        assert queued.flow == "taxes"
        assert queued.input_repr == "{'net': 10.0}"
        assert rb.Worker(store, idle_exit=0).run() == 0  # serves "default" only
        assert rb.Worker(store, queues=["taxes"], idle_exit=0).run() == 1
        done = store.get_run(run_id)
    assert done.status is rb.RunStatus.SUCCEEDED
    assert done.output is not None
    assert pickle.loads(done.output) == [{"net": 10.0, "total": 12.0}]


def test_a_flow_is_scheduled_under_the_module_attribute_it_is(store_url: str) -> None:
    """A Flow given as such records the target it can be loaded from; a function target
    is called with the params now (and recorded with them), under the id given."""
    first = rb.schedule(cli_runs_app.workflow, {"net": 1.0}, store=store_url)
    second = rb.schedule(
        "tests.cli_runs_app:up_to", store=store_url, params={"limit": 3}, run_id="mine"
    )
    with rb.open_store(store_url) as store:
        assert store.get_run(first).target == "tests.cli_runs_app:workflow"
        made = store.get_run(second)
    assert (made.run_id, made.flow, made.params) == ("mine", "up-to", {"limit": 3})
    with pytest.raises(rb.DuplicateRunError):
        rb.schedule("tests.cli_runs_app:up_to", store=store_url, params={"limit": 3}, run_id="mine")


def test_what_cannot_be_scheduled_fails_at_once_saying_why(store_url: str) -> None:
    """A target that does not load, params that are not JSON, a queue name that is not
    one, no store: each is refused when scheduling, not later in a worker."""
    with pytest.raises(rb.TargetError):
        rb.schedule("tests.cli_runs_app:nothing_here", store=store_url)
    with pytest.raises(ValueError, match="params must be JSON-able"):
        rb.schedule(cli_runs_app.workflow, store=store_url, params={"when": object()})
    with pytest.raises(ValueError, match="a queue name is a non-empty string"):
        rb.schedule(cli_runs_app.workflow, store=store_url, queue="two words")
    with pytest.raises(ValueError, match="a scheduled run waits in a store"):
        rb.schedule(cli_runs_app.workflow, store=False)  # type: ignore[arg-type]
    with rb.open_store(store_url) as store:
        assert store.list_runs() == []


def test_a_worker_looks_again_soon_after_a_run_then_less_often(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle worker's waits between claims start short after a run (the next run of a
    burst, or the next queued step of a workflow, is taken at once) and double up to
    ``poll``; a run taken starts the waits short again."""
    waits: list[float] = []
    worker = rb.Worker(store_url, poll=1.0, max_runs=2)

    def sleep(seconds: float, topics: list[str], seen: int) -> None:
        waits.append(seconds)
        if len(waits) in (7, 9):  # the queue stayed empty this long: a run comes
            rb.schedule(cli_runs_app.workflow, {"net": 1.0}, store=worker.store)

    monkeypatch.setattr(worker, "_sleep", sleep)
    assert worker.run() == 2
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 0.05, 0.1]
