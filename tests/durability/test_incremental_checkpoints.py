"""Incremental checkpoints: a checkpoint writes the keys whose state changed since the
run's previous one (removed keys as markers), the store keeps one row per key, and a
resumed (also after SIGKILL), re-run or renamed run starts from exactly the state it had.
On both stores."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import riverbed as rb
from riverbed.testing import Capture
from tests.durability import crash_flow
from tests.durability.processes import child_env, python

KEYS = 10_000

BROKEN: set[int] = set()
"""Events that ``fragile`` fails on while they are in here (the 'bug' a test fixes)."""


def fragile(value: int) -> int:
    """Fails on the values in BROKEN."""
    if value in BROKEN:
        raise RuntimeError(f"cannot take {value}")
    return value


def by_key(value: int) -> int:
    """The key of a value: one of KEYS."""
    return value % KEYS


def count(total: int, value: int) -> int:
    """Fold step: how many values a key had."""
    return total + 1


def tally(acc: tuple[int, int], value: int) -> tuple[int, int]:
    """Fold step: per key, how many values (here: chunks) and their sum."""
    return acc[0] + 1, acc[1] + value


def nothing() -> tuple[int, int]:
    """The start of ``tally``: nothing yet."""
    return (0, 0)


class Recording:
    """A real store that also keeps every checkpoint committed through it (a spy for the
    test, the writes themselves go to the store it wraps)."""

    def __init__(self, store: rb.Store) -> None:
        self._store = store
        self.checkpoints: list[rb.Checkpoint] = []
        self.threads: list[threading.Thread] = []

    def commit_checkpoint(self, checkpoint: rb.Checkpoint, *args: Any, **kwargs: Any) -> None:
        self.threads.append(threading.current_thread())
        self._store.commit_checkpoint(checkpoint, *args, **kwargs)
        self.checkpoints.append(checkpoint)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _written(checkpoint: rb.Checkpoint, stage: str) -> tuple[int, int]:
    """How many key rows, and how many bytes (keys and states), a checkpoint wrote for
    ``stage``."""
    rows = checkpoint.keyed.get(stage, {})
    return len(rows), sum(len(key) + len(state or b"") for key, state in rows.items())


def test_a_checkpoint_writes_only_the_keys_that_changed(store: rb.Store) -> None:
    """After 10,000 keys were checkpointed, a checkpoint after 1% of them changed writes
    one row per changed key and about 1% of the bytes; the store keeps the state written
    whole once and the rows of the keys changed since."""
    events = list(range(KEYS)) + list(range(0, KEYS, 100))  # then 100 keys change
    flow = rb.Flow("one-percent")
    flow.source(events, name="numbers").key_by(by_key).fold(nothing, tally, name="counts").sink(
        Capture(), name="out"
    )
    recording = Recording(store)
    result = flow.run(
        store=recording,  # type: ignore[arg-type]
        batch_size=1000,
        checkpoint_events=KEYS,
        progress=False,
    )
    assert result.ok
    first, last = recording.checkpoints[0], recording.checkpoints[-1]
    assert "counts" not in first.states
    assert "counts" not in last.states
    _, all_bytes = _written(first, "counts")
    rows, size = _written(last, "counts")
    assert first.complete == {"counts"}
    assert not last.complete
    assert rows == KEYS // 100
    # About 1%: each row is a pickle of its own, with a few bytes (protocol, stop) that
    # the whole dict's one pickle has once.
    assert size <= 0.02 * all_bytes
    restored = store.latest_checkpoint(result.run_id)
    assert restored is not None
    assert len(restored.keyed["counts"]) == 1 + KEYS // 100  # the whole, and the changes


def chunk(values: list[int] | None, value: int) -> tuple[list[int] | None, int | None]:
    """Per key, values in chunks of three: the third one emits the chunk's sum and removes
    the key's state (so checkpoints write changed keys and removed ones)."""
    values = [*(values or []), value]
    if len(values) == 3:
        return None, sum(values)
    return values, None


EVENTS = 4000
COLD = 2000
HOT = 40


def hot(value: int) -> int:
    """The key: the first COLD values each have a key of their own, then the values go to
    HOT keys only (so a checkpoint finds a few keys changed, some of them removed)."""
    return value if value < COLD else (value - COLD) % HOT


def paced() -> Iterator[int]:
    """The values, with a pause every 50 (so that checkpoints, committed meanwhile in
    another thread, come every hundred events or so)."""
    for value in range(EVENTS):
        if value % 50 == 0:
            time.sleep(0.003)
        yield value


def _chunk_flow(out: Capture, *, stage: str = "chunks") -> rb.Flow:
    flow = rb.Flow("chunking")
    keyed = flow.source(paced, name="numbers").map(fragile).key_by(hot)
    keyed.stateful(chunk, name=stage).fold(nothing, tally, name="tally").sink(out, name="out")
    return flow


def _expected() -> list[tuple[int, tuple[int, int]]]:
    """What the chunking flow gives, computed in plain Python."""
    pending: dict[int, list[int]] = {}
    totals: dict[int, tuple[int, int]] = {}
    for value in range(EVENTS):
        values = pending.setdefault(hot(value), [])
        values.append(value)
        if len(values) == 3:
            n, total = totals.get(hot(value), (0, 0))
            totals[hot(value)] = (n + 1, total + sum(values))
            del pending[hot(value)]
    return sorted(totals.items())


def _run(flow: rb.Flow, store: Any, **options: Any) -> rb.RunResult:
    options.setdefault("checkpoint_events", 100)
    return flow.run(store=store, batch_size=40, progress=False, raise_on_failure=False, **options)


