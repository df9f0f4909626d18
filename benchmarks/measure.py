"""Timing and memory: a background RSS sampler and one timed, sampled call.

RSS is the process's resident set size (psutil), sampled by a daemon thread. Samples are
``(seconds since start, bytes)``.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import psutil

MB = 1024 * 1024


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds while active (a context
    manager); ``samples`` holds ``(elapsed seconds, rss bytes)``, first and last included."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._start = 0.0

    def _sample(self) -> None:
        self.samples.append((time.perf_counter() - self._start, self._process.memory_info().rss))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Self:
        self._start = time.perf_counter()
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        """The largest RSS sampled, in MB."""
        return max(rss for _, rss in self.samples) / MB

    @property
    def start_mb(self) -> float:
        """RSS when sampling started, in MB."""
        return self.samples[0][1] / MB

    def growth_after(self, warmup: float) -> tuple[float, float]:
        """``(growth MB, baseline MB)``: the largest RSS of the whole run minus the RSS of
        the first sample taken at or after ``warmup`` seconds."""
        baseline = next((rss for t, rss in self.samples if t >= warmup), self.samples[-1][1])
        return (max(rss for _, rss in self.samples) - baseline) / MB, baseline / MB


@dataclass
class Measurement:
    """One timed call: its output, the seconds it took, and the RSS during it."""

    output: Any
    seconds: float
    cpu_seconds: float
    """Process CPU time (all threads) during the call: less sensitive to other processes."""
    peak_rss_mb: float
    start_rss_mb: float
    samples: list[tuple[float, int]] = field(default_factory=list)


def measure(fn: Callable[[], Any], *, interval: float = 0.2) -> Measurement:
    """Call ``fn()`` once after a full garbage collection, timing it and sampling RSS."""
    gc.collect()
    with RssSampler(interval) as sampler:
        start, cpu_start = time.perf_counter(), time.process_time()
        output = fn()
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    return Measurement(
        output, seconds, cpu_seconds, sampler.peak_mb, sampler.start_mb, sampler.samples
    )
