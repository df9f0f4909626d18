"""Observers of a run: code told what a run does, as it does it, without being wired into
the runner that executes it. The CLI prints the run id this way, the live progress display
is one, and so are metrics and dashboards."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from riverbed._records import RunRecord
    from riverbed._runtime.result import DeadLetter, RunResult, StageCounters

__all__ = ["Observers", "RunObserver"]

logger = logging.getLogger("riverbed")


class RunObserver:
    """Told what a run does. Subclass it and override what you need; every method does
    nothing by default. Methods are called on the run's event loop: keep them short (an
    observer that raises is logged and left out, never the run's failure).

    >>> import riverbed as rb
    >>> class Announce(rb.RunObserver):
    ...     def started(self, run):
    ...         print("run", run.flow, "is recorded")
    >>> flow = rb.Flow("hello")
    >>> flow.source([1]).sink(lambda x: None)
    >>> result = flow.run(store=False, observers=[Announce()])
    """

    __module__ = "riverbed"

    counters_every: float | None = None
    """Seconds between ``counters`` calls while the run goes on (None: never)."""

    def started(self, run: RunRecord) -> None:
        """The run is recorded in the store as RUNNING (only runs with a store; a resumed
        run is told at each attempt)."""

    def counters(self, stages: Mapping[str, StageCounters]) -> None:
        """The live counters of every stage, when the run starts and then every
        ``counters_every`` seconds (read them now: they go on changing)."""

    def checkpoint(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` (a stream's) or step ``checkpoint_id`` (a
        workflow's) is committed to the store."""

    def checkpoint_cost(self, checkpoint_id: int, seconds: float, size: int) -> None:
        """Stream checkpoint ``checkpoint_id`` took ``seconds`` to commit (the store's write,
        told right after ``checkpoint``) and wrote ``size`` bytes of state."""

    def dead_letter(self, letter: DeadLetter) -> None:
        """A stage's policy sent an event to the dead letters."""

    def stopping(self, reason: str) -> None:
        """The run was asked to stop before its end: ``reason`` says by what (``"SIGINT"``,
        ``"SIGTERM"``, ``"cancelled"``). It stops cleanly next: cancelled, or back in the
        queue for a run a worker claimed."""

    def ended(self, result: RunResult) -> None:
        """The run ended (or stopped); ``result`` is what ``Flow.run`` (or ``rb.run``)
        returns, its status the one the store holds."""


class Observers:
    """The observers of one run, told together; one that raises is logged and dropped."""

    def __init__(self, observers: Iterable[RunObserver]) -> None:
        self.observers = list(observers)

    def tell(self, event: str, *args: Any) -> None:
        """Call ``event`` (a ``RunObserver`` method name) on every observer."""
        for observer in list(self.observers):
            try:
                getattr(observer, event)(*args)
            except Exception:
                logger.exception("observer %r failed on %s: left out of this run", observer, event)
                self.observers.remove(observer)

    def ticker(
        self, counters: Callable[[], Mapping[str, StageCounters]]
    ) -> asyncio.Task[None] | None:
        """A task calling ``counters`` observers at their interval (None: none wants it);
        the caller cancels it when the run ends."""
        wanting = [o for o in self.observers if o.counters_every is not None]
        if not wanting:
            return None
        every = min(o.counters_every for o in wanting if o.counters_every is not None)

        async def tick() -> None:
            while True:  # told at once, then at the interval: a scrape needs no wait
                snapshot = counters()
                for observer in [o for o in wanting if o in self.observers]:
                    try:
                        observer.counters(snapshot)
                    except Exception:
                        logger.exception("observer %r failed: left out of this run", observer)
                        self.observers.remove(observer)
                await asyncio.sleep(every)

        return asyncio.get_running_loop().create_task(tick())
