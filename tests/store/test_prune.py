"""Pruning finished runs to keep the store small; on every backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed._store.sql import SQLCore, SQLStore, Tx
from riverbed._store.sql.prune import BATCH
from riverbed._store.sqlite import SQLiteDatabase
from tests.store.conftest import NOW, make_letter, make_run, make_stage_run

S = rb.RunStatus
FINISHED = (S.SUCCEEDED, S.FAILED, S.CANCELLED)
CUTOFF = NOW + timedelta(days=30)


def _finished(store: rb.Store, status: rb.RunStatus = S.SUCCEEDED, **fields: Any) -> str:
    """A stored run that ended in ``status`` (a day after NOW unless ``ended_at`` says)."""
    values: dict[str, Any] = {"status": status, "ended_at": NOW + timedelta(days=1)}
    values.update(fields)
    run = make_run(**values)
    store.create_run(run)
    return run.run_id


def _with_everything(store: rb.Store, run_id: str) -> None:
    """Give a run a row in every table that holds a run's records."""
    store.save_stage_runs(run_id, [make_stage_run(run_id)])
    keyed = {"parse": {b"key": b"state"}}  # a stage kept per key: a row in each table
    checkpoint = rb.Checkpoint(run_id, 1, "v1", {"src": {"0": 1}}, {}, NOW, keyed=keyed)
    store.commit_checkpoint(checkpoint)
    step = rb.StepRecord(run_id, 0, "parse", b"out", NOW)
    store.commit_steps([rb.StepCommit(run_id, step=step)])
    [letter] = store.add_dead_letters([make_letter(run_id)])
    store.mark_replayed([letter], by_run="replayer")


def _rows(store: rb.Store, run_id: str) -> dict[str, int]:
    """How many rows each table holds for ``run_id``, read under the store's API."""
    assert isinstance(store, SQLStore)
    tables = (
        "riverbed_runs",
        "riverbed_run_history",
        "riverbed_stage_runs",
        "riverbed_checkpoints",
        "riverbed_checkpoint_states",
        "riverbed_checkpoint_keys",
        "riverbed_steps",
        "riverbed_dead_letters",
    )
    counts = {}
    with store.core.database.statement() as tx:
        for table in tables:
            tx.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,))
            counts[table] = tx.fetchone()[0]
    return counts


def test_prune_deletes_finished_runs_with_all_their_records(store: rb.Store) -> None:
    """A run that finished before the time goes, with its history, stage runs,
    checkpoints, steps and (replayed) dead letters; the count says how many runs."""
    old = _finished(store)
    _with_everything(store, old)
    rows = _rows(store, old)
    # A checkpoint's states: its keyed stage's entry and the row of its own data.
    assert rows.pop("riverbed_checkpoint_states") == 2
    assert set(rows.values()) == {1}
    assert store.prune(finished_before=CUTOFF) == 1
    assert set(_rows(store, old).values()) == {0}
    with pytest.raises(rb.RunNotFoundError):
        store.get_run(old)
    assert store.prune(finished_before=CUTOFF) == 0


def test_prune_keeps_runs_that_finished_later_and_what_they_own(store: rb.Store) -> None:
    """A run that ended at or after the time is untouched, records and all."""
    recent = _finished(store, ended_at=CUTOFF)
    _with_everything(store, recent)
    before = _rows(store, recent)
    assert store.prune(finished_before=CUTOFF) == 0
    assert _rows(store, recent) == before
    assert store.prune(finished_before=CUTOFF + timedelta(microseconds=1)) == 1


@pytest.mark.parametrize("status", list(S), ids=lambda status: status.value)
def test_prune_removes_only_succeeded_failed_and_cancelled_runs(
    store: rb.Store, status: rb.RunStatus
) -> None:
    """However old, a run that is SCHEDULED, RUNNING or CRASHED (it may still go on) is
    never pruned; a SUCCEEDED, FAILED or CANCELLED one is."""
    run_id = _finished(store, status, created_at=NOW - timedelta(days=365))
    pruned = store.prune(finished_before=CUTOFF)
    assert pruned == (1 if status in FINISHED else 0)
    assert [run.run_id for run in store.list_runs()] == ([] if pruned else [run_id])


