"""RAY: the Ray runner, beside what it is judged against, in the same run.

- RAY-CPU: a keyed stage doing about 50 us of pure-Python work per event (200,000 events,
  1,000 keys): the Ray runner with 2 actors per stage vs the local runner (target >= 1.6x;
  the load average is recorded beside it, since a busy machine has no second core to give).
- RAY-W1, RAY-W2: W1 and W2 on the Ray runner (2 actors per stage) vs a hand-written Ray
  pipeline doing the same work with the same batch size: the driver sends batches to two
  actors (W2: split by key), at most 4 in flight per actor, and feeds the results to the
  same sink (target >= 0.8 of it).
- RAY-W6: W6's shape on Ray (a busy source, a sink slowed to 1 ms per batch, checkpoints
  every second): growth of the RSS of the driver and its actors (target < 100 MB).

One local Ray instance (2 CPUs) serves every figure; actors are started once (riverbed's
pool, the baseline's own) before anything is timed, as a long-lived cluster would have them.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import riverbed as rb
from riverbed.testing import Capture

from . import workloads
from .workloads import Checksum, LastMeans, RunningMean

BATCH = 10_000
"""Events per batch for RAY-W1 and RAY-W2, riverbed and the baseline alike."""
ACTORS = 2
CPU_EVENTS = 200_000
CPU_KEYS = 1_000
IN_FLIGHT = 4


BURN_STEPS = 1_250
"""Loop steps of ``burn_50us``: about 50 us on this class of machine (160 steps, the first
guess, took 5 us, too little work per event for a second core to pay for its shipping)."""


def burn_50us(total: int, x: int) -> int:
    """About 50 microseconds of pure-Python arithmetic, then the running count."""
    acc = 0
    for i in range(BURN_STEPS):
        acc += (i * x) % 7
    return total + 1 + acc * 0


def cpu_key(x: int) -> int:
    return x % CPU_KEYS


def _cpu_flow(n: int, out: Capture) -> rb.Flow:
    flow = rb.Flow("ray-cpu")
    flow.source(range(n), name="numbers").key_by(cpu_key, name="key").fold(
        0, burn_50us, name="work"
    ).sink(out, name="out")
    return flow


def _cpu_run(n: int, runner: Any) -> float:
    out = Capture()
    started = time.perf_counter()
    result = _cpu_flow(n, out).run(runner=runner, store=False, progress=False)
    seconds = time.perf_counter() - started
    if not result.ok or sum(count for _, count in out.items) != n:
        raise RuntimeError(f"RAY-CPU: wrong result\n{result.summary()}")
    return seconds


def _riverbed_w1(n: int, runner: Any) -> Checksum:
    sink = Checksum()
    flow = rb.Flow("ray-w1")
    flow.source(lambda: workloads.events(n), name="events").map(workloads.add_v2).filter(
        workloads.keep
    ).map(workloads.project).sink_batch(sink.add_batch, name="sink")
    result = flow.run(runner=runner, store=False, progress=False, batch_size=BATCH)
    if not result.ok:
        raise RuntimeError(result.summary())
    return sink


def _riverbed_w2(n: int, runner: Any) -> LastMeans:
    sink = LastMeans()
    flow = rb.Flow("ray-w2")
    flow.source(lambda: workloads.events(n), name="events").key_by(workloads.get_key).stateful(
        RunningMean, RunningMean.add
    ).sink_batch(sink.update_batch, name="sink")
    result = flow.run(runner=runner, store=False, progress=False, batch_size=BATCH)
    if not result.ok:
        raise RuntimeError(result.summary())
    return sink


class W1Stage:
    """The baseline's actor for W1: the three stages over a batch."""

    def process(self, batch: list[Any]) -> list[tuple[int, float]]:
        out = []
        for event in batch:
            event = workloads.add_v2(event)
            if workloads.keep(event):
                out.append(workloads.project(event))
        return out

    def ready(self) -> bool:
        return True


class W2Stage:
    """The baseline's actor for W2: a running mean per key of its share of the keys."""

    def __init__(self) -> None:
        self.means: dict[int, RunningMean] = {}

    def process(self, batch: list[Any]) -> list[tuple[int, float]]:
        out = []
        means = self.means
        for event in batch:
            key = workloads.get_key(event)
            mean = means.get(key)
            if mean is None:
                mean = means[key] = RunningMean()
            out.append((key, mean.add(event)))
        return out

    def ready(self) -> bool:
        return True


