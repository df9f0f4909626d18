"""Runs the workloads: every implementation side by side in this process, repeated, checked.

Each repeat runs all implementations of a workload one after the other (the order of
riverbed, plain and Bytewax rotating between repeats, so none always goes first; the slow
naive asyncio pipeline last, so that it does not sit between them). Rates quoted are the
medians of the repeats; ratios are the medians of the ratios within each repeat, which
this shared, noisy machine's drift between repeats does not skew. An implementation whose
result is wrong or which raises is reported with the reason and not run again; it never
counts as a measurement.
"""

from __future__ import annotations

import functools
import statistics
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import (
    backpressure,
    baselines,
    bytewax_impl,
    connectors,
    durability,
    parallel,
    ray_bench,
    riverbed_impl,
    serve,
    w2c_keys,
    w3,
    w5,
    workloads,
)
from .measure import Measurement, measure

IMPLEMENTATIONS = ("riverbed", "plain", "naive_asyncio", "bytewax")

PARALLEL_REPEATS = 3
"""At most this many repeats of PARALLEL (its runs take seconds each, not milliseconds)."""

WARMUP_EVENTS = 10_000
"""Events of the untimed warm-up run of each implementation before the timed repeats."""


@dataclass(frozen=True)
class Workload:
    """One workload of benchmarks.md: its implementations, its check, its targets."""

    id: str
    description: str
    runners: dict[str, Callable[[int], Any]]
    check: Callable[[int, Any], str | None]
    targets: dict[str, float] = field(default_factory=dict)
    """Minimum ``ratio_plain`` / ``ratio_bytewax`` of riverbed (benchmarks.md)."""


WORKLOADS: dict[str, Workload] = {
    "W1": Workload(
        "W1",
        "stateless chain: map, filter, map, count",
        {
            "riverbed": riverbed_impl.riverbed_w1,
            "plain": baselines.plain_w1,
            "naive_asyncio": baselines.asyncio_w1,
            "bytewax": bytewax_impl.bytewax_w1,
        },
        workloads.check_w1,
        {"ratio_plain": 0.9, "ratio_bytewax": 1.5},
    ),
    "W1A": Workload(
        "W1A",
        "W1 with an async map in the middle (no fusion through it)",
        {
            "riverbed": riverbed_impl.riverbed_w1a,
            "plain": baselines.plain_w1a,
            "naive_asyncio": baselines.asyncio_w1a,
            "bytewax": bytewax_impl.bytewax_w1a,
        },
        workloads.check_w1,
    ),
    "W2": Workload(
        "W2",
        "keyed running mean: key_by, per-key RunningMean, last mean per key",
        {
            "riverbed": riverbed_impl.riverbed_w2,
            "plain": baselines.plain_w2,
            "naive_asyncio": baselines.asyncio_w2,
            "bytewax": bytewax_impl.bytewax_w2,
        },
        workloads.check_w2,
        {"ratio_plain": 0.85, "ratio_bytewax": 3.0},
    ),
    "W4": Workload(
        "W4",
        "fan-out / fan-in: branch on even id, a map per branch, merge, count",
        {
            "riverbed": riverbed_impl.riverbed_w4,
            "plain": baselines.plain_w4,
            "naive_asyncio": baselines.asyncio_w4,
            "bytewax": bytewax_impl.bytewax_w4,
        },
        workloads.check_w4,
        {"ratio_plain": 0.8},
    ),
    **{variant[0]: Workload(*variant) for variant in w3.VARIANTS},
}

ALL_WORKLOADS = (
    "W1",
    "W1A",
    "W2",
    "W3",
    "W3-SLIDING",
    "W3-SESSION",
    "W4",
    "W5",
    "W6",
    "W2C",
    "W2C-KEYS",
    "W7",
    "PARALLEL",
    "CONNECTORS",
    "SERVE",
    "RAY",
)


