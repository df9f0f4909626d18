"""The events, the user functions and the correctness checks shared by every implementation.

Every implementation of a workload (riverbed, the plain loop, naive asyncio, Bytewax) reads
the same ``events`` generator and calls the same functions defined here, so the measured
difference is the cost of moving events between those calls, nothing else.
"""

from __future__ import annotations

import datetime
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]

KEYS = 1000
"""Distinct keys: ``key = i % KEYS``."""
MODULUS = 97
"""``value = float(i % MODULUS)``."""
THRESHOLD = 10.0
"""W1 keeps the events with ``value > THRESHOLD``."""


def events(n: int) -> Iterator[Event]:
    """The ``n`` events of a run, generated lazily (generation is timed with the run):
    ``{"id": i, "key": i % 1000, "value": float(i % 97), "t": i}``."""
    for i in range(n):
        yield {"id": i, "key": i % KEYS, "value": float(i % MODULUS), "t": i}


# -- W1: stateless chain ------------------------------------------------------------------


def add_v2(event: Event) -> Event:
    """W1 map: a new event with the field ``v2 = value * 2`` added."""
    return {**event, "v2": event["value"] * 2}


def keep(event: Event) -> bool:
    """W1 filter: ``value > 10``."""
    return event["value"] > THRESHOLD  # type: ignore[no-any-return]


def project(event: Event) -> tuple[int, float]:
    """W1 map: the tuple ``(id, v2)``."""
    return (event["id"], event["v2"])


def touch(event: Event) -> Event:
    """W1A's middle map, synchronous: the event as it is (trivial work)."""
    return event


async def touch_async(event: Event) -> Event:
    """W1A's middle map as a coroutine function: ``touch``, awaited. riverbed cannot fuse
    an async stage with its neighbours, so W1A moves batches through channels."""
    return touch(event)


# -- W2: keyed running mean ---------------------------------------------------------------


def get_key(event: Event) -> int:
    """W2 key extraction: the event's ``key`` field."""
    return event["key"]  # type: ignore[no-any-return]


class RunningMean:
    """W2 per-key state: running sum and count; ``add`` returns the mean so far."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, event: Event) -> float:
        """Add the event's value; the mean of every value added so far."""
        self.total += event["value"]
        self.count += 1
        return self.total / self.count


# -- W4: fan-out / fan-in -----------------------------------------------------------------


def is_even(event: Event) -> bool:
    """W4 branch predicate: an even ``id``."""
    return event["id"] % 2 == 0  # type: ignore[no-any-return]


def on_even(event: Event) -> tuple[str, int]:
    """W4 map on the even branch."""
    return ("even", event["id"])


def on_odd(event: Event) -> tuple[str, int]:
    """W4 map on the odd branch."""
    return ("odd", event["id"])


# -- W3: event-time windows (benchmarks/w3.py has the variants) ---------------------------

WINDOW_SECONDS = 1.0
"""W3 windows: 1,000 ms of event time."""
SLIDING_SECONDS = 10.0
"""W3-SLIDING windows: 10 s long, one starting every ``WINDOW_SECONDS``."""
SESSION_GAP = 2.0
"""W3-SESSION: a key's session closes after 2 s without an event of that key."""
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def event_seconds(event: Event) -> float:
    """W3 event time: ``t`` (milliseconds) as seconds."""
    return event["t"] / 1000  # type: ignore[no-any-return]


def event_datetime(event: Event) -> datetime.datetime:
    """W3 event time as an aware datetime, for Bytewax's ``EventClock`` (which needs one)."""
    return _EPOCH + datetime.timedelta(milliseconds=event["t"])


