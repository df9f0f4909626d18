"""Flows for the database-restart tests, loaded by TARGET
(``tests.durability.restart_app:...``): a paced keyed stream writing each event's running
count exactly once into a PostgreSQL table ($RESTART_ROWS = ``url#table``), and a
three-step workflow that records each step's calls in $SLOW_CALLS."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import riverbed as rb
from riverbed.connectors import PostgresTable
from tests.durability.slow_app import busy, record

EVENTS = 6000
KEYS = 10


def events() -> Iterator[dict[str, int]]:
    """Events paced over about six seconds."""
    for i in range(EVENTS):
        if i % 100 == 0:
            time.sleep(0.1)
        yield {"id": i, "key": i % KEYS}


def key_of(event: dict[str, int]) -> int:
    return event["key"]


class Count:
    """Per key: how many events so far."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, event: dict[str, int]) -> int:
        self.n += 1
        return self.n


def row(pair: tuple[int, int]) -> tuple[int, int]:
    return pair


def stream() -> rb.Flow:
    """The stream, writing ``(key, n)`` rows into the table $RESTART_ROWS names."""
    url, _, table = os.environ["RESTART_ROWS"].partition("#")
    flow = rb.Flow("restart-stream")
    flow.source(events, name="events").key_by(key_of).stateful(Count, Count.add).map(row).sink(
        PostgresTable(url, table, ["key", "n"]), name="rows"
    )
    return flow


def first(order: dict[str, Any]) -> dict[str, Any]:
    record("first", order["id"])
    return order


def second(order: dict[str, Any]) -> dict[str, Any]:
    """The step during which the database restarts (the test waits for its call)."""
    record("second", order["id"])
    busy(float(os.environ.get("SLOW_BUSY_SECONDS", "3")))
    return order


def third(order: dict[str, Any]) -> dict[str, Any]:
    record("third", order["id"])
    return {**order, "done": True}


workflow = rb.Flow("restart-workflow")
workflow.input().map(first).map(second).map(third).output()
