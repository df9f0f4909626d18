"""Checkpoints and resume in one process: what is recorded, what a resumed run starts from,
and when a resume is refused."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import pytest

import riverbed as rb
from riverbed.testing import Capture

FAIL_AT: set[int] = set()
"""Events that ``fragile`` fails on while they are in here (the 'bug' a test fixes)."""


def fragile(value: int) -> int:
    """Fails on the values in FAIL_AT."""
    if value in FAIL_AT:
        raise RuntimeError(f"cannot take {value}")
    return value


def tens(value: int) -> int:
    """The key: the value's last digit."""
    return value % 10


def add(total: int, value: int) -> int:
    """Fold step: a running sum of values."""
    return total + 1


def _flow(out: Capture, *, name: str = "counting") -> rb.Flow:
    flow = rb.Flow(name)
    keyed = flow.source(list(range(1000)), name="numbers").map(fragile).key_by(tens)
    keyed.fold(int, add).sink(out, name="totals")
    return flow


def _run(flow: rb.Flow, store: rb.Store, **options: Any) -> rb.RunResult:
    options.setdefault("checkpoint_events", 100)
    return flow.run(store=store, batch_size=50, progress=False, raise_on_failure=False, **options)


def test_a_run_is_recorded_with_its_stage_runs(store: rb.Store) -> None:
    """A run's record ends SUCCEEDED, with a stage run per stage holding its counters."""
    result = _run(_flow(Capture()), store, checkpoint_events=None)
    record = store.get_run(result.run_id)
    assert record.status is rb.RunStatus.SUCCEEDED
    assert record.ended_at is not None
    stages = {stage.stage: stage for stage in store.stage_runs(result.run_id)}
    assert stages["fragile"].events_in == 1000
    assert stages["totals"].events_in == 10
    assert stages["totals"].status is rb.StageStatus.SUCCEEDED


def test_checkpoints_are_committed_during_the_run(store: rb.Store) -> None:
    """With checkpoints every 100 events, a 1,000-event run commits several, the last one
    after the run drained."""
    result = _run(_flow(Capture()), store)
    checkpoint = store.latest_checkpoint(result.run_id)
    assert checkpoint is not None
    assert checkpoint.checkpoint_id >= 2  # one at a time: triggers wait for commits
    assert checkpoint.positions == {"numbers": {"0": 1000}}


def test_a_failed_run_resumes_from_its_checkpoint_exactly_once(store: rb.Store) -> None:
    """A run that failed at event 777 is resumed after the 'fix': every key's total is
    exactly 100, so no event was lost or counted twice."""
    FAIL_AT.add(777)
    try:
        failed = _run(_flow(Capture()), store)
    finally:
        FAIL_AT.clear()
    assert failed.status is rb.RunStatus.FAILED
    assert store.get_run(failed.run_id).status is rb.RunStatus.FAILED
    checkpoint = store.latest_checkpoint(failed.run_id)
    assert checkpoint is not None
    assert 0 < checkpoint.positions["numbers"]["0"] <= 777

    out = Capture()
    resumed = _run(_flow(out), store, resume=failed.run_id)
    assert resumed.ok
    assert resumed.run_id == failed.run_id
    assert sorted(out.items) == [(key, 100) for key in range(10)]
    assert resumed.stages["fragile"].events_in == 1000
    record = store.get_run(failed.run_id)
    assert (record.status, record.attempt) == (rb.RunStatus.SUCCEEDED, 2)


def test_resuming_a_succeeded_run_is_refused(store: rb.Store) -> None:
    """A run that succeeded has nothing to resume, and says so."""
    result = _run(_flow(Capture()), store)
    with pytest.raises(rb.RunNotResumableError, match="already succeeded"):
        _run(_flow(Capture()), store, resume=result.run_id)


def _changed(value: int) -> int:
    """A different fragile: the flow's version changes with it."""
    return value + 0


def test_resuming_after_the_flow_changed_names_the_stages(store: rb.Store) -> None:
    """A changed stage makes a resume fail with its name, unless compatible=True."""
    FAIL_AT.add(555)
    try:
        failed = _run(_flow(Capture()), store)
    finally:
        FAIL_AT.clear()
    out = Capture()
    changed = rb.Flow("counting")
    keyed = changed.source(list(range(1000)), name="numbers").map(_changed, name="fragile")
    keyed.key_by(tens).fold(int, add).sink(out, name="totals")
    with pytest.raises(rb.FlowVersionError, match="changed stages: fragile"):
        _run(changed, store, resume=failed.run_id)
    resumed = _run(changed, store, resume=failed.run_id, compatible=True)
    assert resumed.ok
    assert sorted(out.items) == [(key, 100) for key in range(10)]


def test_resuming_another_flows_run_is_refused(store: rb.Store) -> None:
    """A run can only be resumed by the flow it ran."""
    result = _run(_flow(Capture()), store)
    with pytest.raises(rb.RunNotResumableError, match="is of flow"):
        _run(_flow(Capture(), name="other"), store, resume=result.run_id)


def test_resuming_an_unknown_run_names_it(store: rb.Store) -> None:
    """An unknown run id is a RunNotFoundError."""
    with pytest.raises(rb.RunNotFoundError):
        _run(_flow(Capture()), store, resume="no-such-run")


def bad_half(value: int) -> int:
    """Fails on odd values."""
    if value % 2:
        raise ValueError(f"odd {value}")
    return value


