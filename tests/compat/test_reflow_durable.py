"""A REFlow flow given a store is a riverbed run like any other: recorded, listed by
``riverbed runs``, and resumable from its last checkpoint, its producer's state and its
workers' state included."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import riverbed as rb
from riverbed.cli import app
from riverbed.compat import reflow

BREAK_AT: set[int] = set()
"""Events the sink fails on while they are in here."""


class Readings:
    """The producer's state: readings 0 .. 499, counting how often it was made."""

    made = 0

    def __init__(self) -> None:
        Readings.made += 1
        self.at = 0

    def next(self, limit: int) -> list[int]:
        if self.at >= 500:
            raise reflow.EndOfStreamException
        batch = list(range(self.at, min(500, self.at + limit)))
        self.at += len(batch)
        return batch


class Tally:
    """A worker's state: how many events it has seen."""

    def __init__(self) -> None:
        self.seen = 0

    def count(self, event: int) -> list[tuple[int, int]]:
        self.seen += 1
        return [(event, self.seen)]


def _graph(consumed: list[tuple[int, int]]) -> reflow.EventSource:
    def sink(events: list[tuple[int, int]]) -> int:
        for event in events:
            if event[0] in BREAK_AT:
                raise RuntimeError("the sink's disk is full")
            consumed.append(event)
        return len(events)

    source = reflow.EventSource(Readings).with_producer_fn(Readings.next)
    tally = reflow.EventTransformer(1.0, init_fn=Tally).with_transform_fn(Tally.count)
    source.send_to(tally).send_to(reflow.EventSink().with_consumer_fn(sink))
    return source


@pytest.fixture(params=["local", "ray"])
def engines(request: pytest.FixtureRequest) -> list[str]:
    """One local engine, or one of a Ray instance."""
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
        return ["ray"]
    return ["tcp://localhost:5001"]


def test_a_failed_dialect_run_is_listed_and_resumes(tmp_path: Path, engines: list[str]) -> None:
    """The run fails in its sink: ``riverbed runs list`` shows it FAILED; deployed again
    with ``resume=`` it goes on from its checkpoint (the producer's state is not made
    anew) and every reading is counted once by the worker's tally."""
    url = f"sqlite:///{tmp_path}/runs.db"
    # Small batches and frequent checkpoints, so the failure comes after several.
    cluster = reflow.FlowCluster(engines, store=url, batch_size=20, checkpoint_events=100)
    Readings.made = 0
    first: list[tuple[int, int]] = []
    BREAK_AT.add(420)

    async def fail() -> str:
        job_id = await cluster.deploy(_graph(first))
        with pytest.raises(rb.RunFailedError, match="disk is full"):
            await cluster.wait_for_completion(job_id, 60)
        return job_id

    async def resume(job_id: str, into: list[Any]) -> bool:
        await cluster.deploy(_graph(into), resume=job_id)
        return await cluster.wait_for_completion(job_id, 60)

    try:
        job_id = asyncio.run(fail())
    finally:
        BREAK_AT.clear()
    listed = CliRunner().invoke(app, ["runs", "list", "--store", url, "--json"])
    rows = json.loads(listed.stdout)
    assert [(r["run_id"], r["status"], r["flow"]) for r in rows] == [
        (job_id, "failed", "reflow.next")
    ]
    second: list[tuple[int, int]] = []
    assert asyncio.run(resume(job_id, second))
    assert Readings.made == 1  # the resumed run took the producer's state from the checkpoint
    assert first[-1][0] == 419
    assert second[-1] == (499, 500)  # the tally counted each of the 500 readings once
    assert {event for event, _ in first + second} == set(range(500))
    assert rb.open_store(url).get_run(job_id).status is rb.RunStatus.SUCCEEDED
