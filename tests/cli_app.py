"""Flows for tests/test_cli.py, imported by TARGET as ``tests.cli_app:...``.

Every callable is a module-level function, so the flows also serialize to JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import riverbed as rb


def numbers() -> Iterator[int]:
    yield from range(10)


def double(x: int) -> int:
    return x * 2


def keep(x: int) -> None:
    """A sink that keeps nothing: the tests read the counters."""


def explode_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def forever() -> Iterator[int]:
    """An endless source that says on stderr when it has started, for the Ctrl-C test."""
    print("started", file=sys.stderr, flush=True)
    count = 0
    while True:
        yield count
        count += 1


def make_flow() -> rb.Flow:
    """A factory: ``riverbed run tests.cli_app:make_flow`` calls it."""
    made = rb.Flow("cli-made")
    made.source(numbers).map(double).sink(keep)
    return made


def dangling() -> rb.Flow:
    """A flow whose map goes nowhere: it fails validation."""
    broken = rb.Flow("cli-dangling")
    broken.source(numbers).map(double)
    return broken


def with_lambda() -> rb.Flow:
    """Valid, but its lambda cannot be written to JSON."""
    anonymous = rb.Flow("cli-lambda")
    anonymous.source(numbers).map(lambda x: x + 1).sink(keep)
    return anonymous


def needs_arguments(name: str) -> rb.Flow:
    return rb.Flow(name)


def not_a_factory() -> int:
    return 42


flow = rb.Flow("cli-doubles")
flow.source(numbers).map(double).sink(keep)

failing = rb.Flow("cli-failing")
failing.source(numbers).map(explode_on_three).sink(keep)

endless = rb.Flow("cli-endless")
endless.source(forever).map(double).sink(keep)

number = 42


def shout(x: int) -> None:
    """A sink that prints, as a newcomer's first flow does."""
    print(f"got {x}")


printing = rb.Flow("cli-printing")
printing.source(numbers).map(double).sink(shout)
