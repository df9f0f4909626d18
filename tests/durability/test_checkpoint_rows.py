"""The store's rows of stages kept per key: one row per key, overwritten by the checkpoint
that changes it, replaced whole, dropped with the stage, fenced by the lease, all or
nothing with the rest of the checkpoint; on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

import riverbed as rb
from riverbed._store.sql import SQLStore
from riverbed._store.sql.checkpoint_keys import KeysMoved, read_keyed
from tests.store.conftest import NOW, make_letter, make_run

WHOLE = b""


def _checkpoint(
    run_id: str,
    n: int,
    keyed: dict[str, dict[bytes, bytes | None]],
    complete: frozenset[str] = frozenset(),
) -> rb.Checkpoint:
    return rb.Checkpoint(
        run_id=run_id,
        checkpoint_id=n,
        flow_version="v1",
        positions={"numbers": {"0": n}},
        states={"window": b"whole"},
        created_at=NOW + timedelta(seconds=n),
        keyed=keyed,
        complete=complete,
    )


@pytest.fixture
def run(store: rb.Store) -> rb.RunRecord:
    """A stored RUNNING run."""
    record = make_run()
    store.create_run(record)
    return record


def _rows(store: rb.Store, run_id: str) -> list[tuple[str, bytes, int]]:
    """The run's key rows, (stage, key, checkpoint), read under the store's API."""
    assert isinstance(store, SQLStore)
    with store.core.database.statement() as tx:
        tx.execute(
            "SELECT stage, key, checkpoint_id FROM riverbed_checkpoint_keys WHERE run_id = ? "
            "ORDER BY stage, key",
            (run_id,),
        )
        return [(stage, bytes(key), n) for stage, key, n in tx.fetchall()]


def test_changed_keys_overwrite_their_rows(store: rb.Store, run: rb.RunRecord) -> None:
    """Each key has one row, the newest; read back, the rows come oldest first, after the
    whole state they change, and every keyed stage is complete."""
    store.commit_checkpoint(_checkpoint(run.run_id, 1, {"count": {WHOLE: b"all"}}, {"count"}))
    store.commit_checkpoint(_checkpoint(run.run_id, 2, {"count": {b"a": b"1", b"b": b"2"}}))
    store.commit_checkpoint(_checkpoint(run.run_id, 3, {"count": {b"a": b"3", b"c": None}}))
    assert _rows(store, run.run_id) == [
        ("count", WHOLE, 1),
        ("count", b"a", 3),
        ("count", b"b", 2),
        ("count", b"c", 3),
    ]
    latest = store.latest_checkpoint(run.run_id)
    assert latest is not None
    assert latest.states == {"window": b"whole"}
    rows = list(latest.keyed["count"].items())
    assert rows[:2] == [(WHOLE, b"all"), (b"b", b"2")]  # checkpoints 1 and 2 first
    assert set(rows[2:]) == {(b"a", b"3"), (b"c", None)}
    assert latest.complete == {"count"}


def test_a_stage_written_whole_replaces_its_rows(store: rb.Store, run: rb.RunRecord) -> None:
    """A complete stage's rows replace every row it had (markers of removed keys too)."""
    store.commit_checkpoint(_checkpoint(run.run_id, 1, {"count": {WHOLE: b"all"}}, {"count"}))
    store.commit_checkpoint(_checkpoint(run.run_id, 2, {"count": {b"a": b"1", b"b": None}}))
    store.commit_checkpoint(_checkpoint(run.run_id, 3, {"count": {WHOLE: b"new"}}, {"count"}))
    assert _rows(store, run.run_id) == [("count", WHOLE, 3)]


def test_a_stage_no_longer_kept_per_key_loses_its_rows(store: rb.Store, run: rb.RunRecord) -> None:
    """A stage the run's newest checkpoint does not keep per key (renamed, or kept whole
    now) has no rows left; the other stages keep theirs."""
    keyed = {"count": {WHOLE: b"all"}, "sums": {WHOLE: b"all"}}
    store.commit_checkpoint(_checkpoint(run.run_id, 1, keyed, frozenset(keyed)))
    store.commit_checkpoint(_checkpoint(run.run_id, 2, {"sums": {b"a": b"1"}}))
    assert _rows(store, run.run_id) == [("sums", WHOLE, 1), ("sums", b"a", 2)]
    latest = store.latest_checkpoint(run.run_id)
    assert latest is not None
    assert set(latest.keyed) == {"sums"}


def test_a_stage_with_no_changes_keeps_its_rows(store: rb.Store, run: rb.RunRecord) -> None:
    """A checkpoint that names a keyed stage with no rows changes none of them."""
    store.commit_checkpoint(_checkpoint(run.run_id, 1, {"count": {WHOLE: b"all"}}, {"count"}))
    store.commit_checkpoint(_checkpoint(run.run_id, 2, {"count": {}}))
    latest = store.latest_checkpoint(run.run_id)
    assert latest is not None
    assert latest.keyed == {"count": {WHOLE: b"all"}}


def test_a_lost_lease_writes_no_rows(store: rb.Store) -> None:
    """A process that lost its run's lease changes no key rows."""
    run = make_run(worker="w1")
    store.create_run(run)
    store.commit_checkpoint(
        _checkpoint(run.run_id, 1, {"count": {WHOLE: b"all"}}, {"count"}), lease=rb.Lease.of(run)
    )
    stale = rb.Lease(run.run_id, "w1", run.attempt - 1)
    with pytest.raises(rb.LeaseLostError):
        store.commit_checkpoint(
            _checkpoint(run.run_id, 2, {"count": {WHOLE: b"new"}}, {"count"}), lease=stale
        )
    assert _rows(store, run.run_id) == [("count", WHOLE, 1)]


def test_key_rows_are_all_or_nothing(store: rb.Store, run: rb.RunRecord) -> None:
    """A commit that fails at its last dead letter leaves the key rows as they were."""
    store.commit_checkpoint(_checkpoint(run.run_id, 1, {"count": {WHOLE: b"all"}}, {"count"}))
    broken = make_letter(run.run_id, event=None)  # NOT NULL: fails after everything else
    with pytest.raises(rb.StoreError):
        store.commit_checkpoint(
            _checkpoint(run.run_id, 2, {"count": {WHOLE: b"new", b"a": b"1"}}, {"count"}),
            dead_letters=[broken],
        )
    assert _rows(store, run.run_id) == [("count", WHOLE, 1)]


def test_rows_read_for_an_older_checkpoint_are_read_again(
    store: rb.Store, run: rb.RunRecord
) -> None:
    """Rows read for checkpoint n after n+1 was committed are not n's: the read says so
    (``latest_checkpoint`` then reads the newest again)."""
    store.commit_checkpoint(_checkpoint(run.run_id, 1, {"count": {WHOLE: b"all"}}, {"count"}))
    store.commit_checkpoint(_checkpoint(run.run_id, 2, {"count": {b"a": b"1"}}))
    assert isinstance(store, SQLStore)
    with store.core.database.statement() as tx, pytest.raises(KeysMoved):
        read_keyed(tx, run.run_id, 1, ["count"])
