"""The records' enums go to the store as their values and come back as the enums: the
store's codec is the one place where they are strings (and the JSON module, for people)."""

from __future__ import annotations

import dataclasses

import pytest

import riverbed as rb
from riverbed._records import COUNTS, StageCounts
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
