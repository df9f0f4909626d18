"""The options of a run, shared by ``Flow.run``, ``Flow.arun`` and the runners."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from riverbed._runtime.clock import Clock

if TYPE_CHECKING:
    from riverbed._runtime.observer import RunObserver
    from riverbed._store.protocol import Store


class Default(enum.Enum):
    """The type of ``DEFAULT``: "not given", where None means something (no checkpoints)."""

    DEFAULT = "default"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = Default.DEFAULT

DEFAULT_CHECKPOINT_INTERVAL = 5.0
"""Seconds between checkpoints of a run recorded in a store, unless it says otherwise:
such a run is resumable after a crash by default. Five seconds bounds what a crash costs
(at most five seconds of input read again) at a cost benchmark W2C measures at about 1% of
throughput for W2's state; shorter intervals cost more, since every checkpoint writes the
whole state."""


class RunOptions(TypedDict, total=False):
    """Keyword options of ``Flow.run`` / ``Flow.arun``; every one has a default."""

    batch_size: int
    """Most events a source reads into one batch (1000)."""
    progress: bool | None
    """Live progress per stage: None (default) shows it only on a terminal."""
    clock: Clock
    """The clock for retries' backoff and source polling (the system clock)."""
    concurrency: int
    """Calls of an async stage in flight at once, unless the stage sets its own (16)."""
    channel_capacity: int
    """Batches an edge between chains holds before its writer waits (4)."""
    raise_on_failure: bool
    """Raise ``RunFailedError`` when the run FAILED (True), or just return the result."""
    run_id: str
    """The run's id (a new random one)."""
    max_errors: int
    """How many handled errors the result keeps in full (1000); counters count all."""
    seed: int
    """Seed of the random jitter of retries, for repeatable tests."""
    store: Store | str | bool | None
    """Where the run is recorded: a ``Store``, a store URL, None for the default store
    (RIVERBED_STORE, else ``./.riverbed``; the default), or False for nowhere."""
    checkpoint_interval: float | None
    """Seconds of the run's clock between checkpoints; None for none by time. By default
    ``DEFAULT_CHECKPOINT_INTERVAL`` (5 s) for a run recorded in a store that sets no
    ``checkpoint_events``, none for a run without a store or on a test's ``clock``."""
    checkpoint_events: int
    """Source events between checkpoints (None: none by volume)."""
    resume: str
    """Resume this run (its id) from its last checkpoint instead of starting a new one."""
    rerun_of: str
    """Start a new run from the last checkpoint of this (failed) run; the new run records
    it as ``rerun_of``."""
    target: str
    """``module:attr`` of the flow, recorded so that workers and ``riverbed runs`` can load
    it again."""
    compatible: bool
    """Resume even though the flow's version changed since the checkpoint (False)."""
    params: Mapping[str, Any]
    """Parameters recorded with the run."""
    claimed: str
    """A run this process claimed from the store's queue (what workers pass): its record is
    already RUNNING here; it resumes from its checkpoint if it has one. Interrupted
    (SIGTERM, Ctrl-C), it goes back to the queue rather than being cancelled."""
    observers: Sequence[RunObserver]
    """Told what the run does (``RunObserver``): when it is recorded, when it ends."""
