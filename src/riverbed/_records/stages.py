"""One stage in one run: its counts, declared once (``StageCounts``), and the two records
made of them: ``StageStats`` in a run's result (with the stages it was fused with) and
``StageRun`` in the store (with its status, times and attempt, field names as its columns).

The live, mutable counters a run keeps while it goes are ``riverbed._runtime.result
.StageCounters``; their ``values()`` are a ``StageCounts``'s fields, their ``freeze()`` a
``StageStats``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from riverbed._records import json
from riverbed._records.kinds import StageKind
from riverbed._records.status import StageStatus

__all__ = ["COUNTS", "StageCounts", "StageRun", "StageStats"]


@dataclass(frozen=True, kw_only=True)
class StageCounts:
    """What one stage did in one run, counted: the one declaration of the counts that a
    run's result (``StageStats``) and the store (``StageRun``) both keep. Keywords only:
    the records built on it put their own fields first."""

    events_in: int = 0
    events_out: int = 0
    errors: int = 0
    """Calls that raised (each failed attempt counts once)."""
    retries: int = 0
    skipped: int = 0
    """Events dropped by policy SKIP (or CONTINUE where the event cannot pass on)."""
    dead_lettered: int = 0
    dropped: int = 0
    """Events the stage's operator dropped by its own rules: late events of a window
    (``late=DROP``), rendezvous orphans evicted by their policy."""
    seconds: float = 0.0
    """Busy time of the loop that ran this stage; fused stages share one loop and one time."""

    def counts(self) -> dict[str, Any]:
        """The counts alone, by name (``COUNTS``), as plain data."""
        return {name: getattr(self, name) for name in COUNTS}


COUNTS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(StageCounts))
"""The names of the counts, in order: ``events_in`` ... ``seconds``."""


@dataclass(frozen=True)
class StageStats(StageCounts):
    """The counts of one stage in one run, as the run's result holds them.

    >>> StageStats("parse", StageKind.MAP, events_in=3, events_out=3).events_out
    3
    """

    name: str
    kind: StageKind
    fused_with: tuple[str, ...] = ()
    """The other stages that ran in the same fused loop."""

    __module__ = "riverbed"

    def to_dict(self) -> dict[str, Any]:
        """The stage's counts as JSON-able data."""
        return json.stage_stats_json(self)


@dataclass(frozen=True)
class StageRun(StageCounts):
    """One stage inside one attempt of one run, as stored: its status, counts and timings.

    >>> StageRun("r1", "parse", StageKind.MAP, StageStatus.SUCCEEDED, events_in=3).events_in
    3
    """

    run_id: str
    stage: str
    kind: StageKind
    status: StageStatus
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempt: int = 1
    """The run's attempt this record belongs to; each attempt keeps its own."""

    __module__ = "riverbed"

    def to_dict(self) -> dict[str, Any]:
        """The stage run as JSON-able data."""
        return json.stage_run_json(self)
