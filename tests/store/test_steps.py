"""The step cache and durable workflow steps; on every backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

import riverbed as rb
from tests.store.conftest import NOW, make_run, make_stage_run

ROOT = Path(__file__).resolve().parents[2]


def test_cache_miss_is_none(store: rb.Store) -> None:
    """cache_get of an unknown key is None."""
    assert store.cache_get("stage", "v1", "digest") is None


def test_cache_put_then_get(store: rb.Store) -> None:
    """cache_put stores outputs under (stage, stage_version, digest); each part counts."""
    store.cache_put("stage", "v1", "d1", b"\x00out", run_id="r")
    assert store.cache_get("stage", "v1", "d1") == b"\x00out"
    assert store.cache_get("stage", "v2", "d1") is None
    assert store.cache_get("stage", "v1", "d2") is None
    assert store.cache_get("other", "v1", "d1") is None


def test_cache_put_keeps_the_first_value(store: rb.Store) -> None:
    """A second put of a cached key is ignored, not an error."""
    store.cache_put("stage", "v1", "d", b"first", run_id="r1")
    store.cache_put("stage", "v1", "d", b"second", run_id="r2")
    assert store.cache_get("stage", "v1", "d") == b"first"


def test_cache_clear_one_stage_or_all(store: rb.Store) -> None:
    """cache_clear forgets one stage's entries, or all, and counts them."""
    for stage, digest in [("a", "1"), ("a", "2"), ("b", "1")]:
        store.cache_put(stage, "v", digest, b"x", run_id="r")
    assert store.cache_clear("a") == 2
    assert store.cache_get("a", "v", "1") is None
    assert store.cache_get("b", "v", "1") == b"x"
    assert store.cache_clear() == 1
    assert store.cache_clear() == 0


def _record_step(
    store: rb.Store, step: rb.StepRecord, stage_run: rb.StageRun | None = None
) -> None:
    """One step (and its stage run) committed alone."""
    store.commit_steps([rb.StepCommit(step.run_id, step=step, stage_run=stage_run)])


def test_record_step_and_read_steps_in_order(store: rb.Store) -> None:
    """A step commit stores steps and upserts the stage run; steps() gives them by seq."""
    run = make_run()
    store.create_run(run)
    steps = [
        rb.StepRecord(run.run_id, seq, f"stage{seq % 2}", bytes([seq]), NOW + timedelta(seq))
        for seq in (0, 1, 2)
    ]
    _record_step(store, steps[2], make_stage_run(run.run_id, "stage0", events_in=1))
    _record_step(store, steps[0])
    final = make_stage_run(run.run_id, "stage0", events_in=2, status=rb.StageStatus.SUCCEEDED)
    _record_step(store, steps[1], final)
    assert store.steps(run.run_id) == steps
    assert store.stage_runs(run.run_id) == [final]
    assert store.steps("other") == []


def test_a_step_is_recorded_once_and_atomically(store: rb.Store) -> None:
    """Recording a seq twice is a StoreError, and its stage run is not updated either."""
    run = make_run()
    store.create_run(run)
    before = make_stage_run(run.run_id, events_in=1)
    _record_step(store, rb.StepRecord(run.run_id, 0, "parse", b"first", NOW), before)
    with pytest.raises(rb.StoreError):
        _record_step(
            store,
            rb.StepRecord(run.run_id, 0, "parse", b"again", NOW),
            make_stage_run(run.run_id, events_in=2),
        )
    assert [step.output for step in store.steps(run.run_id)] == [b"first"]
    assert store.stage_runs(run.run_id) == [before]


def test_record_step_refuses_a_stage_run_of_another_run(store: rb.Store) -> None:
    """The step and its stage run must belong to one run."""
    with pytest.raises(ValueError, match="belongs to run"):
        _record_step(store, rb.StepRecord("a", 0, "s", b"", NOW), make_stage_run("b"))


def test_recorded_steps_survive_kill_9(store: rb.Store) -> None:
    """Steps whose commit returned survive SIGKILL of the recording process."""
    run = make_run()
    store.create_run(run)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store.stepper", store.url, run.run_id],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    try:
        acknowledged = [int(proc.stdout.readline()) for _ in range(30)]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    stored = store.steps(run.run_id)
    assert [step.seq for step in stored] == list(range(len(stored)))  # no gap, no tear
    assert len(stored) >= len(acknowledged)
    assert all(step.output == step.seq.to_bytes(8, "big") for step in stored)
    [stage_run] = store.stage_runs(run.run_id)
    assert stage_run.events_in == len(stored)


