"""Flows for the dashboard's tests, loaded by TARGET as ``tests.ui.ui_app:...``."""

from __future__ import annotations

import time

import riverbed as rb

BROKEN = True
"""While True, ``fragile`` fails on 7 (the bug a test then 'fixes' before resuming)."""
PICKY = True
"""While True, ``picky`` refuses Evil events (dead letters)."""
SEEN: list[object] = []


class Evil:
    """An event whose repr is HTML that would run, were it not escaped."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"<script>window.pwned = {self.n}</script>"


def fragile(x: int) -> int:
    if BROKEN and x == 7:
        raise ValueError("seven is <b>broken</b>")
    return x


def picky(x: object) -> object:
    if PICKY and isinstance(x, Evil):
        raise ValueError(f"{x!r} is not liked")
    return x


def keep(x: object) -> None:
    """A sink that keeps nothing: the tests read the counters."""


def remember(x: object) -> None:
    SEEN.append(x)


counting = rb.Flow("counting")
counting.source(list(range(10)), name="numbers").map(abs, name="absolute").sink(keep, name="keep")

fragile_flow = rb.Flow("fragile")
fragile_flow.source(list(range(10)), name="numbers").map(fragile).sink(keep, name="keep")

lettered = rb.Flow("lettered")
lettered.source([1, Evil(2), 3], name="events").map(picky, on_error=rb.OnError.DEAD_LETTER).sink(
    remember, name="remember"
)


def slowly(x: int) -> int:
    """10 ms a number: 400 of them, read in batches of 10 (``batch_size=10``) with a
    checkpoint each 0.1 s, make a run of four seconds whose counters grow as it goes."""
    time.sleep(0.01)
    return x


def slow_flow(n: int = 400) -> rb.Flow:
    """``slow`` with ``n`` numbers: two branches after the slow stage."""
    flow = rb.Flow("slow")
    checked = flow.source(list(range(n)), name="numbers").map(slowly)
    checked.filter(lambda x: x % 2 == 0, name="evens").sink(keep, name="keep")
    checked.map(lambda x: x * x, name="squares").sink(keep, name="totals")
    return flow


slow = slow_flow()

slow_demo = slow_flow(3000)
"""``slow`` for the screenshots: 30 seconds."""


def add_tax(order: dict[str, float]) -> dict[str, float]:
    return {**order, "total": round(order["net"] * 1.2, 2)}


def rounded(order: dict[str, float]) -> dict[str, float]:
    return {**order, "total": round(order["total"])}


taxes = rb.Flow("taxes")
taxes.input().map(add_tax).map(rounded).output()
