"""ROUTING: what match routing costs. N events of three kinds through three handlers that
``match`` on them (one of them emits an event that another handles), in a ``dispatch``
stage, beside two plain loops doing the same work in the same process: one that calls
every handler with every event (what a user writes without routing) and one that routes by
hand (the handler per kind looked up in a dict: the floor). Rates are medians of the repeats;
ratios are the medians of the ratios within each repeat.

    python -m benchmarks.routing --events 200000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import riverbed as rb


@dataclass(frozen=True)
class Reading:
    kind: str
    value: float


def hot(event: Any) -> Any:
    """Hot readings raise an alert."""
    match event:
        case Reading(kind="hot", value=value):
            return [("alert", value)]
    return None


def cold(event: Any) -> Any:
    """Cold readings are counted, nothing emitted."""
    match event:
        case Reading(kind="cold"):
            return None
    return None


def alert(event: Any) -> Any:
    """Alerts become messages."""
    match event:
        case ("alert", value):
            return [f"alert {value}"]
    return None


HANDLERS = (hot, cold, alert)


def readings(n: int) -> list[Reading]:
    kinds = ("hot", "cold", "mild")
    return [Reading(kinds[i % 3], float(i % 97)) for i in range(n)]


def every_handler(events: Iterable[Any]) -> int:
    """Without routing: every handler sees every event, and what it emits."""
    out = 0
    pending = list(events)
    while pending:
        emitted = []
        for event in pending:
            for handler in HANDLERS:
                emitted.extend(handler(event) or ())
        out += len(emitted)
        pending = emitted
    return out


def by_hand(events: Iterable[Any]) -> int:
    """Routing written by hand: a dict from kind to handler."""
    table: dict[Any, Callable[[Any], Any]] = {"hot": hot, "cold": cold, "alert": alert}
    out = 0
    pending = list(events)
    while pending:
        emitted = []
        for event in pending:
            kind = event.kind if isinstance(event, Reading) else event[0]
            handler = table.get(kind)
            if handler is not None:
                emitted.extend(handler(event) or ())
        out += len(emitted)
        pending = emitted
    return out


def dispatched(events: list[Any]) -> int:
    """riverbed: one dispatch stage, routes inferred from the handlers' patterns."""
    count = [0]

    def tally(batch: list[Any]) -> None:
        count[0] += len(batch)

    flow = rb.Flow("routing-bench")
    flow.source(events).dispatch(*HANDLERS, strict=True).sink_batch(tally)
    flow.run(store=False, progress=False)
    return count[0]


def timed(fn: Callable[[list[Any]], int], events: list[Any]) -> tuple[float, int]:
    start = time.perf_counter()
    out = fn(events)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    events = readings(args.events)
    runs: dict[str, list[float]] = {"every handler": [], "by hand": [], "dispatch": []}
    ratios: dict[str, list[float]] = {"every handler": [], "by hand": []}
    for _ in range(args.repeats):
        times = {}
        outs = set()
        for name, fn in [("every handler", every_handler), ("by hand", by_hand)]:
            times[name], out = timed(fn, events)
            outs.add(out)
        times["dispatch"], out = timed(dispatched, events)
        outs.add(out)
        if len(outs) != 1:
            raise SystemExit(f"the implementations disagree on the outputs: {outs}")
        for name, seconds in times.items():
            runs[name].append(args.events / seconds)
        for name in ratios:
            ratios[name].append(times["dispatch"] / times[name])
    print(f"ROUTING, {args.events} events, {args.repeats} repeats (median events/s)")
    for name, rates in runs.items():
        print(f"  {name:14} {statistics.median(rates):>12,.0f}")
    for name, values in ratios.items():
        print(f"  dispatch time / {name} time: {statistics.median(values):.2f}")


if __name__ == "__main__":
    main()
