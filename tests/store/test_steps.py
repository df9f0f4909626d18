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


def test_record_step_and_read_steps_in_order(store: rb.Store) -> None:
    """record_step stores steps and upserts the stage run; steps() gives them by seq."""
    run = make_run()
    store.create_run(run)
    steps = [
        rb.StepRecord(run.run_id, seq, f"stage{seq % 2}", bytes([seq]), NOW + timedelta(seq))
        for seq in (0, 1, 2)
    ]
    store.record_step(steps[2], make_stage_run(run.run_id, "stage0", events_in=1))
    store.record_step(steps[0])
    final = make_stage_run(run.run_id, "stage0", events_in=2, status=rb.StageStatus.SUCCEEDED)
    store.record_step(steps[1], final)
    assert store.steps(run.run_id) == steps
    assert store.stage_runs(run.run_id) == [final]
    assert store.steps("other") == []


def test_a_step_is_recorded_once_and_atomically(store: rb.Store) -> None:
    """Recording a seq twice is a StoreError, and its stage run is not updated either."""
    run = make_run()
    store.create_run(run)
    before = make_stage_run(run.run_id, events_in=1)
    store.record_step(rb.StepRecord(run.run_id, 0, "parse", b"first", NOW), before)
    with pytest.raises(rb.StoreError):
        store.record_step(
            rb.StepRecord(run.run_id, 0, "parse", b"again", NOW),
            make_stage_run(run.run_id, events_in=2),
        )
    assert [step.output for step in store.steps(run.run_id)] == [b"first"]
    assert store.stage_runs(run.run_id) == [before]


def test_record_step_refuses_a_stage_run_of_another_run(store: rb.Store) -> None:
    """The step and its stage run must belong to one run."""
    with pytest.raises(ValueError, match="belongs to run"):
        store.record_step(rb.StepRecord("a", 0, "s", b"", NOW), make_stage_run("b"))


def test_recorded_steps_survive_kill_9(store: rb.Store) -> None:
    """Steps whose record_step returned survive SIGKILL of the recording process."""
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
            store.record_step(rb.StepRecord(run_id, seq, "s", b"o", NOW))

    threads = [threading.Thread(target=record, args=(run.run_id,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in runs:
        assert [step.seq for step in store.steps(run.run_id)] == list(range(15))