def test_a_run_cancelled_before_it_started_counts_from_its_creation(store: rb.Store) -> None:
    """A finished run without ``ended_at`` is judged by ``created_at``."""
    old = _finished(store, S.CANCELLED, ended_at=None)
    recent = _finished(store, S.CANCELLED, ended_at=None, created_at=CUTOFF)
    assert store.prune(finished_before=CUTOFF) == 1
    assert [run.run_id for run in store.list_runs()] == [recent]
    with pytest.raises(rb.RunNotFoundError):
        store.get_run(old)


def test_a_run_whose_dead_letters_wait_for_replay_is_kept(store: rb.Store) -> None:
    """Dead letters not replayed yet keep their run (replaying them needs it); once they
    are replayed, the run is pruned with them."""
    run_id = _finished(store, S.FAILED)
    ids = store.add_dead_letters([make_letter(run_id), make_letter(run_id)])
    store.mark_replayed(ids[:1], by_run="replayer")
    assert store.prune(finished_before=CUTOFF) == 0
    assert len(store.dead_letters(run_id=run_id)) == 2
    store.mark_replayed(ids[1:], by_run="replayer")
    assert store.prune(finished_before=CUTOFF) == 1
    assert store.dead_letters(run_id=run_id) == []


def test_prune_keeps_the_step_cache_and_other_runs(store: rb.Store) -> None:
    """The step cache is shared by every run of a stage: pruning the run that filled it
    keeps it. Other runs' records are untouched."""
    old = _finished(store)
    store.cache_put("parse", "v1", "digest", b"cached", run_id=old)
    running = make_run()
    store.create_run(running)
    _with_everything(store, running.run_id)
    before = _rows(store, running.run_id)
    assert store.prune(finished_before=CUTOFF) == 1
    assert store.cache_get("parse", "v1", "digest") == b"cached"
    assert _rows(store, running.run_id) == before


def test_prune_handles_more_runs_than_one_batch(store: rb.Store) -> None:
    """Runs are deleted a batch of ids at a time; every one of many goes."""
    runs = [
        make_run(status=S.SUCCEEDED, ended_at=NOW + timedelta(seconds=n))
        for n in range(BATCH * 2 + 1)
    ]
    store.commit_steps([rb.StepCommit(run.run_id, run=run) for run in runs])
    keep = _finished(store, ended_at=CUTOFF)
    assert store.prune(finished_before=CUTOFF) == len(runs)
    assert [run.run_id for run in store.list_runs(limit=5)] == [keep]


def test_prune_wants_an_aware_datetime(store: rb.Store) -> None:
    """A naive datetime (whose zone the store could only guess) is a ValueError."""
    with pytest.raises(ValueError, match="finished_before must be a timezone-aware datetime"):
        store.prune(finished_before=datetime(2026, 1, 1))


class _FailingDatabase(SQLiteDatabase):
    """A real SQLite database whose write transactions fail at the DELETE of runs."""

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with super().write() as tx:
            yield _FailAtRunsDelete(tx)


class _FailAtRunsDelete:
    """A cursor that fails the statement deleting rows of ``riverbed_runs``."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> object:
        if sql.startswith("DELETE FROM riverbed_runs "):
            raise rb.StoreError("disk full", url="test")
        return self._tx.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> object:
        return self._tx.executemany(sql, rows)

    def fetchone(self) -> Any:
        return self._tx.fetchone()

    def fetchall(self) -> list[Any]:
        return self._tx.fetchall()

    @property
    def rowcount(self) -> int:
        return self._tx.rowcount


def test_prune_is_one_transaction(tmp_path: Path) -> None:
    """A prune that fails part way deletes nothing: the runs keep all their records."""
    with rb.open_store(f"sqlite:///{tmp_path}/store.db") as store:
        old = _finished(store)
        _with_everything(store, old)
        before = _rows(store, old)
    with SQLStore(SQLCore(_FailingDatabase(tmp_path / "store.db"))) as failing:
        with pytest.raises(rb.StoreError, match="disk full"):
            failing.prune(finished_before=CUTOFF)
        assert _rows(failing, old) == before
