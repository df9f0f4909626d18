"""Which keys changed since the last checkpoint: marked by the generated loop and the slow
path only when the run takes checkpoints, taken per key or whole, and read back in order."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import riverbed as rb
from riverbed._model.plan import make_plan
from riverbed._runtime.chains.codegen import compile_chain
from riverbed._runtime.keyed import (
    REWRITE_SLACK,
    WHOLE,
    WHOLE_FRACTION,
    ChangedKeys,
    _dumps,
    apply_rows,
)
from riverbed.testing import Capture
from tests.runtime.runs import stream_run


def odd_removed(state: int | None, value: int) -> tuple[int | None, int]:
    """Keeps a count per key; an odd value removes the key's state."""
    if value % 2:
        return None, value
    return (state or 0) + 1, value


def add(total: int, value: int) -> int:
    """Fold step: a sum."""
    return total + value


def _keyed_chain() -> Any:
    flow = rb.Flow("tracked")
    keyed = flow.source([1], name="numbers").key_by(lambda v: v % 3, name="key")
    keyed.stateful(odd_removed, name="counts").fold(int, add, name="sums").sink(
        Capture(), name="out"
    )
    plan = make_plan(flow.name, flow.stages)
    (chain,) = [c for c in plan.chains if any(s.name == "counts" for s in c.stages)]
    return chain


def _loop(marks: list[Any]) -> tuple[Any, list[dict[Any, Any] | None]]:
    chain = _keyed_chain()
    states: list[dict[Any, Any] | None] = [
        {} if stage.name in ("counts", "sums") else None for stage in chain.stages
    ]
    return compile_chain(chain, states, marks=marks), states


def test_without_checkpoints_the_loop_marks_nothing() -> None:
    """With no marks (a run that takes no checkpoints) the generated loop has no marking
    call at all: the hot path is what it was."""
    plain, _ = _loop([])
    marking, _ = _loop([None, set().add, set().add, None])
    assert "D1(k" in marking.source
    assert "D2(k" in marking.source
    assert "D1" not in plain.source
    assert "D2" not in plain.source


def test_the_loop_marks_the_keys_it_writes_and_removes() -> None:
    """With marks, every key whose state a keyed stage wrote or removed is marked."""
    chain = _keyed_chain()
    marked: dict[int, set[Any]] = {}
    marks: list[Any] = []
    for index, stage in enumerate(chain.stages):
        if stage.name in ("counts", "sums"):
            marks.append(marked.setdefault(index, set()).add)
        else:
            marks.append(None)
    compiled, states = _loop(marks)
    lists: list[list[Any]] = [[] for _ in compiled.lists]
    events = [0, 4, 1, 2]  # keys 0, 1, 1, 2: key 1's odd value removes its state
    compiled.run(iter(events), *(items.append for items in lists), 0.0)
    counts, sums = (i for i, s in enumerate(chain.stages) if s.name in ("counts", "sums"))
    assert marked[counts] == {0, 1, 2}
    assert states[counts] == {0: 1, 2: 1}
    assert marked[sums] == {0, 1, 2}


def test_a_run_without_checkpoints_has_no_changed_keys() -> None:
    """A run that takes no checkpoints tracks nothing."""
    flow = rb.Flow("untracked")
    flow.source([1], name="numbers").key_by(lambda v: v, name="key").fold(int, add).sink(
        Capture(), name="out"
    )
    run = stream_run(flow)
    assert not run.checkpointing
    assert run.changed_keys("add") is None


def _changed(size: int) -> ChangedKeys:
    changed = ChangedKeys({key: key * 10 for key in range(size)})
    changed.take()  # the first take is whole: every key is new
    return changed


def test_few_changed_keys_are_taken_one_row_each() -> None:
    """A few changed keys give one row each (None for a removed key), then none."""
    changed = _changed(1000)
    changed.state[5] = 55
    changed.mark(5)
    del changed.state[7]
    changed.mark(7)
    rows, whole = changed.take()
    assert not whole
    assert {pickle.loads(k): v if v is None else pickle.loads(v) for k, v in rows.items()} == {
        5: 55,
        7: None,
    }
    assert changed.take() == ({}, False)


def test_many_changed_keys_are_taken_whole() -> None:
    """When more than WHOLE_FRACTION of the keys changed, the state is taken whole, in one
    row, which replaces the rows before."""
    changed = _changed(1000)
    for key in range(int(1000 * WHOLE_FRACTION) + 1):
        changed.mark(key)
    rows, whole = changed.take()
    assert whole
    assert list(rows) == [WHOLE]
    value = rows[WHOLE]
    assert value is not None
    assert pickle.loads(value) == changed.state


def test_a_stage_is_rewritten_whole_once_it_wrote_as_many_rows_as_it_has_keys() -> None:
    """Rows written key by key since the last whole write are bounded by the live keys
    (and REWRITE_SLACK): then the next checkpoint writes it whole (dropping markers)."""
    changed = _changed(100)
    written = 0
    while True:
        for key in range(5):  # 5% of the keys: taken per key
            changed.mark(key)
        rows, whole = changed.take()
        if whole:
            break
        written += len(rows)
    assert written <= 100 + REWRITE_SLACK
    assert written > REWRITE_SLACK


def test_a_restored_stage_from_elsewhere_is_taken_whole_first() -> None:
    """``complete``: the first take writes the whole state even if nothing changed."""
    changed = ChangedKeys({1: 2}, complete=True)
    rows, whole = changed.take()
    assert whole
    assert list(rows) == [WHOLE]
    assert changed.take() == ({}, False)


class Unpicklable:
    """A state that refuses pickling."""

    def __reduce__(self) -> Any:
        raise TypeError("not today")


def test_a_state_that_cannot_be_pickled_names_its_key() -> None:
    """The pickling error of a key's state says which key it was."""
    changed = _changed(100)
    changed.state["bad"] = Unpicklable()
    changed.mark("bad")
    with pytest.raises(TypeError, match="not today") as raised:
        changed.take()
    assert "'bad'" in "".join(raised.value.__notes__)


def test_rows_apply_in_order_whatever_the_key_pickles_to() -> None:
    """Keys equal but pickled differently (1, 1.0, True) are one key: applied oldest
    first, the rows give the state the run had."""
    rows = {
        WHOLE: pickle.dumps({1: "a", 2: "b"}),
        _dumps(1.0, 1.0): pickle.dumps("c"),
        _dumps(True, True): None,
        _dumps(2, 2): pickle.dumps("d"),
    }
    assert apply_rows({9: "stale"}, rows) == {2: "d"}


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(values)
def test_a_row_is_a_pickle_that_reads_back_equal(value: Any) -> None:
    """Rows are pickles without their frame header, and read back equal."""
    assert pickle.loads(_dumps("key", value)) == value


def test_a_large_row_keeps_its_frames() -> None:
    """A pickle of many frames is left as it is."""
    value = list(range(100_000))
    data = _dumps("key", value)
    assert data == pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    assert pickle.loads(data) == value
