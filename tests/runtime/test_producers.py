"""Producer functions as sources: ``fn(limit)`` and ``fn(state, limit)`` return up to
``limit`` events, ``[]`` for nothing now (asked again with a bounded backoff), and raise
``rb.EndOfStream`` at the end; a stateful producer's state is checkpointed and resumed."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed._model.producers import FIRST_WAIT
from riverbed.testing import Capture

pytestmark = pytest.mark.usefixtures("on_runner")


def _run(flow: rb.Flow, **options: Any) -> rb.RunResult:
    options.setdefault("progress", False)
    options.setdefault("store", False)
    return flow.run(**options)


class Counter:
    """A producer's state: counts up to ``end``, ``limit`` numbers per call."""

    made = 0

    def __init__(self, end: int = 50) -> None:
        Counter.made += 1
        self.next_number = 0
        self.end = end

    def produce(self, limit: int) -> list[int]:
        if self.next_number >= self.end:
            raise rb.EndOfStream
        batch = list(range(self.next_number, min(self.end, self.next_number + limit)))
        self.next_number += len(batch)
        return batch


def test_a_function_of_limit_is_a_source() -> None:
    """``flow.source(fn)`` with ``fn(limit)``: called with the batch size, its events go on
    in order, ``[]`` means nothing now, ``rb.EndOfStream`` ends the run."""
    limits: list[int] = []
    script = iter([[1, 2], [], [3], [], [], [4, 5, 6]])

    def produce(limit: int) -> list[int]:
        limits.append(limit)
        batch = next(script, None)
        if batch is None:
            raise rb.EndOfStream
        return batch

    out = Capture()
    flow = rb.Flow("limit")
    flow.source(produce, name="numbers").sink(out, name="out")
    result = _run(flow, batch_size=3)
    assert result.ok
    assert out.items == [1, 2, 3, 4, 5, 6]
    assert set(limits) == {3}
    assert len(limits) == 7  # six batches, then the call that ended the stream
    assert result.positions == {"numbers": {"0": 6}}


def test_a_stateful_producer_per_partition() -> None:
    """``rb.Producer(fn, state=Factory, partitions=2)``: each partition calls
    ``fn(state, limit)`` with a state of its own, made once."""
    Counter.made = 0
    out = Capture()
    flow = rb.Flow("two-counters")
    flow.source(rb.Producer(Counter.produce, state=Counter, partitions=2), name="c").sink(
        out, name="out"
    )
    result = _run(flow, batch_size=7)
    assert result.ok
    assert sorted(out.items) == sorted(list(range(50)) * 2)
    assert Counter.made == 2
    assert {p["produced"] for p in result.positions["c"].values()} == {50}


def test_async_producers_and_async_state_factories() -> None:
    """The producer and its state's factory may be ``async def``."""

    async def connect() -> dict[str, int]:
        await asyncio.sleep(0)
        return {"at": 0}

    async def fetch(state: dict[str, int], limit: int) -> list[int]:
        await asyncio.sleep(0)
        if state["at"] >= 10:
            raise rb.EndOfStream
        state["at"] += 1
        return [state["at"]]

    out = Capture()
    flow = rb.Flow("async-producer")
    flow.source(rb.Producer(fetch, state=connect), name="fetch").sink(out, name="out")
    assert _run(flow).ok
    assert out.items == list(range(1, 11))


def test_an_idle_producer_is_asked_again_with_a_bounded_backoff() -> None:
    """While a producer keeps returning ``[]`` the wait before the next call doubles, and
    it never grows past ``max_wait``."""
    calls: list[float] = []

    def quiet(limit: int) -> list[int]:
        calls.append(time.monotonic())
        if len(calls) < 9:
            return []
        raise rb.EndOfStream

    flow = rb.Flow("quiet")
    flow.source(rb.Producer(quiet, max_wait=0.08), name="quiet").sink(print, name="out")
    assert _run(flow).ok
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    for n, gap in enumerate(gaps[1:]):  # the first gap is the runner's poll alone
        assert gap >= min(FIRST_WAIT * 2**n, 0.08) * 0.9
    assert max(gaps) < 0.08 + 0.5  # bounded (with room for a busy machine)


def test_bad_producers_are_named() -> None:
    """A producer of (state, limit) without a state, a producer returning something else
    than a list, or more than its limit: clear errors naming it."""
    flow = rb.Flow("bad")
    with pytest.raises(rb.FlowDefinitionError, match=r"rb.Producer\(fn, state=Factory\)"):
        flow.source(Counter.produce, name="no_state")
    with pytest.raises(TypeError, match=r"as \(state, limit\)"):
        rb.Producer(lambda limit: [], state=dict)
    with pytest.raises(TypeError, match=r"needs state="):
        rb.Producer(Counter.produce)
    with pytest.raises(ValueError, match="max_wait= must be seconds > 0"):
        rb.Producer(lambda limit: [], max_wait="1")
    with pytest.raises(ValueError, match="partitions= must be an int >= 1"):
        rb.Producer(lambda limit: [], partitions=0)

    for returned, message in [((1, 2), "returned tuple"), ([1] * 9, "9 events, more than")]:
        flow = rb.Flow("bad-result")
        flow.source(lambda limit, r=returned: r, name="src").sink(print, name="out")
        result = _run(flow, batch_size=5, raise_on_failure=False)
        assert result.status is rb.RunStatus.FAILED
        assert result.error is not None
        assert message in result.error.message
        assert "raise rb.EndOfStream at the end" in result.error.message


STOP_AT: set[int] = set()
"""Events the sink of the resume test fails on while they are in here."""


def test_a_resumed_run_continues_from_the_producers_checkpointed_state(tmp_path: Path) -> None:
    """A stateful producer's state is in each checkpoint: a failed run resumed goes on
    from it (no new state is made), and a running total counts every event once."""
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")

    def flow_into(totals: dict[Any, int]) -> rb.Flow:
        def out(event: tuple[str, int]) -> None:
            if event[1] in STOP_AT:
                raise RuntimeError("the sink broke")
            totals[event[0]] = event[1]

        flow = rb.Flow("resumable-producer")
        numbers = flow.source(
            rb.Producer(Counter.produce, state=lambda: Counter(400)), name="numbers"
        )
        numbers.key_by(lambda n: "all", name="key").fold(
            0, lambda count, n: count + 1, running=True, name="count"
        ).sink(out, name="out")
        return flow

    Counter.made = 0
    totals: dict[Any, int] = {}
    STOP_AT.add(301)
    try:
        failed = _run(
            flow_into(totals),
            store=store,
            batch_size=10,
            checkpoint_events=50,
            raise_on_failure=False,
        )
    finally:
        STOP_AT.clear()
    assert failed.status is rb.RunStatus.FAILED
    assert Counter.made == 1
    checkpoint = store.latest_checkpoint(failed.run_id)
    assert checkpoint is not None
    produced = checkpoint.positions["numbers"]["0"]["produced"]
    assert 0 < produced < 400

    totals.clear()
    resumed = _run(flow_into(totals), store=store, batch_size=10, resume=failed.run_id)
    assert resumed.ok
    assert Counter.made == 1  # the state came from the checkpoint
    assert totals == {"all": 400}  # each of the 400 events counted once
    assert resumed.positions["numbers"]["0"]["produced"] == 400
