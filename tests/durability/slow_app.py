"""Flows whose steps take longer than a lease, for the lease and worker tests, loaded by
TARGET (``tests.durability.slow_app:...``). Every call of a step is recorded in the
SQLite file $SLOW_CALLS, with the process that made it, so that a test can count them."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator

import riverbed as rb

BUSY_SECONDS = float(os.environ.get("SLOW_BUSY_SECONDS", "5"))
"""How long the slow step keeps the CPU (and the GIL, but for switches) busy."""


def record(stage: str, event: object) -> None:
    """Note one call of ``stage`` on ``event`` by this process."""
    with sqlite3.connect(os.environ["SLOW_CALLS"], timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS calls (stage TEXT, event TEXT, pid INTEGER)")
        db.execute("INSERT INTO calls VALUES (?, ?, ?)", (stage, repr(event), os.getpid()))


def calls(path: str) -> list[tuple[str, str, int]]:
    """Every call recorded in ``path`` (none while its first writer has not made the
    table yet)."""
    with sqlite3.connect(path, timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS calls (stage TEXT, event TEXT, pid INTEGER)")
        return db.execute("SELECT stage, event, pid FROM calls ORDER BY rowid").fetchall()


def busy(seconds: float) -> None:
    """Keep this thread busy in Python for ``seconds`` (no sleep: the GIL is held)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def slow_step(order: dict[str, int]) -> dict[str, int]:
    """A synchronous step longer than the lease."""
    record("slow_step", order["id"])
    busy(BUSY_SECONDS)
    return {**order, "checked": 1}


def last_step(order: dict[str, int]) -> dict[str, int]:
    record("last_step", order["id"])
    return {**order, "done": 1}


slow_workflow = rb.Flow("slow-workflow")
slow_workflow.input().map(slow_step).map(last_step).output()


def slow_map(x: int) -> int:
    """A stream stage whose first event takes longer than the lease."""
    record("slow_map", x)
    if x == 0:
        busy(BUSY_SECONDS)
    return x


def keep(x: int) -> None:
    record("sink", x)


slow_stream = rb.Flow("slow-stream")
slow_stream.source([0, 1, 2], name="numbers").map(slow_map).sink(keep, name="keep")


PACED_EVENTS = 3000


def paced(steps: int = PACED_EVENTS) -> Iterator[int]:
    """Events paced over about six seconds (three batches of 1000), so that a test can
    interrupt the run mid-way."""
    for i in range(steps):
        time.sleep(0.002)
        yield i


def paced_events() -> Iterator[int]:
    return paced()


def remember(x: int) -> None:
    record("remember", x)


def third(x: int) -> int:
    return x % 3


def add(total: int, x: int) -> int:
    return total + x


paced_stream = rb.Flow("paced-stream")
paced_stream.source(paced_events, name="ticks").key_by(third).fold(int, add, name="sum").sink(
    remember, name="remember"
)

PACED_TOTALS = {key: sum(i for i in range(PACED_EVENTS) if i % 3 == key) for key in range(3)}
"""What ``paced_stream`` must emit: each key's total, once."""
