"""Observers of a run: code told what a run does, as it does it, without being wired into
the runner that executes it (the CLI prints the run id this way; progress displays,
metrics and dashboards are observers too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from riverbed._records import RunRecord
    from riverbed._runtime.result import RunResult
    from riverbed._runtime.workflow import WorkflowResult

__all__ = ["RunObserver"]


class RunObserver:
    """Told what a run does. Subclass it and override what you need; every method does
    nothing by default. Methods are called on the run's event loop: keep them short.

    >>> import riverbed as rb
    >>> class Announce(rb.RunObserver):
    ...     def started(self, run):
    ...         print("run", run.flow, "is recorded")
    >>> flow = rb.Flow("hello")
    >>> flow.source([1]).sink(lambda x: None)
    >>> result = flow.run(store=False, observers=[Announce()])
    """

    __module__ = "riverbed"

    def started(self, run: RunRecord) -> None:
        """The run is recorded in the store as RUNNING (only runs with a store; a resumed
        run is told at each attempt)."""

    def stopping(self, reason: str) -> None:
        """The run was asked to stop before its end: ``reason`` says by what (``"SIGINT"``,
        ``"SIGTERM"``). It stops cleanly next: cancelled, or back in the queue for a run a
        worker claimed."""

    def ended(self, result: RunResult | WorkflowResult) -> None:
        """The run ended (or stopped); ``result`` is what ``Flow.run`` (or ``rb.run``)
        returns, its status the one the store holds."""