def test_record_step_is_thread_safe(store: rb.Store) -> None:
    """Eight threads recording steps of their own runs on one store lose none."""
    runs = [make_run() for _ in range(8)]
    for run in runs:
        store.create_run(run)

    def record(run_id: str) -> None:
        for seq in range(15):
            _record_step(store, rb.StepRecord(run_id, seq, "s", b"o", NOW))

    threads = [threading.Thread(target=record, args=(run.run_id,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in runs:
        assert [step.seq for step in store.steps(run.run_id)] == list(range(15))


# -- commit_steps: a workflow's writes in one transaction ---------------------------------------


def _step(run_id: str, seq: int, output: bytes = b"out") -> rb.StepRecord:
    return rb.StepRecord(run_id, seq, f"s{seq}", output, NOW)


def test_commit_steps_creates_the_run_with_its_first_step(store: rb.Store) -> None:
    """A run, its first step and its stage run are stored by one commit_steps call."""
    run = make_run()
    stage_run = make_stage_run(run.run_id, "s0", events_in=1)
    store.commit_steps(
        [rb.StepCommit(run.run_id, step=_step(run.run_id, 0), stage_run=stage_run, run=run)]
    )
    assert store.get_run(run.run_id) == run
    assert store.steps(run.run_id) == [_step(run.run_id, 0)]
    assert store.stage_runs(run.run_id) == [stage_run]


def test_commit_steps_ends_the_run_with_its_last_step(store: rb.Store) -> None:
    """A step and the run's final status (with fields) are stored together."""
    run = make_run()
    store.create_run(run)
    store.commit_steps(
        [
            rb.StepCommit(
                run.run_id,
                step=_step(run.run_id, 0),
                status=rb.RunStatus.SUCCEEDED,
                fields={"ended_at": NOW, "output": b"\x80result", "lease_until": None},
            )
        ]
    )
    stored = store.get_run(run.run_id)
    assert stored.status is rb.RunStatus.SUCCEEDED
    assert (stored.ended_at, stored.output) == (NOW, b"\x80result")
    assert len(store.steps(run.run_id)) == 1


def test_commit_steps_creates_and_ends_a_run_at_once(store: rb.Store) -> None:
    """A run created and failed in one commit (its first step failed) ends FAILED."""
    run = make_run()
    error = rb.ErrorInfo("s0", "ValueError", "bad", "Traceback...")
    store.commit_steps(
        [rb.StepCommit(run.run_id, run=run, status=rb.RunStatus.FAILED, fields={"error": error})]
    )
    stored = store.get_run(run.run_id)
    assert (stored.status, stored.error) == (rb.RunStatus.FAILED, error)


def test_commit_steps_groups_many_runs(store: rb.Store) -> None:
    """Commits of several runs in one call are all applied."""
    runs = [make_run() for _ in range(5)]
    store.commit_steps(
        [rb.StepCommit(r.run_id, step=_step(r.run_id, 0), run=r) for r in runs]
        + [rb.StepCommit(runs[0].run_id, step=_step(runs[0].run_id, 1))]
    )
    assert [len(store.steps(r.run_id)) for r in runs] == [2, 1, 1, 1, 1]


def test_commit_steps_is_all_or_nothing(store: rb.Store) -> None:
    """An illegal transition in a group rolls back every commit of the group."""
    done = make_run(status=rb.RunStatus.SUCCEEDED)
    store.create_run(done)
    fresh = make_run()
    with pytest.raises(rb.InvalidTransitionError, match="succeeded to failed"):
        store.commit_steps(
            [
                rb.StepCommit(fresh.run_id, step=_step(fresh.run_id, 0), run=fresh),
                rb.StepCommit(done.run_id, step=_step(done.run_id, 0), status=rb.RunStatus.FAILED),
            ]
        )
    assert store.steps(done.run_id) == []
    with pytest.raises(rb.RunNotFoundError):
        store.get_run(fresh.run_id)


def test_commit_steps_refuses_a_step_twice(store: rb.Store) -> None:
    """A step already recorded is a StoreError, and nothing of the call is kept."""
    run = make_run()
    store.commit_steps([rb.StepCommit(run.run_id, step=_step(run.run_id, 0), run=run)])
    with pytest.raises(rb.StoreError):
        store.commit_steps(
            [
                rb.StepCommit(
                    run.run_id, step=_step(run.run_id, 0, b"again"), status=rb.RunStatus.FAILED
                )
            ]
        )
    assert store.get_run(run.run_id).status is rb.RunStatus.RUNNING
    assert [s.output for s in store.steps(run.run_id)] == [b"out"]


def test_commit_steps_refuses_a_duplicate_run(store: rb.Store) -> None:
    """Creating a run whose id is taken is a DuplicateRunError."""
    run = make_run()
    store.create_run(run)
    with pytest.raises(rb.DuplicateRunError):
        store.commit_steps([rb.StepCommit(run.run_id, run=run)])


def test_commit_steps_of_an_unknown_run_is_not_found(store: rb.Store) -> None:
    """Ending a run that does not exist is a RunNotFoundError."""
    with pytest.raises(rb.RunNotFoundError):
        store.commit_steps([rb.StepCommit("nope", status=rb.RunStatus.FAILED)])


def test_commit_steps_refuses_records_of_another_run(store: rb.Store) -> None:
    """Each commit writes one run's records."""
    with pytest.raises(ValueError, match="each commit writes one run"):
        store.commit_steps([rb.StepCommit("a", step=_step("b", 0))])