def _batches(n: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for event in workloads.events(n):
        batch.append(event)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _hand_pipeline(
    ray: Any, actors: list[Any], n: int, split: bool, sink: Callable[[list[Any]], None]
) -> None:
    """Batches to the actors (W2: split by key), at most IN_FLIGHT each, results in order."""
    pending: list[Any] = []
    for batch in _batches(n):
        if split:
            shares: list[list[Any]] = [[] for _ in actors]
            for event in batch:
                shares[workloads.get_key(event) % len(actors)].append(event)
            refs = [
                actor.process.remote(share) for actor, share in zip(actors, shares, strict=True)
            ]
        else:
            refs = [actors[len(pending) % len(actors)].process.remote(batch)]
        pending.extend(refs)
        while len(pending) > IN_FLIGHT * len(actors):
            sink(ray.get(pending.pop(0)))
    for ref in pending:
        sink(ray.get(ref))


def _paired(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(t / o for o, t in zip(ours, theirs, strict=True))


def run_ray(
    events: int, repeats: int, w6_seconds: float, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """The RAY records (see the module docstring)."""
    try:
        import ray
    except ImportError:
        return [{"workload": "RAY", "failures": {"riverbed": "ray is not installed"}}]
    records: list[dict[str, Any]] = []
    ray.init(address="local", num_cpus=ACTORS, include_dashboard=False, log_to_driver=False)
    try:
        runner = rb.RayRunner(parallelism=ACTORS)
        for name, run in (("RAY-CPU", _ray_cpu), ("RAY-W1", _ray_w1), ("RAY-W2", _ray_w2)):
            records.append(
                _guarded(name, lambda run=run: run(ray, runner, events, repeats, log), log)
            )
        records.append(_guarded("RAY-W6", lambda: _ray_w6(runner, w6_seconds, log), log))
    finally:
        ray.shutdown()
    return records


def _guarded(
    name: str, call: Callable[[], dict[str, Any]], log: Callable[[str], None]
) -> dict[str, Any]:
    try:
        return call()
    except Exception as error:  # reported in the record, as the other workloads do
        log(f"  {name}: FAILED ({type(error).__name__}: {error})")
        return {
            "workload": name,
            "failures": {"riverbed": "".join(traceback.format_exception(error))},
        }


def _ray_cpu(
    ray: Any, runner: Any, events: int, repeats: int, log: Callable[[str], None]
) -> dict[str, Any]:
    n = min(events, CPU_EVENTS)
    _cpu_run(2_000, runner)  # warm-up: actors started, code loaded
    local: list[float] = []
    on_ray: list[float] = []
    for repeat in range(repeats):
        local.append(_cpu_run(n, None))
        on_ray.append(_cpu_run(n, runner))
        log(f"  RAY-CPU {repeat + 1}/{repeats}: local {local[-1]:.2f} s, ray {on_ray[-1]:.2f} s")
    return {
        "workload": "RAY-CPU",
        "description": (
            f"keyed stage, ~50 us/event, {n:,} events, {CPU_KEYS} keys: "
            f"Ray ({ACTORS} actors) vs local"
        ),
        "events": n,
        "seconds_local": statistics.median(local),
        "seconds_ray": statistics.median(on_ray),
        "speedup_vs_local": _paired(on_ray, local),
        "target_speedup": 1.6,
        "load_average": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "failures": {},
    }


def _versus_hand(
    name: str,
    ray: Any,
    ours: Callable[[], Any],
    theirs: Callable[[], Any],
    check: Callable[[Any], str | None],
    n: int,
    repeats: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    ours_s: list[float] = []
    theirs_s: list[float] = []
    for repeat in range(repeats):
        for call, into in ((ours, ours_s), (theirs, theirs_s)):
            started = time.perf_counter()
            sink = call()
            into.append(time.perf_counter() - started)
            problem = check(sink)
            if problem:
                raise RuntimeError(f"{name}: {problem}")
        log(
            f"  {name} {repeat + 1}/{repeats}: riverbed {n / ours_s[-1]:,.0f}/s, "
            f"hand-written {n / theirs_s[-1]:,.0f}/s"
        )
    return {
        "workload": name,
        "description": (
            f"{name[4:]} on Ray ({ACTORS} actors, batch {BATCH:,}) vs a hand-written Ray "
            "actor pipeline"
        ),
        "events": n,
        "eps_riverbed": n / statistics.median(ours_s),
        "eps_hand_written": n / statistics.median(theirs_s),
        "ratio_hand_written": _paired(ours_s, theirs_s),
        "target_ratio": 0.8,
        "load_average": os.getloadavg(),
        "failures": {},
    }


def _ray_w1(
    ray: Any, runner: Any, events: int, repeats: int, log: Callable[[str], None]
) -> dict[str, Any]:
    actors = [ray.remote(W1Stage).remote() for _ in range(ACTORS)]
    ray.get([actor.ready.remote() for actor in actors])
    _riverbed_w1(BATCH, runner)

    def hand() -> Checksum:
        sink = Checksum()
        _hand_pipeline(ray, actors, events, False, sink.add_batch)
        return sink

    return _versus_hand(
        "RAY-W1",
        ray,
        lambda: _riverbed_w1(events, runner),
        hand,
        lambda sink: workloads.check_w1(events, sink),
        events,
        repeats,
        log,
    )


def _ray_w2(
    ray: Any, runner: Any, events: int, repeats: int, log: Callable[[str], None]
) -> dict[str, Any]:
    _riverbed_w2(BATCH, runner)

    def hand() -> LastMeans:
        actors = [ray.remote(W2Stage).remote() for _ in range(ACTORS)]
        ray.get([actor.ready.remote() for actor in actors])
        sink = LastMeans()
        _hand_pipeline(ray, actors, events, True, sink.update_batch)
        for actor in actors:
            ray.kill(actor)
        return sink

    return _versus_hand(
        "RAY-W2",
        ray,
        lambda: _riverbed_w2(events, runner),
        hand,
        lambda sink: workloads.check_w2(events, sink),
        events,
        repeats,
        log,
    )


class SlowSink:
    """1 ms per batch, counting what it takes."""

    def __init__(self) -> None:
        self.count = 0

    def write_batch(self, events: list[Any]) -> None:
        time.sleep(0.001)
        self.count += len(events)


def _ray_w6(runner: Any, seconds: float, log: Callable[[str], None]) -> dict[str, Any]:
    import psutil

    from riverbed._runtime.ray.pool import POOL

    deadline = time.monotonic() + seconds

    def busy() -> Iterator[int]:
        i = 0
        while time.monotonic() < deadline:
            yield i
            i += 1

    def rss() -> float:
        pids = [os.getpid()]
        import ray

        for actors in POOL._idle.values():
            pids += [ray.get(actor.where.remote())["pid"] for actor in actors]
        total = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
        return total / 2**20

    sink = SlowSink()
    flow = rb.Flow("ray-w6")
    flow.source(busy, name="busy").map(workloads.touch, name="touch").sink(sink, name="sink")
    warm = rb.Flow("ray-w6-warm")
    warm.source(range(10), name="busy").map(workloads.touch, name="touch").sink(
        SlowSink(), name="sink"
    )
    warm.run(runner=runner, store=False, progress=False)
    before = rss()
    with tempfile.TemporaryDirectory() as scratch:
        result = flow.run(
            runner=runner,
            store=f"sqlite:///{scratch}/w6.db",
            checkpoint_interval=1.0,
            progress=False,
            batch_size=1000,
        )
    after = rss()
    if not result.ok:
        raise RuntimeError(result.summary())
    log(f"  RAY-W6: {sink.count:,} events in {seconds:g} s, RSS {before:.0f} -> {after:.0f} MB")
    return {
        "workload": "RAY-W6",
        "description": "W6 on Ray: busy source, 1 ms/batch sink, checkpoints every second",
        "seconds": seconds,
        "events": sink.count,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "growth_mb": after - before,
        "target_growth_mb": 100.0,
        "failures": {},
    }


def print_table(records: list[dict[str, Any]], console: Any) -> None:
    """The RAY figures, one line per record, against their targets."""
    from rich.table import Table

    table = Table(title="RAY: the Ray runner (2 actors per stage, a local Ray instance)")
    for column in ("workload", "figure", "target", "load average"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for record in records:
        name = record["workload"]
        if record.get("failures"):
            table.add_row(name, "[red]failed[/red]", "", "")
            continue
        load = ", ".join(f"{x:.1f}" for x in record.get("load_average", ()))
        if name == "RAY-CPU":
            figure, target = f"{record['speedup_vs_local']:.2f}x local", ">= 1.6x"
        elif name == "RAY-W6":
            figure, target = f"growth {record['growth_mb']:.0f} MB", "< 100 MB"
        else:
            figure = (
                f"{record['ratio_hand_written']:.2f} of hand-written "
                f"({record['eps_riverbed']:,.0f} vs {record['eps_hand_written']:,.0f}/s)"
            )
            target = ">= 0.8"
        table.add_row(name, figure, target, load)
    console.print(table)
