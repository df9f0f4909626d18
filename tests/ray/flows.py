"""Flows the Ray tests run (importable, so that Ray's workers and the CLI load them)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import riverbed as rb
from riverbed.testing import Capture

KEYS = 50
EVENTS = 20_000


def key_of(x: int) -> int:
    return x % KEYS


def add(total: int, x: int) -> int:
    return total + x


def expected_totals(events: int = EVENTS) -> dict[int, int]:
    """Each key's total when every event counts once."""
    totals: dict[int, int] = {}
    for x in range(events):
        totals[key_of(x)] = totals.get(key_of(x), 0) + x
    return totals


class DieOnce:
    """A map that kills the process it runs in when it meets event ``at``, once per
    ``marker`` file: ``how`` is "sigkill" (its worker process) or "ray.kill" (its actor)."""

    def __init__(self, marker: Path, at: int, how: str) -> None:
        self.marker = marker
        self.at = at
        self.how = how

    def __call__(self, x: int) -> int:
        if x == self.at and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            if self.how == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            import ray

            ray.kill(ray.get_runtime_context().current_actor)
        return x


def totals_flow(die: DieOnce | None = None, events: int = EVENTS, sink: Any = None) -> rb.Flow:
    """Events 0..events-1, keyed by ``key_of``, summed per key; ``die`` in the middle."""
    flow = rb.Flow("ray-totals")
    stream = flow.source(range(events), name="numbers")
    if die is not None:
        stream = stream.map(die, name="die")
    totals = stream.key_by(key_of, name="key").fold(0, add, name="total")
    totals.sink(sink if sink is not None else Capture(), name="out")
    return flow


def counting() -> rb.Flow:
    """For the CLI: sums per key of a slow source, recorded in the store."""
    return totals_flow(events=int(os.environ.get("RAY_TEST_EVENTS", EVENTS)))


class Count:
    """Counts a key's events (a stateful stage's class): ``(key, n)`` rows, n = 1, 2..."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, x: int) -> int:
        self.n += 1
        return self.n


def worker_pid(x: int) -> int:
    """A workflow step: where it ran."""
    return os.getpid()


class DieFirstTime:
    """A workflow step that kills its worker process the first time (``marker`` missing)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, x: int) -> int:
        if not self.marker.exists():
            self.marker.write_text("died")
            os.kill(os.getpid(), signal.SIGKILL)
        return x * 2


class KillWhileIdle:
    """A source of 0..events-1 that, half-way, lets the run go idle, SIGKILLs one process
    the ``where`` map ran in (once: it notes it in ``pids/killed``), and stays quiet a
    while: the run's next checkpoint is the first to meet the dead actor (no batch is in
    flight to it)."""

    def __init__(self, pids: Path, events: int, quiet: float = 1.5) -> None:
        self.pids = pids
        self.events = events
        self.quiet = quiet

    async def __call__(self) -> Any:
        import asyncio

        for x in range(self.events):
            killed = self.pids / "killed"
            if x == self.events // 2 and not killed.exists():  # once: the run rolls back
                await asyncio.sleep(0.5)  # every batch sent so far is answered
                victim = int(sorted(self.pids.iterdir())[0].name)
                killed.write_text(str(victim))
                os.kill(victim, signal.SIGKILL)
                await asyncio.sleep(self.quiet)  # checkpoints come due meanwhile
            yield x


class NotePid:
    """A map that notes, in ``pids``, the process it runs in."""

    def __init__(self, pids: Path) -> None:
        self.pids = pids

    def __call__(self, x: int) -> int:
        (self.pids / str(os.getpid())).touch()
        return x


def keeps_print() -> dict[str, Any]:
    """In a fresh process: a flow built with ``print``, then run on Ray, then what Ray does
    when it first shows a worker's output; is ``print`` still Python's, and does the flow
    still save as JSON? (``python -c`` from the Ray tests.)"""
    import builtins

    original = builtins.print
    flow = rb.Flow("keeps-print")
    flow.source([1, 2, 3], name="numbers").map(abs, name="same").sink(print, name="out")
    result = flow.run(runner=rb.RayRunner(parallelism=2), store=False, progress=False)
    from ray.experimental import tqdm_ray

    tqdm_ray.instance()  # what Ray's driver calls on a worker's output
    saved = "builtins:print" in flow.to_json()
    return {"ok": result.ok, "same_print": builtins.print is original, "saved": saved}
