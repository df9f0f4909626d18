"""Flows for tests/test_cli_runs.py, loaded by TARGET as ``tests.cli_runs_app:...``."""

from __future__ import annotations

import os
import time
from typing import Any

import riverbed as rb

BROKEN = False
"""While True, ``fragile`` fails on 7 (the bug a test then 'fixes')."""
PICKY = True
"""While True, ``picky`` fails on 3 and 7."""
SEEN: list[int] = []


def tens(x: int) -> int:
    return x % 10


def keep(x: object) -> None:
    """A sink that keeps nothing: the tests read the counters."""


def fragile(x: int) -> int:
    if BROKEN and x == 7:
        raise ValueError("seven is broken")
    return x


def picky(x: int) -> int:
    if PICKY and x in (3, 7):
        raise ValueError(f"{x} is not liked")
    return x


def double(x: int) -> int:
    return x * 2


counting = rb.Flow("counting")
counting.source(list(range(10)), name="numbers").sink(keep, name="keep")

fragile_flow = rb.Flow("fragile")
fragile_flow.source(list(range(10)), name="numbers").map(fragile).sink(keep, name="keep")

lettered = rb.Flow("lettered")
lettered.source(list(range(10)), name="numbers").map(picky, on_error=rb.OnError.DEAD_LETTER).map(
    double
).sink(SEEN.append, name="seen")


def add_tax(order: dict[str, float]) -> dict[str, float]:
    return {**order, "total": round(order["net"] * 1.2, 2)}


workflow = rb.Flow("taxes")
workflow.input().map(add_tax).output()


def check_total(order: dict[str, float]) -> dict[str, float]:
    if BROKEN:
        raise ValueError("the tax office is closed")
    return order


fragile_workflow = rb.Flow("fragile-taxes")
fragile_workflow.input().map(add_tax).map(check_total).output()


TALLIES: list[tuple[int, int]] = []


def parity(x: int) -> int:
    return x % 2


def count_one(total: int, x: int) -> int:
    return total + 1


def keep_tally(pair: tuple[int, int]) -> None:
    TALLIES.append(pair)


def _tallies(fold_name: str) -> rb.Flow:
    flow = rb.Flow("tallies")
    keyed = flow.source(list(range(10)), name="numbers").map(fragile).key_by(parity)
    keyed.fold(int, count_one, name=fold_name).sink(keep_tally, name="out")
    return flow


tallies = _tallies("tally")
renamed_tallies = _tallies("count")
"""``tallies`` after its fold was renamed (same flow name, so it may resume its runs)."""


# -- for tests/test_cli_trust.py and the replay / recover tests ---------------------------

SLOW_SECONDS = float(os.environ.get("RIVERBED_TEST_SLOW_SECONDS", "0.02"))
"""How long ``crawl`` takes per event: long enough to kill or take over a run midway."""


def crawl(x: int) -> int:
    time.sleep(SLOW_SECONDS)
    return x


slow = rb.Flow("slow")
slow.source(list(range(150)), name="numbers").map(crawl).sink(keep, name="keep")

strict_letters = rb.Flow("strict-letters")
strict_letters.source(list(range(10)), name="numbers").map(
    picky, on_error=rb.OnError.DEAD_LETTER
).map(fragile).sink(SEEN.append, name="seen")
"""Dead-letters 3 and 7 while PICKY; their replay FAILS (policy STOP) while BROKEN."""


class Opaque:
    """An event that cannot be pickled: its dead letter is kept by its repr only."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self) -> Any:
        raise TypeError("an Opaque cannot be pickled")

    def __repr__(self) -> str:
        return f"Opaque({self.n})"


def refuse(x: object) -> object:
    raise ValueError(f"{x!r} refused")


opaque = rb.Flow("opaque")
opaque.source([Opaque(1), Opaque(2)], name="things").map(
    refuse, on_error=rb.OnError.DEAD_LETTER
).sink(keep, name="keep")


# -- run parameters: `riverbed schedule -p NAME=VALUE` ------------------------------------

TAKEN: list[int] = []
"""What ``up_to``'s sink received."""


def take(x: int) -> None:
    TAKEN.append(x)


def up_to(limit: int, step: int = 1) -> rb.Flow:
    """A factory taking the run's parameters: the numbers below ``limit``, by ``step``."""
    flow = rb.Flow("up-to")
    flow.source(list(range(0, limit, step)), name="numbers").sink(take, name="take")
    return flow
