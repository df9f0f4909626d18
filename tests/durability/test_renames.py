"""Resuming or re-running after stages were renamed: state held in the checkpoint for a
stage the flow no longer has is never dropped silently. The resume is refused, naming the
stages, unless ``renamed=`` says where their state goes."""

from __future__ import annotations

from typing import Any

import pytest

import riverbed as rb
from riverbed.testing import Capture

BROKEN: set[int] = set()
"""Events that ``fragile`` fails on while they are in here."""


def fragile(value: int) -> int:
    """Fails on the values in BROKEN."""
    if value in BROKEN:
        raise RuntimeError(f"cannot take {value}")
    return value


def tens(value: int) -> int:
    """The key: the value's last digit."""
    return value % 10


def add(total: int, value: int) -> int:
    """Fold step: a count of values."""
    return total + 1


def _flow(out: Any, *, fold: str = "tally", source: str = "numbers") -> rb.Flow:
    flow = rb.Flow("renaming")
    keyed = flow.source(list(range(1000)), name=source).map(fragile).key_by(tens)
    keyed.fold(int, add, name=fold).sink(out, name="totals")
    return flow


def _run(flow: rb.Flow, store: rb.Store, **options: Any) -> rb.RunResult:
    return flow.run(
        store=store,
        batch_size=50,
        checkpoint_events=100,
        progress=False,
        raise_on_failure=False,
        **options,
    )


def _failed_run(store: rb.Store, out: Any = None) -> str:
    """A run that failed at event 777, after some checkpoints."""
    BROKEN.add(777)
    try:
        failed = _run(_flow(out if out is not None else Capture()), store)
    finally:
        BROKEN.clear()
    assert failed.status is rb.RunStatus.FAILED
    assert store.latest_checkpoint(failed.run_id) is not None
    return failed.run_id


@pytest.mark.parametrize("how", ["resume", "rerun_of"])
def test_a_compatible_resume_refuses_to_drop_a_renamed_stages_state(
    store: rb.Store, how: str
) -> None:
    """compatible=True after renaming a fold is refused, naming the stage whose state the
    checkpoint holds (it went on from an empty state before: wrong totals, SUCCEEDED)."""
    run_id = _failed_run(store)
    out = Capture()
    with pytest.raises(rb.FlowVersionError, match=r"'tally'.*renamed=") as refused:
        _run(_flow(out, fold="count"), store, compatible=True, **{how: run_id})
    assert refused.value.changed == ("tally",)
    assert out.items == []


@pytest.mark.parametrize("how", ["resume", "rerun_of"])
def test_renamed_carries_a_stages_state_to_its_new_name(store: rb.Store, how: str) -> None:
    """With renamed={old: new} the state goes to the renamed stage: exact totals."""
    run_id = _failed_run(store)
    out = Capture()
    result = _run(
        _flow(out, fold="count"),
        store,
        compatible=True,
        renamed={"tally": "count"},
        **{how: run_id},
    )
    assert result.ok
    assert sorted(out.items) == [(key, 100) for key in range(10)]
    assert result.stages["count"].events_in == 1000  # its counters came along


def test_a_renamed_source_keeps_its_positions(store: rb.Store) -> None:
    """A source's positions are what it holds: renamed, it is refused without a mapping
    (it would read everything again), and goes on where it was with one."""
    run_id = _failed_run(store)
    out = Capture()
    with pytest.raises(rb.FlowVersionError, match="'numbers'"):
        _run(_flow(out, source="values"), store, compatible=True, resume=run_id)
    result = _run(
        _flow(out, source="values"),
        store,
        compatible=True,
        resume=run_id,
        renamed={"numbers": "values"},
    )
    assert result.ok
    assert sorted(out.items) == [(key, 100) for key in range(10)]


def test_renamed_names_must_exist_on_both_sides(store: rb.Store) -> None:
    """A mapping from a stage the checkpoint does not know, or to one the flow does not
    have, is a ValueError naming it."""
    run_id = _failed_run(store)
    renamed_flow = _flow(Capture(), fold="count")
    with pytest.raises(ValueError, match="'talley'"):
        _run(renamed_flow, store, compatible=True, resume=run_id, renamed={"talley": "count"})
    with pytest.raises(ValueError, match="'counts'"):
        _run(renamed_flow, store, compatible=True, resume=run_id, renamed={"tally": "counts"})
    with pytest.raises(ValueError, match="renamed="):
        _run(renamed_flow, store, renamed={"tally": "count"})  # nothing is resumed


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


@pytest.mark.parametrize("new_name", ["new", "old"], ids=["renamed", "same-name"])
@pytest.mark.parametrize("how", ["resume", "rerun_of"])
def test_a_transactional_sink_commits_each_write_once_after_a_restore(
    store: rb.Store, how: str, new_name: str
) -> None:
    """The writes a transactional sink prepared for the checkpoint resumed from are
    committed again under the key they had (the old run's, the sink's old name's), so the
    sink can tell it has them: each event once, renamed or not, also in a re-run (which
    has a new run id)."""
    ledger = Ledger()
    BROKEN.add(777)
    try:
        flow = rb.Flow("ledger")
        flow.source(list(range(1000)), name="numbers").map(fragile).sink(ledger, name="old")
        failed = _run(flow, store)
    finally:
        BROKEN.clear()
    assert failed.status is rb.RunStatus.FAILED
    ledger.buffer.clear()  # what it had not prepared died with the failed run's process
    renamed = rb.Flow("ledger")
    renamed.source(list(range(1000)), name="numbers").map(fragile).sink(ledger, name=new_name)
    options: dict[str, Any] = {how: failed.run_id}
    if new_name != "old":
        options.update(compatible=True, renamed={"old": new_name})
    result = _run(renamed, store, **options)
    assert result.ok
    events = [event for batch in ledger.committed.values() for event in batch]
    assert sorted(events) == list(range(1000))