def burst_milliseconds(event: Event) -> int:
    """W3-SESSION event time in ms: ``t`` with a pause of 5 s after every 10 s, so each
    key (one event a second) has bursts of 10 events 1 s apart, 6 s between bursts."""
    t: int = event["t"]
    return t + 5000 * (t // 10_000)


def burst_seconds(event: Event) -> float:
    """W3-SESSION event time in seconds."""
    return burst_milliseconds(event) / 1000


def burst_datetime(event: Event) -> datetime.datetime:
    """W3-SESSION event time as an aware datetime, for Bytewax."""
    return _EPOCH + datetime.timedelta(milliseconds=burst_milliseconds(event))


def add_value(total: float, event: Event) -> float:
    """W3-SLIDING fold: the running sum of ``value``."""
    return total + event["value"]  # type: ignore[no-any-return]


class Mean:
    """W3-SESSION aggregator, a plain user class: the mean of ``value``."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, event: Event) -> None:
        """Take one event."""
        self.total += event["value"]
        self.count += 1

    def result(self) -> float:
        """The mean of the values taken."""
        return self.total / self.count


WindowResult = tuple[int, tuple[tuple[float, float], Any]]
"""``(key, ((start, end), value))``: riverbed's ``(key, (rb.Window, value))`` hashes and
compares alike, ``rb.Window`` being a named tuple."""


@dataclass
class WindowResults:
    """W3 sink: how many window results came, and a checksum of them that does not
    depend on their order: the sum of ``hash((key, ((start, end), value)))`` mod 2**64 (the
    hashes of ints, floats and tuples of them are the same in every process)."""

    results: int = 0
    checksum: int = 0

    def add_batch(self, batch: list[WindowResult]) -> None:
        """Take a batch of results, each ``(key, ((start, end), value))``."""
        self.results += len(batch)
        self.checksum = (self.checksum + sum(map(hash, batch))) % 2**64


# -- sinks ---------------------------------------------------------------------------------


@dataclass
class Checksum:
    """W1 sink: how many ``(id, v2)`` pairs came, and the sums of their ids and v2s (the
    same for every implementation whatever the order: the sums are exact)."""

    count: int = 0
    id_sum: int = 0
    v2_sum: float = 0.0

    def add_batch(self, batch: list[tuple[int, float]]) -> None:
        """Count and sum a batch."""
        ids, v2s = self.id_sum, self.v2_sum
        for id_, v2 in batch:
            ids += id_
            v2s += v2
        self.count += len(batch)
        self.id_sum, self.v2_sum = ids, v2s

    def add(self, pair: tuple[int, float]) -> None:
        """Count and sum one pair."""
        self.count += 1
        self.id_sum += pair[0]
        self.v2_sum += pair[1]


@dataclass
class EvenOdd:
    """W4 sink: how many ``("even", id)`` and ``("odd", id)`` pairs came after the merge."""

    evens: int = 0
    odds: int = 0

    def add_batch(self, batch: list[tuple[str, int]]) -> None:
        """Count a batch by tag."""
        evens = 0
        for tag, _ in batch:
            if tag == "even":
                evens += 1
        self.evens += evens
        self.odds += len(batch) - evens

    def add(self, pair: tuple[str, int]) -> None:
        """Count one pair by tag."""
        if pair[0] == "even":
            self.evens += 1
        else:
            self.odds += 1

    @property
    def count(self) -> int:
        """Every pair counted."""
        return self.evens + self.odds


@dataclass
class LastMeans:
    """W2 sink: the last mean seen per key, from ``(key, mean)`` pairs, and how many
    means were emitted in all (one per event)."""

    means: dict[Any, float] = field(default_factory=dict)
    emitted: int = 0

    def update_batch(self, batch: list[tuple[Any, float]]) -> None:
        """Keep the last mean of each key in the batch."""
        self.means.update(batch)
        self.emitted += len(batch)

    def update(self, pair: tuple[Any, float]) -> None:
        """Keep one ``(key, mean)`` pair."""
        self.means[pair[0]] = pair[1]
        self.emitted += 1


# -- correctness checks (each returns None when right, else what is wrong) -----------------


@functools.lru_cache(maxsize=4)
def expected_w1(n: int) -> tuple[int, int, float]:
    """W1's output: how many i in ``range(n)`` have ``i % 97 > 10``, the sum of those i and
    the sum of their ``v2 = 2 * (i % 97)``, computed directly from the definition."""
    kept = [i for i in range(n) if float(i % MODULUS) > THRESHOLD]
    return len(kept), sum(kept), float(sum(2 * (i % MODULUS) for i in kept))


def check_w1(n: int, sink: Any) -> str | None:
    """W1 is right when the sink got exactly the pairs ``(i, v2)`` with ``i % 97 > 10``:
    their count, the sum of their ids and the sum of their v2s."""
    if not isinstance(sink, Checksum):
        return f"W1 sink is {sink!r}, expected Checksum"
    count, ids, v2s = expected_w1(n)
    got = (sink.count, sink.id_sum, sink.v2_sum)
    if got != (count, ids, v2s):
        return f"W1 (count, sum of ids, sum of v2) is {got}, expected {(count, ids, v2s)}"
    return None


@functools.lru_cache(maxsize=4)
def expected_w2(n: int) -> dict[int, float]:
    """Each key's mean over all its values, computed directly from the definition."""
    means: dict[int, float] = {}
    for key in range(min(n, KEYS)):
        values = [float(i % MODULUS) for i in range(key, n, KEYS)]
        means[key] = math.fsum(values) / len(values)
    return means


def check_w2(n: int, sink: Any) -> str | None:
    """W2 is right when one mean was emitted per event and every key's last mean equals
    the mean of its values.

    Keys are compared as ints (Bytewax needs string keys).
    """
    if not isinstance(sink, LastMeans):
        return f"W2 sink is {sink!r}, expected LastMeans"
    if sink.emitted != n:
        return f"W2 emitted {sink.emitted} means, expected one per event: {n}"
    expected = expected_w2(n)
    got = {int(key): mean for key, mean in sink.means.items()}
    if got.keys() != expected.keys():
        missing = sorted(expected.keys() - got.keys())[:5]
        extra = sorted(got.keys() - expected.keys())[:5]
        return f"W2 keys differ: {len(got)} keys, missing e.g. {missing}, extra e.g. {extra}"
    wrong = [k for k in expected if not math.isclose(got[k], expected[k], rel_tol=1e-9)]
    if wrong:
        k = wrong[0]
        return f"W2 last means wrong for {len(wrong)} keys, e.g. key {k}: {got[k]} != {expected[k]}"
    return None


def check_w4(n: int, sink: Any) -> str | None:
    """W4 is right when the merged stream delivered every even id tagged ``"even"`` and
    every odd one tagged ``"odd"``: (n + 1) // 2 and n // 2 of them."""
    if not isinstance(sink, EvenOdd):
        return f"W4 sink is {sink!r}, expected EvenOdd"
    expected = ((n + 1) // 2, n // 2)
    if (sink.evens, sink.odds) != expected:
        return f"W4 (evens, odds) is {(sink.evens, sink.odds)}, expected {expected}"
    return None
