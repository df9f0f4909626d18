"""A checkpoint that cannot be taken or committed fails the run with an error that names
the stage holding the state (or the checkpoint itself) and says it happened at a
checkpoint, in the result and in the run's record, for periodic and final checkpoints."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import riverbed as rb
from riverbed.testing import Capture


class Locked:
    """Per-key state holding a lock: it cannot be pickled."""

    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def add(self, value: int) -> int:
        self.n += 1
        return self.n


def last_digit(value: int) -> int:
    """The key."""
    return value % 10


class TwoParts:
    """A source of two partitions of 500 numbers each (its chain runs in a task of its
    own, behind a channel)."""

    def partitions(self) -> list[str]:
        return ["a", "b"]

    def open(self, partition: str, position: Any) -> Numbers:
        return Numbers(position or 0)


class Numbers:
    """Reads 0 to 499; the position is the count read."""

    def __init__(self, start: int) -> None:
        self.next = start

    def read(self, max_events: int) -> list[int] | None:
        batch = list(range(self.next, min(self.next + max_events, 500)))
        self.next += len(batch)
        return batch or None

    def position(self) -> int:
        return self.next

    def close(self) -> None:
        pass


class Refusing:
    """A transactional sink whose ``prepare`` fails."""

    def write_batch(self, events: list[Any]) -> None:
        pass

    def prepare(self) -> Any:
        raise RuntimeError("cannot reach the warehouse")

    def commit(self, key: str, prepared: Any) -> None:
        pass


class Unpicklable(Refusing):
    """A transactional sink that prepares what cannot be pickled."""

    def prepare(self) -> Any:
        return threading.Lock()


class Unreachable(Refusing):
    """A transactional sink that prepares its writes but cannot commit them."""

    def prepare(self) -> Any:
        return []

    def commit(self, key: str, prepared: Any) -> None:
        raise ConnectionError("the warehouse hung up")


PERIODIC = {"checkpoint_events": 200}
FINAL = {"checkpoint_interval": 3600.0}  # no periodic one in a run this short


def _source(flow: rb.Flow, partitions: int) -> rb.Stream:
    source: Any = list(range(1000)) if partitions == 1 else TwoParts()
    return flow.source(source, name="numbers")


def _run(flow: rb.Flow, store: rb.Store, **options: Any) -> rb.RunResult:
    return flow.run(store=store, batch_size=50, progress=False, raise_on_failure=False, **options)


def _assert_failed_at(result: rb.RunResult, store: rb.Store, stage: str, *words: str) -> None:
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert result.error.stage == stage
    for word in words:
        assert word in result.error.message
    record = store.get_run(result.run_id)
    assert record.status is rb.RunStatus.FAILED
    assert record.error is not None
    assert (record.error.stage, record.error.message) == (stage, result.error.message)


@pytest.mark.parametrize("partitions", [1, 2])
@pytest.mark.parametrize("when", [PERIODIC, FINAL], ids=["periodic", "final"])
def test_unpicklable_state_is_blamed_on_its_stage(
    store: rb.Store, partitions: int, when: dict[str, Any]
) -> None:
    """State that cannot be pickled fails the run at the stateful stage, "at checkpoint N"
    (not at the source, nor as an engine error)."""
    flow = rb.Flow("locked")
    keyed = _source(flow, partitions).key_by(last_digit)
    keyed.stateful(Locked, Locked.add, name="count").sink(Capture(), name="out")
    result = _run(flow, store, **when)
    _assert_failed_at(
        result, store, "count", "its state could not be pickled at checkpoint", "lock"
    )
    with pytest.raises(rb.RunFailedError, match=r"stage 'count'.*could not be pickled"):
        flow.run(store=store, batch_size=50, progress=False, **when)


@pytest.mark.parametrize("partitions", [1, 2])
@pytest.mark.parametrize("when", [PERIODIC, FINAL], ids=["periodic", "final"])
def test_a_failing_prepare_is_blamed_on_its_sink(
    store: rb.Store, partitions: int, when: dict[str, Any]
) -> None:
    """A transactional sink whose prepare raises fails the run at that sink, at a
    checkpoint."""
    flow = rb.Flow("refusing")
    _source(flow, partitions).sink(Refusing(), name="warehouse")
    result = _run(flow, store, **when)
    _assert_failed_at(result, store, "warehouse", "at checkpoint", "cannot reach the warehouse")


@pytest.mark.parametrize("when", [PERIODIC, FINAL], ids=["periodic", "final"])
def test_unpicklable_prepared_writes_are_blamed_on_their_sink(
    store: rb.Store, when: dict[str, Any]
) -> None:
    """Prepared writes that cannot be pickled into the checkpoint fail the run at the sink."""
    flow = rb.Flow("unpicklable")
    _source(flow, 1).sink(Unpicklable(), name="warehouse")
    result = _run(flow, store, **when)
    _assert_failed_at(result, store, "warehouse", "could not be pickled at checkpoint")


@pytest.mark.parametrize("when", [PERIODIC, FINAL], ids=["periodic", "final"])
def test_a_failing_sink_commit_is_blamed_on_its_sink(store: rb.Store, when: dict[str, Any]) -> None:
    """A transactional sink that cannot commit a checkpoint's writes fails the run there."""
    flow = rb.Flow("unreachable")
    _source(flow, 1).sink(Unreachable(), name="warehouse")
    result = _run(flow, store, **when)
    _assert_failed_at(result, store, "warehouse", "could not be committed", "the warehouse hung up")


class _FailingFinalCheckpoint:
    """A real store whose commit of a run's last checkpoint fails (a fault injected for the
    test); everything else goes to the store it wraps."""

    def __init__(self, store: rb.Store) -> None:
        self._store = store

    def commit_checkpoint(self, checkpoint: rb.Checkpoint, *args: Any, **kwargs: Any) -> None:
        if checkpoint.ended:
            raise rb.StoreError("disk full (injected)")
        self._store.commit_checkpoint(checkpoint, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_failed_final_checkpoint_records_its_error(store: rb.Store) -> None:
    """When the last checkpoint of a drained run cannot be committed, the run is FAILED
    with that error, in the result and in the record (it had none)."""
    flow = rb.Flow("last-straw")
    _source(flow, 1).key_by(last_digit).fold(int, lambda total, _: total + 1).sink(
        Capture(), name="totals"
    )
    result = _run(flow, _FailingFinalCheckpoint(store), **PERIODIC)  # type: ignore[arg-type]
    _assert_failed_at(result, store, "<checkpoint>", "checkpoint", "disk full")
