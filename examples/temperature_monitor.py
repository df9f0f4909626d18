"""Temperature monitor: alert when a machine's temperature status changes.

Simulated machines report temperature readings. Each reading is categorised COLD, NOMINAL
or HOT; a per-machine change detector lets through only the readings whose status differs
from that machine's previous one, and those are printed as alerts.

    python examples/temperature_monitor.py              # 5 machines, 60 readings each
    python examples/temperature_monitor.py --forever    # an endless live stream; Ctrl-C stops
    riverbed run examples.temperature_monitor:flow      # the same flow from the CLI

Everything above the wiring at the bottom is plain Python that knows nothing of riverbed.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import itertools
import random
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

MACHINES = 5
READINGS_PER_MACHINE = 60
SEED = 2

SETPOINT = 70.0
"""Degrees Celsius the machines are regulated to."""
COLD_BELOW = 66.0
HOT_ABOVE = 74.0


# -- the events ---------------------------------------------------------------------------


class Status(enum.Enum):
    """Where a reading lies against the thresholds."""

    COLD = "COLD"
    NOMINAL = "NOMINAL"
    HOT = "HOT"


@dataclass(frozen=True)
class Reading:
    """One temperature measurement of one machine."""

    machine: str
    seq: int
    """The machine's n-th reading, from 1."""
    celsius: float


@dataclass(frozen=True)
class Observation:
    """A reading with its status."""

    reading: Reading
    status: Status


@dataclass(frozen=True)
class Alert:
    """A machine's status changed (``before`` is None for its first reading)."""

    reading: Reading
    before: Status | None
    after: Status


# -- the plain Python that does the work ----------------------------------------------------


def machine_readings(
    per_machine: int | None = READINGS_PER_MACHINE, machines: int = MACHINES, seed: int = SEED
) -> Iterator[Reading]:
    """Readings of ``machines`` simulated machines, in rounds of one reading each.

    Each machine's temperature wanders randomly around the setpoint (a random walk pulled
    back towards it). ``per_machine=None`` never ends. The same seed gives the same readings.
    """
    rng = random.Random(seed)
    names = [f"machine-{n}" for n in range(1, machines + 1)]
    temperatures = dict.fromkeys(names, SETPOINT)
    rounds: Iterable[int] = range(per_machine) if per_machine is not None else itertools.count()
    for index in rounds:
        for name in names:
            drift = rng.gauss(0.0, 1.0) + 0.1 * (SETPOINT - temperatures[name])
            temperatures[name] += drift
            yield Reading(name, index + 1, round(temperatures[name], 1))


def paced(per_second: float) -> Callable[[], AsyncIterator[Reading]]:
    """An endless source of readings arriving live, about ``per_second`` of them a second."""

    async def live_readings() -> AsyncIterator[Reading]:
        for reading in machine_readings(per_machine=None):
            await asyncio.sleep(1 / per_second)
            yield reading

    return live_readings


def categorise(reading: Reading) -> Observation:
    """COLD below ``COLD_BELOW``, HOT above ``HOT_ABOVE``, NOMINAL between."""
    if reading.celsius < COLD_BELOW:
        status = Status.COLD
    elif reading.celsius > HOT_ABOVE:
        status = Status.HOT
    else:
        status = Status.NOMINAL
    return Observation(reading, status)


def machine_of(observation: Observation) -> str:
    """The key: which machine an observation is about."""
    return observation.reading.machine


class ChangeDetector:
    """Remembers one machine's last status. One instance per machine."""

    def __init__(self) -> None:
        self.status: Status | None = None

    def update(self, observation: Observation) -> Alert | None:
        """An alert if the status differs from the previous reading's; None otherwise."""
        if observation.status is self.status:
            return None
        alert = Alert(observation.reading, self.status, observation.status)
        self.status = observation.status
        return alert


def print_alert(alert: Alert) -> None:
    """One line per alert."""
    reading = alert.reading
    change = (
        f"starts {alert.after.value}"
        if alert.before is None
        else f"{alert.before.value} -> {alert.after.value}"
    )
    print(f"{reading.machine}  #{reading.seq:<4} {reading.celsius:5.1f} °C  {change}")


# -- the wiring -----------------------------------------------------------------------------

import riverbed as rb  # noqa: E402 - kept apart on purpose: nothing above needs riverbed


def build(readings: Callable[[], Iterable[Reading] | AsyncIterator[Reading]]) -> rb.Flow:
    """The monitor over ``readings``, a function returning the readings (called per run)."""
    flow = rb.Flow("temperature-monitor")
    (
        flow.source(readings, name="readings")
        .map(categorise)
        .key_by(machine_of)
        .stateful(ChangeDetector, ChangeDetector.update, name="detect_change")
        .values()
        .sink(print_alert)
    )
    return flow


flow = build(machine_readings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--forever", action="store_true", help="an endless live stream (Ctrl-C stops it)"
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="readings per second with --forever"
    )
    args = parser.parse_args()
    monitor = build(paced(args.rate)) if args.forever else flow
    print(f"Watching {MACHINES} machines: COLD below {COLD_BELOW} °C, HOT above {HOT_ABOVE} °C.")
    result = monitor.run()
    print()
    print(result.summary())


if __name__ == "__main__":
    main()
