"""``python -m benchmarks.store``: the store's hot paths, on SQLite and PostgreSQL.

- ``commit_steps`` of one step: median and p99 microseconds per call, sequential, each call durably
  committed (SQLite with ``synchronous=FULL`` and, for comparison, ``NORMAL``).
- The same with durability off (SQLite ``synchronous=OFF``, PostgreSQL
  ``synchronous_commit=off``): not a setting to use, but it separates the store's own cost
  (code and round trips) from the disk's fsync, which dominates and varies with the disk's
  load.
- ``claim``: runs claimed per second by one worker, and by several worker processes at once,
  each claim followed by the transition to SUCCEEDED that a worker makes when done.
- ``claim past backlog``: the same for one worker of the default queue while ``--backlog``
  older runs wait in another queue (named queues: a claim reads only its queues' runs).

PostgreSQL is measured at ``--postgres`` (default: the test server) in a throwaway schema;
it is skipped with a note if unreachable. Prints a table; ``--json PATH`` also saves it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import riverbed as rb
from riverbed._store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]


def _run(run_id: str) -> rb.RunRecord:
    return rb.RunRecord(
        run_id=run_id,
        flow="bench",
        flow_version="v1",
        status=rb.RunStatus.RUNNING,
        created_at=datetime.now(UTC),
    )


def record_step_latency(store: rb.Store, calls: int) -> dict[str, float]:
    """Microseconds per step committed (``commit_steps`` of a step and its stage run),
    sequential."""
    run_id = uuid.uuid4().hex
    store.create_run(_run(run_id))
    output = b"x" * 200
    timings = []
    for seq in range(calls):
        step = rb.StepRecord(run_id, seq, "step", output, datetime.now(UTC))
        stage_run = rb.StageRun(
            run_id,
            "step",
            rb.StageKind.MAP,
            rb.StageStatus.RUNNING,
            events_in=seq + 1,
            events_out=seq + 1,
        )
        start = time.perf_counter()
        store.commit_steps([rb.StepCommit(run_id, step=step, stage_run=stage_run)])
        timings.append((time.perf_counter() - start) * 1e6)
    timings.sort()
    return {
        "median_us": statistics.median(timings),
        "p99_us": timings[int(len(timings) * 0.99) - 1],
        "calls_per_s": 1e6 / statistics.mean(timings),
    }


def claim_throughput(store: rb.Store, url: str, runs: int, workers: int) -> dict[str, float]:
    """Runs per second claimed (and ended) by one worker in-process, then by ``workers``
    processes at once."""
    for _ in range(runs):
        store.enqueue(_run(uuid.uuid4().hex))
    start = time.perf_counter()
    while (run := store.claim("bench", 60)) is not None:
        store.transition(run.run_id, rb.RunStatus.SUCCEEDED)
    one = runs / (time.perf_counter() - start)

    for _ in range(runs):
        store.enqueue(_run(uuid.uuid4().hex))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.claimer", url, f"w{i}", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for i in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.readline()  # ready
    start = time.perf_counter()
    for proc in procs:  # all start at once: communicate() would wait for each in turn
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate()[0] for proc in procs]
    many = runs / (time.perf_counter() - start)
    claimed = [run_id for out in outs for run_id in json.loads(out)]
    if sorted(claimed) != sorted(set(claimed)) or len(claimed) != runs:
        raise SystemExit(f"claim exclusivity broken: {len(claimed)} claims of {runs} runs")
    return {"one_worker_per_s": one, f"{workers}_processes_per_s": many}


def claim_past_backlog(store: rb.Store, runs: int, backlog: int) -> dict[str, float]:
    """Runs per second claimed (and ended) by one worker of the default queue, while
    ``backlog`` runs, queued before them, wait in another queue."""
    for _ in range(backlog):
        store.enqueue(dataclasses.replace(_run(uuid.uuid4().hex), queue="other"))
    for _ in range(runs):
        store.enqueue(_run(uuid.uuid4().hex))
    start = time.perf_counter()
    claimed = 0
    while (run := store.claim("bench", 60)) is not None:
        store.transition(run.run_id, rb.RunStatus.SUCCEEDED)
        claimed += 1
    if claimed != runs:
        raise SystemExit(f"claimed {claimed} runs of the default queue, not {runs}")
    return {f"backlog_{backlog}_per_s": runs / (time.perf_counter() - start)}


@contextmanager
def _postgres_schema(base: str) -> Iterator[str]:
    import psycopg

    schema = f"rb_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}?options=-c%20search_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="rb-bench-"))
    cases: list[tuple[str, Callable[[], rb.Store], str]] = [
        ("sqlite FULL", lambda: SQLiteStore(tmp / "full.db"), f"sqlite:///{tmp}/full.db"),
        (
            "sqlite NORMAL",
            lambda: SQLiteStore(tmp / "normal.db", synchronous="NORMAL"),
            f"sqlite:///{tmp}/normal.db",
        ),
        (
            "sqlite OFF",
            lambda: SQLiteStore(tmp / "off.db", synchronous="OFF"),
            f"sqlite:///{tmp}/off.db",
        ),
    ]
    for name, opener, url in cases:
        with opener() as store:
            results[f"{name} record_step"] = record_step_latency(store, args.calls)
            if name == "sqlite FULL":
                results[f"{name} claim"] = claim_throughput(store, url, args.runs, args.workers)
                results[f"{name} claim past backlog"] = claim_past_backlog(
                    store, args.runs, args.backlog
                )
    try:
        with _postgres_schema(args.postgres) as url, rb.open_store(url) as store:
            results["postgresql record_step"] = record_step_latency(store, args.calls)
            results["postgresql claim"] = claim_throughput(store, url, args.runs, args.workers)
            results["postgresql claim past backlog"] = claim_past_backlog(
                store, args.runs, args.backlog
            )
        with _postgres_schema(args.postgres) as url:
            unsafe = url.replace("?options=", "?options=-c%20synchronous_commit%3Doff%20")
            with rb.open_store(unsafe) as store:
                results["postgresql async-commit record_step"] = record_step_latency(
                    store, args.calls
                )
    except (rb.StoreError, OSError) as exc:
        print(f"PostgreSQL skipped: {exc}")
    except Exception as exc:  # psycopg's errors, when the server is not there at all
        print(f"PostgreSQL skipped: {exc}")
    for name, values in results.items():
        cells = ", ".join(f"{key}={value:,.0f}" for key, value in values.items())
        print(f"{name:<28} {cells}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
