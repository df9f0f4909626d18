"""The run queue: enqueue, claim, leases; with several real processes on every backend."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from tests.store.conftest import NOW
from tests.store.conftest import make_run as _make_run


def make_run(**fields: Any) -> rb.RunRecord:
    """A run a worker could load: it has a target (expired runs without one are left to
    Python, see the last test)."""
    return _make_run(**{"target": "app:flow", **fields})


S = rb.RunStatus
ROOT = Path(__file__).resolve().parents[2]


def test_enqueue_stores_a_scheduled_run(store: rb.Store) -> None:
    """enqueue stores the run as SCHEDULED, with no worker or lease, whatever it was given."""
    run = make_run(status=S.RUNNING, worker="w", lease_until=NOW, target="app:flow")
    store.enqueue(run)
    assert store.get_run(run.run_id) == dataclasses.replace(
        run, status=S.SCHEDULED, worker=None, lease_until=None
    )


def test_claim_takes_the_oldest_scheduled_run(store: rb.Store) -> None:
    """claim takes runs first in, first out, sets RUNNING, worker, lease and started_at."""
    runs = [make_run() for _ in range(3)]
    for run in runs:
        store.enqueue(run)
    store.create_run(make_run(status=S.RUNNING))  # not queued: never claimed
    before = datetime.now(UTC) - timedelta(seconds=5)  # slack for the server's clock
    claimed = [store.claim("w1", lease_seconds=30) for _ in runs]
    assert [c.run_id for c in claimed if c] == [run.run_id for run in runs]
    for run in claimed:
        assert run is not None
        assert run.status is S.RUNNING
        assert run.worker == "w1"
        assert run.attempt == 1
        assert run.started_at is not None
        assert run.started_at >= before
        assert run.lease_until is not None
        assert 25 < (run.lease_until - run.started_at).total_seconds() <= 31
        assert store.get_run(run.run_id) == run
    assert store.claim("w1", lease_seconds=30) is None


def test_claim_on_an_empty_queue_is_none(store: rb.Store) -> None:
    """claim with nothing scheduled and no expired lease returns None."""
    assert store.claim("w", lease_seconds=1) is None


def test_expired_lease_is_reclaimed_with_the_next_attempt(store: rb.Store) -> None:
    """An expired lease is taken over by another worker, with attempt + 1."""
    run = make_run()
    store.enqueue(run)
    first = store.claim("w1", lease_seconds=0.2)
    assert first is not None
    assert store.claim("w2", lease_seconds=10) is None  # the lease still holds
    time.sleep(0.3)
    second = store.claim("w2", lease_seconds=10)
    assert second is not None
    assert (second.run_id, second.status, second.worker) == (run.run_id, S.RUNNING, "w2")
    assert second.attempt == first.attempt + 1
    assert second.started_at == first.started_at
    assert not store.renew_lease(rb.Lease.of(first), 10)
    assert store.renew_lease(rb.Lease.of(second), 10)
    assert [(t.status, t.attempt, t.worker) for t in store.history(run.run_id)] == [
        (S.SCHEDULED, 1, None),
        (S.RUNNING, 1, "w1"),
        (S.CRASHED, 1, "w1"),
        (S.RUNNING, 2, "w2"),
    ]


def test_scheduled_runs_come_before_expired_leases(store: rb.Store) -> None:
    """claim prefers the oldest SCHEDULED run to resuming a crashed one."""
    crashed, waiting = make_run(), make_run()
    store.enqueue(crashed)
    assert store.claim("w1", lease_seconds=0.05) is not None
    store.enqueue(waiting)
    time.sleep(0.15)
    assert store.claim("w2", 10).run_id == waiting.run_id  # type: ignore[union-attr]
    assert store.claim("w2", 10).run_id == crashed.run_id  # type: ignore[union-attr]


def test_renew_lease_extends_it(store: rb.Store) -> None:
    """renew_lease moves lease_until forward for the worker holding the run."""
    run = make_run()
    store.enqueue(run)
    claimed = store.claim("w1", lease_seconds=0.3)
    assert claimed is not None
    assert claimed.lease_until is not None
    assert store.renew_lease(rb.Lease.of(claimed), 60)
    renewed = store.get_run(run.run_id).lease_until
    assert renewed is not None
    assert renewed > claimed.lease_until + timedelta(seconds=30)
    time.sleep(0.4)
    assert store.claim("w2", 10) is None  # renewed: not expired


def test_renew_lease_fails_once_the_run_ended(store: rb.Store) -> None:
    """A worker cannot renew a lease on a run that is no longer RUNNING, nor another's."""
    run = make_run()
    store.enqueue(run)
    claimed = store.claim("w1", 10)
    assert claimed is not None
    lease = rb.Lease.of(claimed)
    assert not store.renew_lease(rb.Lease(run.run_id, "w2", lease.attempt), 10)
    assert not store.renew_lease(rb.Lease(run.run_id, "w1", lease.attempt + 1), 10)
    store.transition(run.run_id, S.SUCCEEDED)
    assert not store.renew_lease(lease, 10)
    assert not store.renew_lease(rb.Lease("missing", "w1", 1), 10)


