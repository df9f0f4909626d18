"""What a process hears of changes to a store's runs (``Store.run_changes``): a run queued
wakes the waiters of its queue, a step run's change of status the waiters of that run;
on PostgreSQL from other processes too (LISTEN/NOTIFY), through a database restart, with
no connection kept once no one waits. An idle worker takes a queued run at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed._runtime import worker as worker_module
from riverbed._store.changes import Changes
from riverbed._store.postgres import listen
from riverbed._store.protocol import queue_topic, run_topic
from tests.durability.processes import child_env
from tests.pgcluster import own_cluster
from tests.store.conftest import make_run

ROOT = Path(__file__).resolve().parents[2]
GPU, CPU = [queue_topic("gpu")], [queue_topic("cpu")]


def _elsewhere(store_url: str, code: str) -> None:
    """Run ``code`` (with ``store`` open on ``store_url``) in another process, as another
    machine's worker or client would; on SQLite, in this process (SQLite hears only this
    process's changes), through a store object of its own."""
    prelude = "import riverbed as rb\nfrom tests.store.conftest import make_run\n"
    if store_url.startswith("sqlite"):
        with rb.open_store(store_url) as store:
            exec(prelude + code, {"store": store})
        return
    script = f"{prelude}store = rb.open_store({store_url!r})\n{code}\nstore.close()\n"
    subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=child_env(),
        check=True,
        timeout=60,
    )


def _waiting(changes: Any, topics: list[str], seen: int) -> tuple[threading.Thread, list[int]]:
    """A thread waiting (30 s at most) for ``topics`` to move past ``seen``."""
    heard: list[int] = []
    thread = threading.Thread(target=lambda: heard.append(changes.wait(topics, seen, 30)))
    thread.start()
    time.sleep(0.2)  # waiting (and, on PostgreSQL, listening) before the change is made
    return thread, heard


def _listening(changes: Any, backend: str) -> None:
    """On PostgreSQL, wait until the listener listens: it wakes every waiter once it does
    (what came before was missed), which must not be taken for the change under test."""
    if backend == "postgresql":
        seen = changes.mark([])
        assert changes.wait([], seen, 30) != seen, "the listener never connected"


def test_a_run_queued_wakes_the_waiters_of_its_queue(
    store: rb.Store, store_url: str, backend: str
) -> None:
    """A waiter of queue "gpu" wakes when a run is queued there (by another process on
    PostgreSQL); the mark of queue "cpu" does not move."""
    changes = store.run_changes()
    assert changes is store.run_changes()
    _listening(changes, backend)
    seen, other = changes.mark(GPU), changes.mark(CPU)
    thread, heard = _waiting(changes, GPU, seen)
    _elsewhere(store_url, "store.enqueue(make_run(queue='gpu'))")
    thread.join(30)
    assert heard, "the waiter never returned"
    assert heard[0] != seen, "the waiter slept its whole timeout"
    assert changes.mark(CPU) == other


def test_a_step_run_ending_wakes_the_waiters_of_that_run(
    store: rb.Store, store_url: str, backend: str
) -> None:
    """A step run (a run with a parent) that ends wakes whoever waits for it, in an
    event loop too (``wait_async``)."""
    step = make_run(run_id="parent.render.1", parent="parent", step="render")
    store.create_run(step)
    changes = store.run_changes()
    _listening(changes, backend)
    topics = [run_topic(step.run_id)]
    seen = changes.mark(topics)

    async def wait() -> int:
        waiting = asyncio.ensure_future(changes.wait_async(topics, seen, 30))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(
            _elsewhere,
            store_url,
            f"store.transition({step.run_id!r}, rb.RunStatus.SUCCEEDED, output=b'')",
        )
        return await waiting

    assert asyncio.run(wait()) != seen


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_listener_keeps_no_connection_once_no_one_waits(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL (SQLite has no listener): the listener runs while a waiter waits,
    and ends (its connection closed) once no one waited for ``IDLE`` seconds: a store
    never closed keeps no connection open for it. The next waiter starts another."""
    monkeypatch.setattr(listen, "IDLE", 0.3)
    with rb.open_store(store_url) as store:
        changes = store.run_changes()
        for _ in range(2):
            _listening(changes, "postgresql")  # a waiter started it, and it listened
            _until(lambda: store_url not in listen.Listeners._running, "the listener stopped")


@pytest.mark.slow
def test_changes_are_heard_again_after_a_database_restart() -> None:
    """The listener's connection is lost when the server restarts; it connects again, and
    a run queued by another process after the restart wakes the waiter."""
    with own_cluster() as cluster, rb.open_store(cluster.url) as store:
        changes = store.run_changes()
        _listening(changes, "postgresql")
        before = changes.mark([])
        cluster.restart(down=0.5)
        assert changes.wait([], before, 30) != before, "never listening again"
        seen = changes.mark(GPU)
        thread, heard = _waiting(changes, GPU, seen)
        _elsewhere(cluster.url, "store.enqueue(make_run(queue='gpu'))")
        thread.join(30)
        assert heard, "the waiter never returned"
    assert heard[0] != seen, "the waiter slept its whole timeout"


def test_an_idle_worker_takes_a_run_queued_elsewhere_at_once(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose next look at the queue is 10 minutes away takes a run queued by
    another process (on SQLite, by another store object of this process) at once."""
    monkeypatch.setattr(worker_module, "FIRST_POLL", 600.0)
    worker = rb.Worker(store_url, poll=600.0, max_runs=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    time.sleep(0.5)  # the worker found the queue empty and waits
    _elsewhere(
        store_url,
        "rb.schedule('tests.cli_runs_app:workflow', {'net': 1.0}, store=store)",
    )
    thread.join(60)
    assert not thread.is_alive(), "the worker slept on"
    assert [run.status for run in worker.done] == [rb.RunStatus.SUCCEEDED]


def test_waiters_of_other_topics_sleep_on() -> None:
    """A change wakes the waiters of its topic and of every topic (None) only."""
    changes = Changes()
    seen = changes.mark(CPU)
    changes.bump(queue_topic("gpu"))
    assert changes.wait(CPU, seen, 0.05) == seen
    changes.bump(None)
    assert changes.wait(CPU, seen, 0.05) != seen


def _until(done: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.1)
