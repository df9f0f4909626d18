"""Module-level stage code for the model tests.

Everything here can be imported by name, so flows built from it serialize to JSON and back;
the wrongly shaped callables at the end are what build-time checks must reject.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import riverbed as rb

NUMBERS = [1, 2, 3, 4, 5, 6]


def numbers() -> Iterator[int]:
    """A generator-function source."""
    yield from range(10)


async def anumbers() -> AsyncIterator[int]:
    """An async-generator-function source."""
    for number in range(3):
        yield number


def up_to_limit(limit: int) -> list[int]:
    """A producer function: ``limit`` numbers per call."""
    return list(range(limit))


def double(x: int) -> int:
    return x * 2


def is_even(x: int) -> bool:
    return x % 2 == 0


def explode(x: int) -> list[int]:
    return [x, x]


def key_of(x: int) -> int:
    return x % 3


def log(x: object) -> None:
    del x


def parity(x: int) -> str:
    return "even" if x % 2 == 0 else "odd"


def is_vowel(letter: str) -> bool:
    # A set literal compiles to a frozenset constant, whose repr order is salted per process.
    return letter in {"a", "e", "i", "o", "u", "y"}


def add(acc: int, x: int) -> int:
    return acc + x


def zero() -> int:
    return 0


def count(state: int | None, value: object) -> tuple[int, int]:
    total = (state or 0) + 1
    return total, total


def collect(events: list[object]) -> None:
    del events


class Average:
    """A per-key state class."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def add(self, value: float) -> float:
        self.n += 1
        self.total += value
        return self.total / self.n


class Printer:
    """A sink object: it has ``write_batch``."""

    def write_batch(self, events: list[object]) -> None:
        del events


class MyMapper:
    """A callable class: its instances are stage functions."""

    def __call__(self, x: int) -> int:
        return x


async def slow_double(x: int) -> int:
    return x * 2


def full_flow() -> rb.Flow:
    """A flow using every operator and setting, all from importable code."""
    retry = rb.Retry(attempts=2, jitter=False)
    flow = rb.Flow("everything", on_error=rb.OnError.SKIP, retry=retry)
    listed = flow.source(NUMBERS, name="numbers")
    generated = flow.source(numbers, name="generated")
    merged = rb.merge(listed, generated)
    trues, falses = merged.branch(is_even)
    doubled = trues.map(
        double,
        on_error=rb.OnError.DEAD_LETTER,
        retry=rb.Retry(attempts=4, backoff=0.5, on=(ValueError, KeyError)),
        timeout=1.5,
    )
    doubled.flat_map(explode).inspect(log).sink(print)
    keyed = falses.key_by(key_of)
    keyed.stateful(Average, Average.add).sink(collect)
    keyed.stateful(count, initial=int).values().sink_batch(collect)
    keyed.fold(zero, add, running=True).sink(print)
    keyed.reduce(add, name="sum").sink(print)
    routes = generated.map(slow_double, concurrency=4).route(parity, ["even", "odd"])
    routes.even.sink(print)
    routes.odd.filter(is_even).sink(print)
    return flow


# -- wrongly shaped callables: each must be refused while the flow is built ------------------


def two_args(a: object, b: object) -> None:
    del a, b


def no_args() -> None:
    pass


def three_args(a: object, b: object, c: object) -> None:
    del a, b, c


def one_arg(a: object) -> None:
    del a


class NeedsArg:
    """A state class whose constructor wants an argument riverbed never passes."""

    def __init__(self, size: int) -> None:
        self.size = size

    def add(self, value: object) -> None:
        del value


class SelfOnly:
    """A state class whose method forgets the value parameter."""

    def update(self) -> None:
        pass

    limit = 10