def test_dead_letters_are_stored_with_their_event(store: rb.Store) -> None:
    """Dead-lettered events are stored with the event itself, its error and the stage."""
    flow = rb.Flow("letters")
    flow.source([1, 2, 3, 4, 5], name="numbers").map(
        bad_half, on_error=rb.OnError.DEAD_LETTER
    ).sink(Capture(), name="out")
    result = _run(flow, store, checkpoint_events=2)
    letters = store.dead_letters(run_id=result.run_id)
    assert [pickle.loads(letter.event) for letter in letters] == [1, 3, 5]
    assert {letter.stage for letter in letters} == {"bad_half"}
    assert letters[0].error_type == "ValueError"
    assert "odd 1" in letters[0].message


class Ledger:
    """A transactional sink over a dict: commits are idempotent per key."""

    def __init__(self) -> None:
        self.buffer: list[Any] = []
        self.committed: dict[str, list[Any]] = {}

    def write_batch(self, events: list[Any]) -> None:
        self.buffer.extend(events)

    def prepare(self) -> list[Any]:
        taken, self.buffer = self.buffer, []
        return taken

    def commit(self, key: str, prepared: list[Any]) -> None:
        self.committed.setdefault(key, prepared)

    def events(self) -> list[Any]:
        return [event for batch in self.committed.values() for event in batch]


@pytest.mark.parametrize("checkpoints", [None, 7])
def test_transactional_sink_commits_every_event_once(
    store: rb.Store, checkpoints: int | None
) -> None:
    """A transactional sink's writes are committed with the checkpoints (or at the end
    without them), each event in exactly one commit."""
    ledger = Ledger()
    flow = rb.Flow("ledger")
    flow.source(list(range(100)), name="numbers").sink(ledger, name="ledger")
    result = _run(flow, store, checkpoint_events=checkpoints)
    assert result.ok
    assert sorted(ledger.events()) == list(range(100))
    if checkpoints:
        assert len(ledger.committed) > 1


MANY = 5_000_000


def many() -> Iterator[int]:
    """MANY numbers, made as they are read."""
    yield from range(MANY)


def a_million() -> Iterator[int]:
    """A million numbers, made as they are read."""
    yield from range(1_000_000)


def test_checkpoints_keep_up_with_a_busy_loop(store: rb.Store) -> None:
    """Checkpoints are committed in another thread while a fused loop keeps the event
    loop's thread busy, each in milliseconds (a thread waiting its turn for the GIL at
    every statement once took seconds, so a run made one or none)."""
    flow = rb.Flow("busy")
    flow.source(a_million, name="numbers").key_by(tens).fold(int, add).sink(
        Capture(), name="totals"
    )
    result = _run(flow, store, checkpoint_events=20_000)
    checkpoint = store.latest_checkpoint(result.run_id)
    assert checkpoint is not None
    assert checkpoint.checkpoint_id >= 10  # 50 are due; starved commits made one or two


def ten_million() -> Iterator[int]:
    """Ten million numbers, made as they are read: seconds of a fused loop."""
    yield from range(10_000_000)


def test_timed_checkpoints_commit_while_a_fused_loop_runs(store: rb.Store) -> None:
    """A checkpoint due every quarter second is committed within about that, beside a
    fused loop that never waits (a commit's thread once got the GIL back only when the
    run ended: on PostgreSQL, a run of seconds committed its first checkpoint at its end,
    so a crash lost all of it)."""
    flow = rb.Flow("busy-timed")
    flow.source(ten_million, name="numbers").key_by(tens).fold(int, add).sink(
        Capture(), name="totals"
    )
    result = flow.run(
        store=store,
        checkpoint_interval=0.25,
        batch_size=1000,
        progress=False,
        raise_on_failure=False,
    )
    assert result.ok
    seconds = result.duration
    checkpoint = store.latest_checkpoint(result.run_id)
    assert checkpoint is not None
    # At least one per second of the run (four are due): starved, a run made two (the
    # first, committed at the end, and the last).
    assert checkpoint.checkpoint_id >= max(3, int(seconds))


class _FailingCheckpoints:
    """A real store whose second checkpoint commit fails (a fault injected for the test);
    everything else goes to the store it wraps."""

    def __init__(self, store: rb.Store) -> None:
        self._store = store
        self.commits = 0

    def commit_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self.commits += 1
        if self.commits == 2:
            raise rb.StoreError("disk full (injected)")
        self._store.commit_checkpoint(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_failed_checkpoint_commit_stops_the_run(store: rb.Store) -> None:
    """When a checkpoint cannot be committed the run stops FAILED at once, naming the
    checkpoint, instead of going on without checkpoints."""
    failing = _FailingCheckpoints(store)
    flow = rb.Flow("unlucky")
    # Long enough that the run is still reading when the failure comes back from the
    # thread the commit runs in (the first commit may take a while on a loaded machine).
    flow.source(many, name="numbers").key_by(tens).fold(int, add).sink(Capture(), name="totals")
    result = _run(flow, failing, checkpoint_events=20_000)  # type: ignore[arg-type]
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert result.error.stage == "<checkpoint>"
    assert "disk full" in result.error.message
    assert result.stages["numbers"].events_out < MANY  # it stopped, it did not go on
    assert store.get_run(result.run_id).status is rb.RunStatus.FAILED
