"""The runner interface: what executes a run's plan. The local runner (one process,
asyncio) implements it; another runner (a cluster's) implements the same two methods
without touching the model, the store, the run's lifecycle or chain execution.

A runner never opens a store and never records anything itself: the run it is given
(``StreamRun``) carries its lifecycle, and commits checkpoints through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from riverbed._model.plan import Chain
from riverbed._model.stages import Stage
from riverbed._runtime.cache import StepCache
from riverbed._runtime.clock import Clock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.result import StageCounters
from riverbed._runtime.stream import StreamRun

__all__ = ["Runner", "Step"]


@dataclass
class Step:
    """One step of a workflow: the chain of its one stage, the events that reached it,
    and what it counts and fails into."""

    chain: Chain
    events: list[Any]
    counters: StageCounters
    failures: FailureLog
    clock: Clock
    cache: StepCache | None
    """The store's step cache, for a ``cache=True`` stage (None: no store)."""


class Runner(Protocol):
    """Executes runs: streams to their end, workflows step by step."""

    name: str
    """The runner's kind, e.g. ``"local"``."""

    @property
    def where(self) -> str:
        """What the run record says ran it: ``"local"``, or a cluster runner's name and
        address (``"ray:auto"``)."""
        ...

    def exchange_before(self, stage: Stage) -> bool:
        """True if the runner moves the events that reach ``stage`` between processes
        (so the plan starts a chain there, see ``make_plan``); the local runner never
        does."""
        ...

    async def run_stream(self, run: StreamRun) -> BaseException | None:
        """Execute ``run`` until its sources end or it is stopped (``run.control``);
        return the error that stopped it, or None. Fills ``run.counters`` and
        ``run.positions``; takes consistent checkpoints if ``run.checkpointing``
        (committed with ``run.commit_checkpoint``, a last one when it drains); commits
        transactional sinks at the end otherwise (``run.commit_unchecked``); closes every
        sink."""
        ...

    async def run_step(self, step: Step) -> dict[str, list[Any]]:
        """Run one workflow step on its events; return its outputs per output port name.
        A failure its policy says STOP raises ``StageFailedError``."""
        ...
