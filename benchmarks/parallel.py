"""PARALLEL: what ``parallel_map`` buys. A CPU-bound pure-Python function (about 1 ms per
event) on one worker process and on ``os.cpu_count()`` of them, beside the plain loop; and a
blocking sleep on one thread and on many. Figures are the medians of the repeats; the
speed-ups are the medians of the ratios within each repeat. The runs include starting the
pools (a process pool spawns its workers once per run), as a user's run would.
"""

from __future__ import annotations

import os
import statistics
import time
import traceback
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

import riverbed as rb

CPU_EVENTS = 1000
"""Events of the CPU-bound runs: about 1 s on one worker."""
SLEEP_EVENTS = 200
SLEEP_SECONDS = 0.005
THREADS = 16


def burn(x: int) -> int:
    """About 1 ms of pure-Python arithmetic (module level: worker processes import it)."""
    total = 0
    for i in range(12_000):
        total += (i * x) % 7
    return total


def nap(x: int) -> int:
    """A blocking call: sleeps ``SLEEP_SECONDS`` (an I/O wait, for threads)."""
    time.sleep(SLEEP_SECONDS)
    return x


def _plain(n: int) -> list[int]:
    return [burn(x) for x in range(n)]


def _riverbed(fn: Callable[[int], int], n: int, mode: str, workers: int) -> list[int]:
    out: list[int] = []
    flow = rb.Flow("parallel")
    flow.source(range(n), name="events").parallel_map(
        fn, workers=workers, mode=mode, name="work"
    ).sink_batch(out.extend, name="out")
    result = flow.run(progress=False, batch_size=100)
    if not result.ok:
        raise RuntimeError(f"riverbed run did not succeed:\n{result.summary()}")
    return out


def _timed(call: Callable[[], list[int]], expected: list[int]) -> float:
    started = time.perf_counter()
    output = call()
    seconds = time.perf_counter() - started
    if output != expected:
        raise RuntimeError(f"wrong result: {len(output)} outputs, not the {len(expected)} expected")
    return seconds


def run_parallel(repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The PARALLEL record: seconds per variant, speed-ups, and any failure."""
    cpus = os.cpu_count() or 1
    expected_cpu = _plain(CPU_EVENTS)  # also the warm-up of the function itself
    expected_sleep = list(range(SLEEP_EVENTS))
    variants: dict[str, tuple[Callable[[], list[int]], list[int]]] = {
        "plain loop": (lambda: _plain(CPU_EVENTS), expected_cpu),
        "process x1": (lambda: _riverbed(burn, CPU_EVENTS, "process", 1), expected_cpu),
        f"process x{cpus}": (lambda: _riverbed(burn, CPU_EVENTS, "process", cpus), expected_cpu),
        # The same runs on one event per worker: the cost of starting the pool (spawning
        # and importing), which the speed-up "after start-up" subtracts.
        "process x1 start-up": (lambda: _riverbed(burn, 1, "process", 1), expected_cpu[:1]),
        f"process x{cpus} start-up": (
            lambda: _riverbed(burn, cpus, "process", cpus),
            expected_cpu[:cpus],
        ),
        "thread x1 (sleep)": (lambda: _riverbed(nap, SLEEP_EVENTS, "thread", 1), expected_sleep),
        f"thread x{THREADS} (sleep)": (
            lambda: _riverbed(nap, SLEEP_EVENTS, "thread", THREADS),
            expected_sleep,
        ),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    record: dict[str, Any] = {
        "workload": "PARALLEL",
        "description": "parallel_map: ~1 ms CPU-bound calls on processes, sleeps on threads",
        "cpu_events": CPU_EVENTS,
        "sleep_events": SLEEP_EVENTS,
        "sleep_seconds": SLEEP_SECONDS,
        "cpu_count": cpus,
        "repeats": repeats,
        "failures": {},
    }
    try:
        for repeat in range(repeats):
            for name, (call, expected) in variants.items():
                took = _timed(call, expected)
                seconds[name].append(took)
                log(f"  PARALLEL repeat {repeat + 1}/{repeats} {name:<18} {took:6.2f} s")
    except Exception as error:
        record["failures"]["riverbed"] = "".join(traceback.format_exception(error)).rstrip()
        log(f"  PARALLEL: FAILED ({type(error).__name__}: {error})")
        return record

    def speedup(slow: str, fast: str) -> float:
        return statistics.median(a / b for a, b in zip(seconds[slow], seconds[fast], strict=True))

    record["seconds"] = {name: statistics.median(runs) for name, runs in seconds.items()}
    record["runs_seconds"] = seconds
    record["speedup_process"] = speedup("process x1", f"process x{cpus}")
    record["speedup_process_vs_plain"] = speedup("plain loop", f"process x{cpus}")
    record["speedup_process_after_startup"] = statistics.median(
        (one - one_start) / (many - many_start)
        for one, one_start, many, many_start in zip(
            seconds["process x1"],
            seconds["process x1 start-up"],
            seconds[f"process x{cpus}"],
            seconds[f"process x{cpus} start-up"],
            strict=True,
        )
    )
    record["speedup_thread"] = speedup("thread x1 (sleep)", f"thread x{THREADS} (sleep)")
    return record


def print_table(record: dict[str, Any], console: Console) -> None:
    """The PARALLEL figures: seconds and events per second per variant, and speed-ups."""
    if record["failures"]:
        console.print("[red]PARALLEL failed[/red] (see below)")
        return
    table = Table(title=f"PARALLEL: parallel_map, medians of {record['repeats']} run(s)")
    for column in ("variant", "events", "seconds", "events/s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    cpus = record["cpu_count"]
    for name, took in record["seconds"].items():
        if name.endswith("start-up"):
            events = 1 if name.startswith("process x1 ") else cpus
        else:
            events = record["sleep_events"] if "sleep" in name else record["cpu_events"]
        table.add_row(name, f"{events:,}", f"{took:.2f}", f"{events / took:,.0f}")
    console.print(table)
    console.print(
        f"speed-up of mode='process' with {cpus} workers over 1: "
        f"{record['speedup_process']:.2f}x, {record['speedup_process_after_startup']:.2f}x "
        f"after the pools' start-up ({record['speedup_process_vs_plain']:.2f}x the plain "
        f"loop); mode='thread' with {THREADS} workers over 1 on a "
        f"{record['sleep_seconds'] * 1000:g} ms sleep: {record['speedup_thread']:.2f}x"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is not None and load > cpus:
        console.print(
            f"[yellow]the load average ({load:.1f}) is above the CPU count ({cpus}): other "
            "processes share the CPUs, and the process speed-up is lower than on an idle "
            "machine[/yellow]"
        )
