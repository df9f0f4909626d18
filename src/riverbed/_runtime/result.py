"""What a run returns, stream or workflow: its status, per-stage counters, dead letters,
errors and outputs (and a workflow's output and steps).

Shared by every runner. Counters are collected in mutable ``StageCounters`` while the run
goes, then frozen into ``StageStats`` in the ``RunResult``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from riverbed._records import (
    COUNTS,
    DeadLetter,
    RunStatus,
    StageError,
    StageKind,
    StageStats,
    StepRecord,
)
from riverbed._records.json import iso, result_error_json

__all__ = [
    "COUNTS",
    "LATENCY_BUCKETS",
    "DeadLetter",
    "RunResult",
    "RunStatus",
    "StageCounters",
    "StageError",
    "StageStats",
    "event_repr",
]


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run of a flow, stream or workflow.

    >>> import riverbed as rb
    >>> flow = rb.Flow("double")
    >>> flow.input().map(lambda x: x * 2).output()
    >>> rb.run(flow, 21, store=False).output
    42
    """

    run_id: str
    flow: str
    flow_version: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime
    stages: Mapping[str, StageStats]
    outputs: Mapping[str, list[Any]] = field(default_factory=dict)
    """What each capturing sink (``riverbed.testing.Capture``) received in this run."""
    dead_letters: tuple[DeadLetter, ...] = ()
    errors: tuple[StageError, ...] = ()
    """Every handled failure (up to ``max_errors`` kept; counters count them all)."""
    error: StageError | None = None
    """Why the run FAILED, if it did."""
    positions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per source, per partition: where reading stood when the run ended."""
    output: Any = None
    """A workflow's output: the first (usually the only) event that reached its
    ``output()``, None if none did (every one is in ``outputs`` under the output stage's
    name)."""
    steps: tuple[StepRecord, ...] = ()
    """A workflow's step records, replayed ones included, by ``seq``."""
    replayed: tuple[str, ...] = ()
    """A workflow's stages whose step was replayed from its record instead of called."""

    __module__ = "riverbed"

    @property
    def ok(self) -> bool:
        """True if the run SUCCEEDED."""
        return self.status is RunStatus.SUCCEEDED

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return (self.ended_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able data: status, times, counters, the error in full and
        the number of dead letters (their events may not be JSON-able). Written with the
        conversions of the records' JSON (``riverbed._records.json``)."""
        return {
            "run_id": self.run_id,
            "flow": self.flow,
            "flow_version": self.flow_version,
            "status": self.status.value,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration": self.duration,
            "stages": {name: stats.to_dict() for name, stats in self.stages.items()},
            "positions": {name: dict(parts) for name, parts in self.positions.items()},
            "errors": len(self.errors),
            "dead_letters": len(self.dead_letters),
            "error": result_error_json(self.error) if self.error is not None else None,
            "output": event_repr(self.output) if self.steps or self.output is not None else None,
            "steps": len(self.steps),
            "replayed": list(self.replayed),
        }

    def summary(self) -> str:
        """A plain-text table of the run: status, then one line of counters per stage."""
        lines = [
            f"run {self.run_id} of flow {self.flow!r}: {self.status.value.upper()} "
            f"in {self.duration:.2f}s"
        ]
        columns = ("in", "out", "errors", "retries", "skipped", "dead", "dropped")
        widths = (10, 10, 7, 7, 7, 6, 7)
        lines.append(
            f"  {'stage':<24}" + "".join(f" {c:>{w}}" for c, w in zip(columns, widths, strict=True))
        )
        for stats in self.stages.values():
            lines.append(
                f"  {stats.name:<24} {stats.events_in:>10} {stats.events_out:>10} "
                f"{stats.errors:>7} {stats.retries:>7} {stats.skipped:>7} {stats.dead_lettered:>6} "
                f"{stats.dropped:>7}"
            )
        if self.error is not None:
            lines.append(
                f"  failed at stage {self.error.stage!r}: {self.error.error_type}: "
                f"{self.error.message} (event {self.error.event}, {self.error.attempts} attempt(s))"
            )
        if self.status is RunStatus.CANCELLED and self.positions:
            where = ", ".join(
                f"{source}[{part}]={pos!r}"
                for source, parts in self.positions.items()
                for part, pos in parts.items()
            )
            lines.append(f"  stopped with sources at {where}")
        return "\n".join(lines)


LATENCY_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
"""Upper bounds (seconds, inclusive) of the buckets of ``StageCounters.latency``: a batch's
processing takes from tens of microseconds (a fused loop) to seconds (a slow call)."""


class StageCounters:
    """The live, mutable counters of one stage while a run goes (read by progress displays;
    frozen into ``StageStats`` at the end)."""

    __slots__ = (
        "backlog",
        "dead_lettered",
        "dropped",
        "errors",
        "events_in",
        "events_out",
        "fused_with",
        "kind",
        "latency",
        "name",
        "retries",
        "seconds",
        "skipped",
    )

    def __init__(self, name: str, kind: StageKind | str, fused_with: tuple[str, ...] = ()) -> None:
        self.name = name
        # A kind's value (its label) is taken too, as before kinds were enums in records.
        self.kind = StageKind(kind)
        self.fused_with = fused_with
        self.events_in = 0
        self.events_out = 0
        self.errors = 0
        self.retries = 0
        self.skipped = 0
        self.dead_lettered = 0
        self.dropped = 0
        self.seconds = 0.0
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        """Batches processed, by the first bucket of ``LATENCY_BUCKETS`` their time fits
        in (the last: longer than every bucket); a histogram for metrics, not kept in
        checkpoints."""
        self.backlog = 0
        """Batches waiting in the stage's input channel when it last took one (the local
        runner sets it on a chain's first stage; 0 where unknown)."""

    def timed(self, elapsed: float) -> None:
        """Count ``elapsed`` seconds of processing of one batch: in ``seconds`` and in the
        latency histogram."""
        self.seconds += elapsed
        self.latency[bisect.bisect_left(LATENCY_BUCKETS, elapsed)] += 1

    def values(self) -> dict[str, Any]:
        """The counts as plain data (for checkpoints)."""
        return {name: getattr(self, name) for name in COUNTS}

    def restore(self, values: Mapping[str, Any]) -> None:
        """Set the counts from ``values`` (a resumed run goes on counting from them)."""
        for name in COUNTS:
            if name in values:
                setattr(self, name, values[name])

    def freeze(self) -> StageStats:
        """The counters as they stand, as a frozen ``StageStats``."""
        return StageStats(self.name, self.kind, self.fused_with, **self.values())


def event_repr(event: Any, limit: int = 500) -> str:
    """``repr(event)`` cut to ``limit`` characters; never raises (a user's ``__repr__``
    may)."""
    try:
        text = repr(event)
    except Exception as error:  # noqa: BLE001 - a user's __repr__ raised
        text = f"<unprintable {type(event).__name__}: {type(error).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