def log(message: str) -> None:
    """Progress, on stderr (the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _paired_ratio(ours: list[float], theirs: list[float]) -> float | None:
    """The median of the ratios of runs made in the same repeat (paired by index; an
    implementation that failed has no runs, and then there is no ratio)."""
    if not ours or len(ours) != len(theirs):
        return None
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


class _FailedError(Exception):
    """An implementation raised or gave a wrong result: ``reason`` for the table,
    ``detail`` (a traceback or the check's message) for the end of the output."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _checked_run(workload: Workload, name: str, events: int) -> Measurement:
    """One timed, sampled run of one implementation, its result checked."""
    try:
        result = measure(functools.partial(workload.runners[name], events))
    except Exception as error:
        reason = f"raised {type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
        raise _FailedError(reason, "".join(traceback.format_exception(error)).rstrip()) from error
    wrong = workload.check(events, result.output)
    if wrong is not None:
        raise _FailedError(f"wrong result: {wrong}", f"wrong result with {events} events: {wrong}")
    return result


def run_workload(workload: Workload, events: int, repeats: int) -> dict[str, Any]:
    """Run every implementation of ``workload`` ``repeats`` times; the result record.

    Each implementation first runs once untimed on a few events (imports, first-call
    costs), checked like the timed runs.
    """
    eps: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    cpu_eps: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    peak: dict[str, float] = {}
    start_rss: dict[str, float] = {}
    reasons: dict[str, str] = {}
    failures: dict[str, str] = {}
    if bytewax_impl.UNAVAILABLE is not None:
        reasons["bytewax"] = bytewax_impl.UNAVAILABLE
    rounds = [("warm-up", min(events, WARMUP_EVENTS), IMPLEMENTATIONS)]
    racers = ("riverbed", "plain", "bytewax")
    for repeat in range(repeats):
        order = (*racers[repeat % 3 :], *racers[: repeat % 3], "naive_asyncio")
        rounds.append((f"repeat {repeat + 1}/{repeats}", events, order))
    for label, count, order in rounds:
        for name in order:
            if name in reasons:
                continue
            try:
                result = _checked_run(workload, name, count)
            except _FailedError as failure:
                reasons[name], failures[name] = failure.reason, failure.detail
                log(f"  {workload.id} {label} {name}: FAILED ({failure.reason})")
                continue
            if label == "warm-up":
                continue
            rate = events / result.seconds
            eps[name].append(rate)
            cpu_eps[name].append(events / result.cpu_seconds if result.cpu_seconds else rate)
            peak[name] = max(peak.get(name, 0.0), result.peak_rss_mb)
            start_rss.setdefault(name, result.start_rss_mb)
            log(
                f"  {workload.id} {label} {name:<13} {rate:>12,.0f} ev/s  "
                f"{result.seconds:7.2f} s (cpu {result.cpu_seconds:.2f} s)  "
                f"peak RSS {result.peak_rss_mb:,.0f} MB"
            )
    medians = {name: _median(eps[name]) for name in IMPLEMENTATIONS}
    cpu_medians = {name: _median(cpu_eps[name]) for name in IMPLEMENTATIONS}
    record: dict[str, Any] = {
        "workload": workload.id,
        "riverbed_eps": medians["riverbed"],
        "plain_eps": medians["plain"],
        "bytewax_eps": medians["bytewax"],
        "ratio_plain": _paired_ratio(eps["riverbed"], eps["plain"]),
        "ratio_bytewax": _paired_ratio(eps["riverbed"], eps["bytewax"]),
        "peak_rss_mb": peak.get("riverbed"),
        "naive_asyncio_eps": medians["naive_asyncio"],
        "ratio_naive_asyncio": _paired_ratio(eps["riverbed"], eps["naive_asyncio"]),
        "description": workload.description,
        "events": events,
        "repeats": repeats,
        "runs_eps": eps,
        "runs_cpu_eps": cpu_eps,
        "cpu_eps_medians": cpu_medians,
        "ratio_plain_cpu": _paired_ratio(cpu_eps["riverbed"], cpu_eps["plain"]),
        "ratio_bytewax_cpu": _paired_ratio(cpu_eps["riverbed"], cpu_eps["bytewax"]),
        "peak_rss_mb_by_impl": peak,
        "rss_before_mb_by_impl": start_rss,
    }
    for name in IMPLEMENTATIONS:
        if medians[name] is None:
            record[f"{name}_reason"] = reasons.get(name, "no measurement")
    record["targets"] = dict(workload.targets)
    record["targets_met"] = {
        key: (record[key] >= minimum if record[key] is not None else None)
        for key, minimum in workload.targets.items()
    }
    record["failures"] = failures
    return record


def run(
    only: list[str], events: int, repeats: int, w6_seconds: float, w5_runs: int = w5.RUNS
) -> list[dict[str, Any]]:
    """Run the chosen workloads in order; one record per workload (two for W5: sequential
    and 16 at once)."""
    records = []
    for workload_id in only:
        log(f"{workload_id}: running")
        if workload_id == "W5":
            records.extend(w5.run_w5(w5_runs, min(repeats, 3), log))
        elif workload_id == "W6":
            records.append(backpressure.run_w6(w6_seconds, log))
        elif workload_id == "W2C":
            records.append(durability.run_w2c(events, repeats, log))
        elif workload_id == "W2C-KEYS":
            records.append(w2c_keys.run_w2c_keys(events, log))
        elif workload_id == "W7":
            records.append(durability.run_w7(events, log))
        elif workload_id == "PARALLEL":
            records.append(parallel.run_parallel(min(repeats, PARALLEL_REPEATS), log))
        elif workload_id == "CONNECTORS":
            records.append(connectors.run_connectors(min(repeats, PARALLEL_REPEATS), log))
        elif workload_id == "SERVE":
            records.append(serve.run_serve(min(repeats, PARALLEL_REPEATS), log))
        elif workload_id == "RAY":
            records.extend(ray_bench.run_ray(events, min(repeats, 3), w6_seconds, log))
        else:
            records.append(run_workload(WORKLOADS[workload_id], events, repeats))
    return records
