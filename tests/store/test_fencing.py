"""Fenced writes: a process that lost its run's lease (cancelled, or taken over after the
lease expired) changes nothing; every status change is in the run's history; writes ride
out transient errors without applying twice. On every backend."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import riverbed as rb
from riverbed._store.sql import SQLCore, SQLStore, Tx
from riverbed._store.sqlite import SQLiteDatabase, SQLiteStore
from tests.services import require_postgres
from tests.store.conftest import NOW, make_letter, make_run, make_stage_run, schema_url

S = rb.RunStatus


def _taken_over(store: rb.Store) -> tuple[rb.Lease, rb.Lease]:
    """A queued run claimed by w1, whose lease expired, then claimed by w2: the two leases."""
    run = make_run(target="app:flow")
    store.enqueue(run)
    first = store.claim("w1", lease_seconds=0.05)
    assert first is not None
    time.sleep(0.15)
    second = store.claim("w2", lease_seconds=30)
    assert second is not None
    return rb.Lease.of(first), rb.Lease.of(second)


def _checkpoint(run_id: str, checkpoint_id: int = 1) -> rb.Checkpoint:
    return rb.Checkpoint(run_id, checkpoint_id, "v1", {"src": {"0": 1}}, {"s": b"x"}, NOW)


def test_a_lost_lease_can_commit_no_checkpoint(store: rb.Store) -> None:
    """The worker whose lease was taken over cannot commit a checkpoint, stage runs or dead
    letters: LeaseLostError names the new holder, and nothing is stored."""
    old, new = _taken_over(store)
    run_id = old.run_id
    with pytest.raises(rb.LeaseLostError) as caught:
        store.commit_checkpoint(
            _checkpoint(run_id),
            [make_stage_run(run_id)],
            [make_letter(run_id)],
            lease=old,
        )
    assert caught.value.holder == "w2"
    assert caught.value.status is S.RUNNING
    assert "w2 took it over (attempt 2)" in str(caught.value)
    assert store.latest_checkpoint(run_id) is None
    assert store.stage_runs(run_id) == []
    assert store.dead_letters(run_id=run_id) == []
    with pytest.raises(rb.LeaseLostError):
        store.save_stage_runs(run_id, [make_stage_run(run_id)], lease=old)
    with pytest.raises(rb.LeaseLostError):
        store.add_dead_letters([make_letter(run_id)], lease=old)
    store.commit_checkpoint(_checkpoint(run_id), lease=new)  # the holder's write goes in
    assert store.latest_checkpoint(run_id) == _checkpoint(run_id)


def test_a_lost_lease_cannot_end_the_run(store: rb.Store) -> None:
    """Ending a run under a lost lease is refused, and the run stays with its holder."""
    old, new = _taken_over(store)
    with pytest.raises(rb.LeaseLostError):
        store.transition(old.run_id, S.SUCCEEDED, lease=old)
    assert store.get_run(old.run_id).worker == "w2"
    ended = store.transition(new.run_id, S.SUCCEEDED, lease=new)
    assert ended.status is S.SUCCEEDED
    with pytest.raises(rb.LeaseLostError, match="it is succeeded now"):
        store.transition(new.run_id, S.FAILED, lease=new)


def test_a_cancelled_run_refuses_its_worker(store: rb.Store) -> None:
    """After `riverbed runs cancel`, the worker's next write fails with the reason."""
    run = make_run(worker="w1")
    store.create_run(run)
    lease = rb.Lease.of(run)
    store.transition(run.run_id, S.CANCELLED)
    with pytest.raises(rb.LeaseLostError, match="cancelled") as caught:
        store.commit_checkpoint(_checkpoint(run.run_id), lease=lease)
    assert caught.value.status is S.CANCELLED
    assert not store.renew_lease(lease, 10)


def test_step_commits_are_fenced(store: rb.Store) -> None:
    """A workflow step or its end committed under a lost lease changes nothing, alone or in
    a group with others' commits (the whole group is refused; the committer retries the
    others alone)."""
    old, new = _taken_over(store)
    run_id = old.run_id
    step = rb.StepRecord(run_id, 0, "s0", b"out", NOW)
    with pytest.raises(rb.LeaseLostError):
        store.commit_steps([rb.StepCommit(run_id, step=step, lease=old)])
    with pytest.raises(rb.LeaseLostError):
        store.commit_steps([rb.StepCommit(run_id, status=S.SUCCEEDED, lease=old)])
    other = make_run(worker="w3")
    store.create_run(other)
    other_step = rb.StepRecord(other.run_id, 0, "s0", b"o", NOW)
    with pytest.raises(rb.LeaseLostError):
        store.commit_steps(
            [
                rb.StepCommit(other.run_id, step=other_step, lease=rb.Lease.of(other)),
                rb.StepCommit(run_id, step=step, lease=old),
            ]
        )
    assert store.steps(run_id) == []
    assert store.steps(other.run_id) == []
    store.commit_steps([rb.StepCommit(run_id, step=step, status=S.SUCCEEDED, lease=new)])
    assert store.steps(run_id) == [step]
    assert store.get_run(run_id).status is S.SUCCEEDED