def test_release_hands_the_run_back(store: rb.Store) -> None:
    """release puts the run back into the queue at once: the next claim resumes it
    (attempt + 1), and its history says it was released."""
    run = make_run()
    store.enqueue(run)
    claimed = store.claim("w1", 60)
    assert claimed is not None
    assert not store.release(rb.Lease(run.run_id, "w2", claimed.attempt))
    assert store.release(rb.Lease.of(claimed))
    released = store.get_run(run.run_id)
    assert (released.status, released.worker, released.lease_until) == (S.SCHEDULED, None, None)
    assert not store.release(rb.Lease.of(claimed))  # no longer held
    again = store.claim("w2", 60)
    assert again is not None
    assert (again.run_id, again.worker, again.attempt) == (run.run_id, "w2", 2)
    assert [t.status for t in store.history(run.run_id)] == [
        S.SCHEDULED,
        S.RUNNING,
        S.SCHEDULED,
        S.RUNNING,
    ]


def test_cancelled_scheduled_run_is_not_claimed(store: rb.Store) -> None:
    """A SCHEDULED run cancelled before any worker took it stays out of the queue."""
    run = make_run()
    store.enqueue(run)
    store.transition(run.run_id, S.CANCELLED)
    assert store.claim("w", 10) is None


def test_each_run_is_claimed_exactly_once_by_concurrent_processes(store: rb.Store) -> None:
    """Three worker processes claiming at once take every run exactly once."""
    runs = [make_run() for _ in range(60)]
    for run in runs:
        store.enqueue(run)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.claimer", _raw_url(store), f"w{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for i in range(3)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        claimed = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    assert all(worker.returncode == 0 for worker in workers)
    # They really competed: each worker sleeps per run, so no one drains the queue alone.
    assert sum(1 for ids in claimed if ids) >= 2
    every = [run_id for ids in claimed for run_id in ids]
    assert sorted(every) == sorted(run.run_id for run in runs)  # each exactly once
    assert {run.status for run in store.list_runs(limit=100)} == {S.SUCCEEDED}


def _raw_url(store: rb.Store) -> str:
    """The URL to open ``store`` again from another process (the test server has no
    password, so the redacted URL is the URL)."""
    return store.url


def test_expired_runs_without_a_target_are_not_claimed(store: rb.Store) -> None:
    """A crashed run started from Python (no target to load its flow from) is left for
    ``flow.run(resume=...)``: no worker takes it."""
    store.create_run(make_run(status=S.RUNNING, worker="w", lease_until=NOW, target=None))
    assert store.claim("w2", 30) is None


def test_a_worker_claims_only_the_runs_of_the_queues_it_serves(store: rb.Store) -> None:
    """Runs wait in named queues: a claim takes the oldest run of the queues it names
    (the default queue unless it names one), never a run of another queue; an expired
    lease is taken over only by a worker serving the run's queue."""
    plain, gpu, io = make_run(), make_run(queue="gpu"), make_run(queue="io")
    for run in (gpu, io, plain):
        store.enqueue(run)
    assert store.get_run(gpu.run_id).queue == "gpu"
    assert store.claim("w", 30).run_id == plain.run_id  # type: ignore[union-attr]
    assert store.claim("w", 30) is None  # the default queue is empty
    assert store.claim("w", 30, ["io"]).run_id == io.run_id  # type: ignore[union-attr]
    taken = store.claim("w", 0.05, ["io", "gpu"])
    assert taken is not None
    assert taken.run_id == gpu.run_id
    time.sleep(0.15)
    assert store.claim("w2", 30) is None  # gpu's lease expired, but w2 serves "default"
    rescued = store.claim("w2", 30, ["gpu"])
    assert rescued is not None
    assert (rescued.run_id, rescued.attempt) == (gpu.run_id, 2)


def test_bad_queue_names_are_refused_saying_what_a_queue_name_is(store: rb.Store) -> None:
    """A queue name is a non-empty string without spaces; a claim names one at least."""
    for bad in ("", "two words", None):
        with pytest.raises(ValueError, match="a queue name is a non-empty"):
            store.enqueue(make_run(queue=bad))
    with pytest.raises(ValueError, match="serves at least one queue"):
        store.claim("w", 30, [])