def _failing(flow: rb.Flow, store: Any, at: int, **options: Any) -> rb.RunResult:
    BROKEN.add(at)
    try:
        failed = _run(flow, store, **options)
    finally:
        BROKEN.clear()
    assert failed.status is rb.RunStatus.FAILED
    return failed


def test_a_resumed_run_restores_changed_and_removed_keys(store: rb.Store) -> None:
    """Checkpoints write changed keys and markers for removed ones; a run resumed after a
    failure goes on from exactly the state it had: every chunk counted once."""
    recording = Recording(store)
    failed = _failing(_chunk_flow(Capture()), recording, 3333)
    removed = [
        key
        for checkpoint in recording.checkpoints
        for key, state in checkpoint.keyed.get("chunks", {}).items()
        if state is None
    ]
    assert removed, "the test must checkpoint removed keys"
    out = Capture()
    resumed = _run(_chunk_flow(out), store, resume=failed.run_id)
    assert resumed.ok
    assert sorted(out.items) == _expected()


def test_a_rerun_writes_every_key_in_its_first_checkpoint(store: rb.Store) -> None:
    """A re-run starts from another run's checkpoint: its first checkpoint writes its keyed
    stages whole, so that resuming the re-run (after it failed too) loses nothing."""
    failed = _failing(_chunk_flow(Capture()), store, 2500)
    recording = Recording(store)
    rerun = _failing(_chunk_flow(Capture()), recording, 3333, rerun_of=failed.run_id)
    first = recording.checkpoints[0]
    assert {"chunks", "tally"} <= first.complete
    assert all("chunks" not in checkpoint.complete for checkpoint in recording.checkpoints[1:])
    out = Capture()
    resumed = _run(_chunk_flow(out), store, resume=rerun.run_id)
    assert resumed.ok
    assert sorted(out.items) == _expected()


def test_a_renamed_stage_keeps_its_keys_in_later_resumes(store: rb.Store) -> None:
    """State resumed under a stage's new name is written whole under that name: a later
    resume (without renamed=) finds all of it, and none is left under the old name."""
    failed = _failing(_chunk_flow(Capture()), store, 2500)
    _failing(
        _chunk_flow(Capture(), stage="pieces"),
        store,
        3333,
        resume=failed.run_id,
        renamed={"chunks": "pieces"},
        compatible=True,
    )
    checkpoint = store.latest_checkpoint(failed.run_id)
    assert checkpoint is not None
    assert "chunks" not in checkpoint.keyed
    assert "pieces" in checkpoint.keyed
    out = Capture()
    resumed = _run(_chunk_flow(out, stage="pieces"), store, resume=failed.run_id)
    assert resumed.ok
    assert sorted(out.items) == _expected()


class _Gate:
    """A map stage that lets the test see processing go on while a commit is running."""

    def __init__(self) -> None:
        self.committing = threading.Event()
        self.moved_on = threading.Event()

    def __call__(self, value: int) -> int:
        if self.committing.is_set():
            self.moved_on.set()
        return value


class _SlowCommits(Recording):
    """Commits that wait (up to 10 s) until the flow processed an event meanwhile."""

    def __init__(self, store: rb.Store, gate: _Gate) -> None:
        super().__init__(store)
        self.gate = gate
        self.waited: list[bool] = []

    def commit_checkpoint(self, checkpoint: rb.Checkpoint, *args: Any, **kwargs: Any) -> None:
        if len(self.checkpoints) == 0:
            self.gate.committing.set()
            self.waited.append(self.gate.moved_on.wait(10))
        super().commit_checkpoint(checkpoint, *args, **kwargs)


def test_processing_goes_on_while_a_checkpoint_commits(store: rb.Store) -> None:
    """A checkpoint is committed in another thread while the event loop goes on processing
    events (the first commit waits until the flow has moved on)."""
    gate = _Gate()
    slow = _SlowCommits(store, gate)
    flow = rb.Flow("goes-on")
    flow.source(list(range(50_000)), name="numbers").map(gate).key_by(by_key).fold(int, count).sink(
        Capture(), name="out"
    )
    result = _run(flow, slow, checkpoint_events=5_000)
    assert result.ok
    assert slow.waited == [True]
    assert all(thread is not threading.main_thread() for thread in slow.threads)


def _removals_checkpointed(store: rb.Store, run_id: str) -> bool:
    """True once the run's newest checkpoint has rows of changed keys and of removed ones
    in its chunk stage (not only the stage written whole)."""
    try:
        checkpoint = store.latest_checkpoint(run_id)
    except rb.RiverbedError:  # the run is not recorded yet
        return False
    rows = checkpoint.keyed.get("chunk", {}) if checkpoint is not None else {}
    states = [state for key, state in rows.items() if key]
    return None in states and any(state is not None for state in states)


def test_a_run_killed_after_incremental_checkpoints_resumes_exactly(
    store_url: str, tmp_path: Path
) -> None:
    """SIGKILL once the crash flow's checkpoints hold changed keys and removal markers,
    then a resume: every key's result equals an uninterrupted run's."""
    results = str(tmp_path / "results.db")
    run_id = uuid.uuid4().hex[:16]
    args = ("-m", "tests.durability.crash_flow", store_url, results, run_id)
    child = python(*args, env=child_env())
    try:
        with rb.open_store(store_url) as store:
            deadline = time.monotonic() + 60
            while not _removals_checkpointed(store, run_id):
                assert child.poll() is None, child.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "no checkpoint with removed keys in 60 s"
                time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    resumed = python(*args, env=child_env())  # the same command resumes the run
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-2000:]
    assert crash_flow.read_results(results) == crash_flow.expected()
