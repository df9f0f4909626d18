"""A run's throughput over time: samples of its counters, taken each time the dashboard
reads the run, and their chart as inline SVG.

The store keeps a run's latest counters (saved with each checkpoint), not their history;
so the dashboard samples them while someone watches a running run (its page polls every
second), keeping the last ``KEEP`` samples per run in memory.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from riverbed._serve.ui.html import Html, h

__all__ = ["KEEP", "RUNS", "WINDOW", "Sample", "Samples", "rates", "throughput_svg"]

KEEP = 300
"""Samples kept per run: five minutes at one per second."""
RUNS = 100
"""Runs whose samples are kept: the runs watched most recently."""


@dataclass(frozen=True)
class Sample:
    """A run's counters at one moment: events read from its sources, and each stage's
    events in."""

    at: float
    """``time.time()`` of the reading."""
    events: int
    stages: dict[str, int]


class Samples:
    """The samples of the runs being watched (thread-safe)."""

    def __init__(self) -> None:
        """No samples yet."""
        self._runs: dict[str, deque[Sample]] = {}
        self._lock = threading.Lock()

    def add(self, run_id: str, events: int, stages: dict[str, int]) -> list[Sample]:
        """Record a reading of run ``run_id``; return the run's samples."""
        with self._lock:
            kept = self._runs.pop(run_id, None) or deque(maxlen=KEEP)
            self._runs[run_id] = kept  # last in the dict: the most recently watched
            kept.append(Sample(time.time(), events, dict(stages)))
            while len(self._runs) > RUNS:
                del self._runs[next(iter(self._runs))]
            return list(kept)

    def of(self, run_id: str) -> list[Sample]:
        """Run ``run_id``'s samples, oldest first."""
        with self._lock:
            return list(self._runs.get(run_id, ()))


WINDOW = 5.0
"""Seconds a rate is measured over: counters change at checkpoints, not at each reading,
so a rate between two readings alone would jump between nothing and a burst."""


def _window_start(samples: Sequence[Sample], index: int) -> Sample | None:
    """The oldest sample of the window that ends at ``samples[index]``, or None."""
    end = samples[index].at
    for sample in samples[:index]:
        if sample.at >= end - WINDOW:
            return sample if sample.at < end else None
    return None


def rates(samples: Sequence[Sample]) -> dict[str, float]:
    """Each stage's events in per second over the last ``WINDOW`` seconds of samples;
    empty with fewer than two."""
    first = _window_start(samples, len(samples) - 1) if samples else None
    if first is None:
        return {}
    last = samples[-1]
    seconds = last.at - first.at
    return {
        name: max(0, count - first.stages.get(name, 0)) / seconds
        for name, count in last.stages.items()
    }


def throughput_svg(samples: Sequence[Sample], *, width: int = 640, height: int = 170) -> Html:
    """The chart of events per second read from the sources between samples."""
    if len(samples) < 2:
        return (
            "<p class='empty'>No throughput yet: the chart fills in while this page is open "
            "on a running run (its counters change at each checkpoint).</p>"
        )
    points = []
    for index in range(1, len(samples)):
        first, last = _window_start(samples, index), samples[index]
        if first is not None:
            points.append((last.at, max(0, last.events - first.events) / (last.at - first.at)))
    if not points:
        return "<p class='empty'>No throughput yet.</p>"
    start, span = samples[0].at, max(samples[-1].at - samples[0].at, 1e-9)
    top = max((rate for _, rate in points), default=0.0) or 1.0
    left, bottom = 56, height - 22
    xy = " ".join(
        f"{left + (at - start) / span * (width - left - 8):.1f},"
        f"{bottom - rate / top * (bottom - 10):.1f}"
        for at, rate in points
    )
    return (
        f'<svg class="chart" role="img" aria-label="throughput" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<line class="axis" x1="{left}" y1="10" x2="{left}" y2="{bottom}"/>'
        f'<line class="axis" x1="{left}" y1="{bottom}" x2="{width - 8}" y2="{bottom}"/>'
        f'<text x="{left - 6}" y="16" text-anchor="end">{h(_short(top))}</text>'
        f'<text x="{left - 6}" y="{bottom}" text-anchor="end">0</text>'
        f'<text x="{left}" y="{height - 5}">events/s over the last {span:.0f} s</text>'
        f'<polyline class="line" points="{xy}"/></svg>'
    )


def _short(rate: float) -> str:
    """A rate in few characters: 950, 12.5k, 3.1M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if rate >= size:
            return f"{rate / size:.1f}{suffix}"
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}"
