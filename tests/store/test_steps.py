"""The step cache and durable workflow steps; on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

import riverbed as rb
from tests.store.conftest import NOW, make_run, make_stage_run


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
    """cache_clear(stage) forgets that stage's entries, cache_clear() every entry; both
    return how many were removed."""
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