def test_every_status_change_is_in_the_history(store: rb.Store) -> None:
    """Creation, failure (with its error), resume and success each leave a history entry,
    and each attempt keeps its own stage runs."""
    run = make_run(worker="w1")
    store.create_run(run)
    store.save_stage_runs(run.run_id, [make_stage_run(run.run_id, events_in=5)])
    error = rb.ErrorInfo("parse", "ValueError", "bad", "Traceback...")
    store.transition(run.run_id, S.FAILED, error=error, lease=rb.Lease.of(run))
    resumed = store.transition(run.run_id, S.RUNNING, attempt=2, worker="w2", error=None)
    store.save_stage_runs(
        run.run_id, [make_stage_run(run.run_id, events_in=9, attempt=2)], lease=rb.Lease.of(resumed)
    )
    store.commit_steps([rb.StepCommit(run.run_id, status=S.SUCCEEDED, lease=rb.Lease.of(resumed))])
    history = store.history(run.run_id)
    assert [(t.status, t.attempt, t.worker) for t in history] == [
        (S.RUNNING, 1, "w1"),
        (S.FAILED, 1, "w1"),
        (S.RUNNING, 2, "w2"),
        (S.SUCCEEDED, 2, "w2"),
    ]
    assert history[1].error == error
    assert all(t.error is None for t in history if t.status is not S.FAILED)
    assert [s.events_in for s in store.stage_runs(run.run_id, attempt=1)] == [5]
    assert [s.events_in for s in store.stage_runs(run.run_id)] == [9]


class _FlakySQLiteDatabase(SQLiteDatabase):
    """A real SQLite database whose connection "drops" once: the next write transaction
    commits, then its acknowledgement is lost (as when a server restarts mid-commit)."""

    drop_after_commit = False

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with super().write() as tx:
            yield tx
        if self.drop_after_commit:
            self.drop_after_commit = False
            raise rb.StoreUnavailableError("connection lost while committing", url=self.url)


def test_a_retried_write_whose_commit_went_through_applies_once(tmp_path: Path) -> None:
    """A write retried after a lost acknowledgement recognizes its own commit: the
    checkpoint, the transition and the step are stored once, and the calls succeed."""
    flaky = _FlakySQLiteDatabase(tmp_path / "store.db")
    with SQLStore(SQLCore(flaky)) as store:
        run = make_run(worker="w1")
        store.create_run(run)
        lease = rb.Lease.of(run)
        letter = make_letter(run.run_id)
        flaky.drop_after_commit = True
        store.commit_checkpoint(_checkpoint(run.run_id), dead_letters=[letter], lease=lease)
        assert len(store.dead_letters(run_id=run.run_id)) == 1
        flaky.drop_after_commit = True
        step = rb.StepRecord(run.run_id, 0, "s0", b"out", NOW)
        store.commit_steps([rb.StepCommit(run.run_id, step=step, lease=lease)])
        assert store.steps(run.run_id) == [step]
        flaky.drop_after_commit = True
        ended = store.transition(run.run_id, S.SUCCEEDED, lease=lease)
        assert ended.status is S.SUCCEEDED
        assert [t.status for t in store.history(run.run_id)] == [S.RUNNING, S.SUCCEEDED]


def test_a_store_that_stays_away_fails_with_its_name(tmp_path: Path) -> None:
    """Past its retry time, a call fails with StoreUnavailableError naming the store."""
    path = tmp_path / "store.db"
    with SQLiteStore(path) as store:
        store.core.retry_seconds = 0.3
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            database = store.core.database
            assert isinstance(database, SQLiteDatabase)
            database._conn.execute("PRAGMA busy_timeout = 10")
            with pytest.raises(rb.StoreUnavailableError) as caught:
                store.create_run(make_run())
        finally:
            locker.close()
    message = str(caught.value)
    assert str(path) in message
    assert "stayed unreachable" in message
    assert "riverbed runs recover" in message


@pytest.fixture
def postgres_store() -> Iterator[rb.Store]:
    """An empty PostgreSQL store in a schema of its own."""
    import psycopg

    base = require_postgres()
    schema = f"rb_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        with rb.open_store(schema_url(base, schema)) as opened:
            yield opened
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_postgres_group_commits_take_their_one_statement(postgres_store: rb.Store) -> None:
    """PostgreSQL applies every shape of group commit in its one statement (the general
    path would give the same records, only slower: this pins the fast one)."""
    from riverbed._store.postgres import PostgresStore
    from riverbed._store.postgres.queue import PostgresQueue

    store = postgres_store
    assert isinstance(store, PostgresStore)
    queue = store._queue
    assert isinstance(queue, PostgresQueue)
    created = make_run(worker="w1")
    ended, failed = make_run(worker="w1"), make_run(worker="w1")
    store.create_run(ended)
    store.create_run(failed)
    error = rb.ErrorInfo("s0", "ValueError", "bad", "Traceback...")
    shapes = [
        [rb.StepCommit(created.run_id, run=created)],
        [
            rb.StepCommit(
                ended.run_id,
                step=rb.StepRecord(ended.run_id, 0, "s0", b"o", NOW),
                lease=rb.Lease.of(ended),
            )
        ],
        [
            rb.StepCommit(
                ended.run_id, status=S.SUCCEEDED, fields={"ended_at": NOW}, lease=rb.Lease.of(ended)
            ),
            rb.StepCommit(
                failed.run_id, status=S.FAILED, fields={"error": error}, lease=rb.Lease.of(failed)
            ),
        ],
    ]
    for commits in shapes:
        assert queue.commit_fast(commits), commits
    assert store.get_run(ended.run_id).status is S.SUCCEEDED
    assert [t.status for t in store.history(failed.run_id)] == [S.RUNNING, S.FAILED]
    assert store.history(failed.run_id)[1].error == error
    assert [t.status for t in store.history(created.run_id)] == [S.RUNNING]
