"""The records' enums go to the store as their values and come back as the enums: the
store's codec is the one place where they are strings (and the JSON module, for people)."""

from __future__ import annotations

import dataclasses
import json

import pytest

import riverbed as rb
from riverbed._records import COUNTS, StageCounts
from riverbed._store.codec import Codec
from riverbed._store.schema import Dialect
from tests.store.conftest import make_run, make_stage_run


@pytest.mark.parametrize("kind", list(rb.StageKind), ids=lambda kind: kind.value)
def test_stage_run_kind_round_trips_as_its_enum(store: rb.Store, kind: rb.StageKind) -> None:
    """A stage run of any kind is read back with its kind an ``rb.StageKind``, its
    counts and status unchanged."""
    run = make_run()
    store.create_run(run)
    saved = make_stage_run(run.run_id, kind=kind, events_in=5, events_out=4, seconds=0.5)
    store.save_stage_runs(run.run_id, [saved])
    (read,) = store.stage_runs(run.run_id)
    assert read.kind is kind
    assert read == saved


def test_stage_counts_are_declared_once() -> None:
    """StageStats (a run's result) and StageRun (the store) are both a StageCounts: the
    counts are one declaration, keyword-only, in one order."""
    assert issubclass(rb.StageStats, StageCounts)
    assert issubclass(rb.StageRun, StageCounts)
    counts = tuple(f.name for f in dataclasses.fields(StageCounts))
    assert counts == COUNTS
    for record in (rb.StageStats, rb.StageRun):
        names = [f.name for f in dataclasses.fields(record)]
        assert tuple(names[: len(COUNTS)]) == COUNTS
        assert all(f.kw_only for f in dataclasses.fields(record) if f.name in COUNTS)


def test_stage_records_print_kind_as_its_value() -> None:
    """The JSON of a stage run and of a result's stage has the kind as its value."""
    stage = make_stage_run("r", kind=rb.StageKind.FLAT_MAP, events_in=2)
    stats = rb.StageStats("split", rb.StageKind.FLAT_MAP, ("parse",), events_in=2)
    assert stage.to_dict()["kind"] == "flat_map"
    assert stats.to_dict() == {
        "name": "split",
        "kind": "flat_map",
        **dict.fromkeys(COUNTS, 0),
        "events_in": 2,
        "seconds": 0.0,
        "fused_with": ["parse"],
    }


def test_counters_freeze_into_stage_stats_with_their_kind() -> None:
    """StageCounters keep a StageKind (a kind's value is taken too) and freeze into the
    StageStats of a result, counts included."""
    from riverbed._runtime.result import StageCounters

    counters = StageCounters("parse", "map", ("split",))
    counters.events_in = 3
    assert counters.kind is rb.StageKind.MAP
    frozen = counters.freeze()
    assert frozen == rb.StageStats("parse", rb.StageKind.MAP, ("split",), events_in=3)
    assert frozen.counts() == counters.values()


@pytest.mark.parametrize("action", list(rb.OnError), ids=lambda action: action.value)
def test_run_error_round_trips_with_its_action(store: rb.Store, action: rb.OnError) -> None:
    """A run's error is the result's StageError, kept whole: its action comes back an
    ``rb.OnError``, in the run's row and in its history."""
    run = make_run()
    store.create_run(run)
    error = rb.StageError("parse", "ValueError", "bad", "tb", 3, action, "'line 7'")
    assert store.transition(run.run_id, rb.RunStatus.FAILED, error=error).error == error
    assert store.get_run(run.run_id).error == error
    assert store.history(run.run_id)[-1].error == error
    assert error.to_dict()["action"] == action.value


def test_error_info_is_the_stage_error_record() -> None:
    """rb.ErrorInfo, the name a run's record used, is the same record as rb.StageError;
    a run's own failure (no stage, no event) is one with its defaults."""
    assert rb.ErrorInfo is rb.StageError
    error = rb.ErrorInfo(None, "KeyError", "'k'", "tb")
    assert (error.attempts, error.action, error.event) == (1, rb.OnError.STOP, None)


@pytest.mark.parametrize("dialect", list(Dialect))
def test_an_error_stored_before_it_kept_its_action_reads_back(dialect: Dialect) -> None:
    """An error column written with only stage, type, message and traceback (as stores
    wrote it before) reads back with the defaults for attempts, action and event."""
    codec = Codec(dialect)
    old = json.dumps({"stage": "s", "error_type": "E", "message": "m", "traceback": "tb"})
    assert codec.error_out(old) == rb.StageError("s", "E", "m", "tb")
    assert codec.error_out(codec.error_in(rb.StageError("s", "E", "m", "tb", 2))) == (
        rb.StageError("s", "E", "m", "tb", 2)
    )
    with pytest.raises(TypeError, match="StageError"):
        codec.error_in("boom")  # type: ignore[arg-type]
