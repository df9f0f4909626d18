"""W5: durable workflows. 2,000 runs of a 3-step workflow (each step a trivial function),
every step recorded durably in PostgreSQL; run one after the other, and 16 at once; riverbed
beside DBOS Transact on the same server.

Each measurement runs in a fresh subprocess (DBOS is a process-wide singleton) on a fresh
database of its own, dropped afterwards: ``python -m benchmarks.w5 riverbed|dbos --runs N
--concurrency C [--count]`` prints one JSON line with the seconds taken, each workflow's
latency (p50, p99), the checks, and with ``--count`` what PostgreSQL itself counted during
the timed workflows (``benchmarks.pgstats``): the commits of that database and the server's
WAL records and syncs. Before the warm-up, one probe workflow asks, from a connection of
its own while its first step runs, whether the run is already recorded in the database:
that is the difference of step 1 between the two systems (recorded durably before the
first step, or only with it).

riverbed runs the workflows with ``rb.run`` one after the other, and with ``rb.arun`` from
16 tasks on one event loop for 16 at once (their steps are group-committed); DBOS runs its
``@DBOS.workflow`` function directly (16 at once: from 16 threads, DBOS's documented way to
run workflows concurrently in one process besides queues).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from . import pgstats

POSTGRES_URL = os.environ.get(
    "RIVERBED_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
RUNS = 2000
STEPS = 3
WARMUP = 50
"""Untimed workflows run first in the same process (imports, connections, prepared
statements); the checks count them too."""
PROBES = 1
"""The probe workflow (is the run recorded before step 1?), counted by the checks too."""
DBOS_SCHEMA = "dbos_w5"


def step_one(x: int) -> int:
    """Step 1: trivial."""
    return x + 1


def step_two(x: int) -> int:
    """Step 2: trivial."""
    return x * 2


def step_three(x: int) -> int:
    """Step 3: trivial."""
    return x - 1


def expected(x: int) -> int:
    """What the workflow returns for ``x``."""
    return (x + 1) * 2 - 1


class Probe:
    """Counts the rows of a run table from a connection of its own: ``recorded_before``
    is True if a run's row was there (committed) while its first step ran."""

    def __init__(self, url: str, table: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.query = f"SELECT count(*) FROM {table}"
        self.before = self._count()
        self.recorded_before: bool | None = None

    def _count(self) -> int:
        row = self.conn.execute(self.query).fetchone()
        return int(row[0]) if row else 0

    def step_one(self, x: int) -> int:
        """Step 1 of the probe workflow: look, then do step 1's work."""
        self.recorded_before = self._count() > self.before
        return step_one(x)

    def close(self) -> None:
        """Close the probe's connection."""
        self.conn.close()


class Counting:
    """With ``--count``: PostgreSQL's counts around the timed workflows (``pgstats``).

    ``start`` waits until every backend of the measured database has published what it
    did so far (an idle backend does within ``pgstats.IDLE_FLUSH_SECONDS``), then reads;
    ``stop`` is called after the measured process closed its connections: it waits for
    their backends to end (which publishes their counts) and reads again."""

    def __init__(self, enabled: bool, database: str) -> None:
        self.enabled = enabled
        self.database = database
        self.before: dict[str, float] = {}
        self.result: dict[str, Any] | None = None
        self.conn = psycopg.connect(POSTGRES_URL, autocommit=True) if enabled else None

    def start(self) -> None:
        """Wait for the warm-up's counts to be published; read."""
        if self.conn is not None:
            time.sleep(pgstats.IDLE_FLUSH_SECONDS)
            self.before = pgstats.read(self.conn, self.database)

    def stop(self) -> None:
        """Wait for the measured connections' backends to end; read; the difference."""
        if self.conn is None:
            return
        gone = pgstats.wait_for_backends_gone(self.conn, self.database, 15.0)
        if not gone:  # then their counts come within the idle flush
            time.sleep(pgstats.IDLE_FLUSH_SECONDS)
        self.result = pgstats.delta(self.before, pgstats.read(self.conn, self.database))
        self.result["backends_ended"] = gone
        self.conn.close()


def _latencies(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 of per-workflow latencies, in milliseconds."""
    if len(seconds) < 2:
        return {"p50_ms": seconds[0] * 1000, "p99_ms": seconds[0] * 1000} if seconds else {}
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {"p50_ms": statistics.median(seconds) * 1000, "p99_ms": cuts[98] * 1000}


# -- riverbed ---------------------------------------------------------------------------------


def _riverbed(url: str, runs: int, concurrency: int, counting: Counting) -> dict[str, Any]:
    import riverbed as rb

    flow = rb.Flow("w5")
    flow.input().map(step_one).map(step_two).map(step_three).output()
    store = rb.open_store(url)
    latencies: list[float] = []

    probe = Probe(url, "riverbed_runs")
    try:
        probe_flow = rb.Flow("w5-probe")
        probe_flow.input().map(probe.step_one).map(step_two).map(step_three).output()
        if not rb.run(probe_flow, 20_000_000, store=store).ok:
            raise RuntimeError("the probe workflow did not succeed")
    finally:
        probe.close()

    async def many(first: int, count: int, timed: bool) -> list[Any]:
        results: list[Any] = [None] * count
        cursor = iter(range(count))

        async def worker() -> None:
            for index in cursor:
                began = time.perf_counter()
                results[index] = await rb.arun(flow, first + index, store=store)
                if timed:
                    latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results

    async def concurrent() -> tuple[float, list[Any]]:
        await many(10_000_000, WARMUP, False)
        counting.start()
        start = time.perf_counter()
        results = await many(0, runs, True)
        return time.perf_counter() - start, results

    def sequential() -> tuple[float, list[Any]]:
        # rb.run: the plain synchronous call, the way one workflow at a time is run.
        for index in range(WARMUP):
            rb.run(flow, 10_000_000 + index, store=store)
        counting.start()
        results = []
        start = time.perf_counter()
        for index in range(runs):
            began = time.perf_counter()
            results.append(rb.run(flow, index, store=store))
            latencies.append(time.perf_counter() - began)
        return time.perf_counter() - start, results

    try:
        seconds, results = sequential() if concurrency == 1 else asyncio.run(concurrent())
    finally:
        store.close()
    counting.stop()
    wrong = [r.run_id for i, r in enumerate(results) if not r.ok or r.output != expected(i)]
    with psycopg.connect(url) as conn:
        succeeded = conn.execute(
            "SELECT count(*) FROM riverbed_runs WHERE status = 'succeeded'"
        ).fetchone()
        steps = conn.execute("SELECT count(*) FROM riverbed_steps").fetchone()
    return {
        "seconds": seconds,
        "latency": _latencies(latencies),
        "wrong": len(wrong),
        "succeeded": succeeded[0] if succeeded else 0,
        "steps": steps[0] if steps else 0,
        "recorded_before_step_one": probe.recorded_before,
    }


# -- DBOS -------------------------------------------------------------------------------------


def _dbos(url: str, runs: int, concurrency: int, counting: Counting) -> dict[str, Any]:
    from dbos import DBOS

    probe: Probe | None = None

    @DBOS.step()
    def one(x: int) -> int:
        return step_one(x)

    @DBOS.step()
    def probing_one(x: int) -> int:
        assert probe is not None
        return probe.step_one(x)

    @DBOS.step()
    def two(x: int) -> int:
        return step_two(x)

    @DBOS.step()
    def three(x: int) -> int:
        return step_three(x)

    @DBOS.workflow()
    def workflow(x: int) -> int:
        return three(two(one(x)))

    @DBOS.workflow()
    def probe_workflow(x: int) -> int:
        return three(two(probing_one(x)))

    latencies: list[float] = []

    def timed(x: int) -> int:
        began = time.perf_counter()
        out = workflow(x)
        latencies.append(time.perf_counter() - began)
        return out

    DBOS(
        config={
            "name": "riverbed-w5",
            "system_database_url": url,
            "dbos_system_schema": DBOS_SCHEMA,
            "log_level": "WARNING",
            "sys_db_pool_size": max(20, concurrency * 2),
        }
    )
    DBOS.launch()
    try:
        probe = Probe(url, f"{DBOS_SCHEMA}.workflow_status")
        try:
            if probe_workflow(20_000_000) != expected(20_000_000):
                raise RuntimeError("the probe workflow returned a wrong output")
        finally:
            probe.close()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(workflow, range(10_000_000, 10_000_000 + WARMUP)))
            counting.start()
            start = time.perf_counter()
            if concurrency == 1:
                outputs = [timed(i) for i in range(runs)]
            else:
                outputs = list(pool.map(timed, range(runs)))
            seconds = time.perf_counter() - start
    finally:
        DBOS.destroy()
    counting.stop()
    with psycopg.connect(url) as conn:
        succeeded = conn.execute(
            f"SELECT count(*) FROM {DBOS_SCHEMA}.workflow_status WHERE status = 'SUCCESS'"
        ).fetchone()
        steps = conn.execute(f"SELECT count(*) FROM {DBOS_SCHEMA}.operation_outputs").fetchone()
    return {
        "seconds": seconds,
        "latency": _latencies(latencies),
        "wrong": sum(1 for i, out in enumerate(outputs) if out != expected(i)),
        "succeeded": succeeded[0] if succeeded else 0,
        "steps": steps[0] if steps else 0,
        "recorded_before_step_one": probe.recorded_before,
    }


# -- one measurement in a subprocess ----------------------------------------------------------


def measure(
    impl: str, runs: int, concurrency: int, *, count: bool = False, timeout: float = 900
) -> dict[str, Any]:
    """Run ``impl`` (riverbed or dbos) in a fresh process on a fresh database; its figures
    (with ``count``, also PostgreSQL's counts during the timed workflows).

    Raises RuntimeError with the subprocess's stderr if it failed.
    """
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "benchmarks.w5", impl, "--runs", str(runs)]
    command += ["--concurrency", str(concurrency)] + (["--count"] if count else [])
    done = subprocess.run(
        command,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{impl} W5 subprocess failed (exit {done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def check(result: dict[str, Any], runs: int) -> str | None:
    """Why ``result`` is wrong (benchmarks.md: every run SUCCEEDED, 3 step records per run),
    or None."""
    total = runs + WARMUP + PROBES
    if result["wrong"]:
        return f"{result['wrong']} of {runs} workflows did not return the right output"
    if result["succeeded"] != total:
        return f"{result['succeeded']} runs SUCCEEDED in the store, expected {total}"
    if result["steps"] != STEPS * total:
        return f"{result['steps']} step records, expected {STEPS * total}"
    return None


def main(argv: list[str] | None = None) -> int:
    """The subprocess: one measurement, printed as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w5")
    parser.add_argument("impl", choices=["riverbed", "dbos"])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--count", action="store_true", help="also read PostgreSQL's counts (waits 11 s idle)"
    )
    args = parser.parse_args(argv)
    database = pgstats.create_database(POSTGRES_URL, f"rbw5_{args.impl}")
    url = pgstats.with_database(POSTGRES_URL, database)
    run: Callable[[str, int, int, Counting], dict[str, Any]]
    run = _riverbed if args.impl == "riverbed" else _dbos
    try:
        counting = Counting(args.count, database)
        result = run(url, args.runs, args.concurrency, counting)
        result["pg"] = counting.result
    finally:
        pgstats.drop_database(POSTGRES_URL, database)
    result["workflows_per_second"] = args.runs / result["seconds"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- the harness's W5 ---------------------------------------------------------------------------

TARGET_RATIO_DBOS = 5.0
MODES = (("sequential", 1), ("16 at once", 16))
IMPLS = ("riverbed", "dbos")


def _dbos_unavailable() -> str | None:
    """Why DBOS cannot run here, or None."""
    try:
        import dbos  # noqa: F401
    except Exception as error:
        return f"DBOS not installed ({type(error).__name__}: {error}); pip install -e '.[bench]'"
    return None


def _postgres_unavailable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as error:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {error}".strip()
    return None


def _per_workflow(pg: dict[str, Any] | None, runs: int, name: str) -> float | None:
    return pg[name] / runs if pg and name in pg else None


def _median_of(results: list[dict[str, Any]], name: str) -> float | None:
    values = [r["latency"][name] for r in results if name in r.get("latency", {})]
    return statistics.median(values) if values else None


def _mode_record(
    mode: str,
    concurrency: int,
    runs: int,
    repeats: int,
    results: dict[str, list[dict[str, Any]]],
    reasons: dict[str, str],
    failures: dict[str, str],
    server: dict[str, str] | None,
) -> dict[str, Any]:
    rates = {impl: [r["workflows_per_second"] for r in results[impl]] for impl in IMPLS}
    ours, theirs = rates["riverbed"], rates["dbos"]
    ratio = (
        statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
        if ours and len(ours) == len(theirs)
        else None
    )
    record: dict[str, Any] = {
        "workload": "W5" if concurrency == 1 else "W5x16",
        "description": f"durable 3-step workflows on PostgreSQL, {mode} ({runs:,} runs)",
        "mode": mode,
        "concurrency": concurrency,
        "runs": runs,
        "repeats": repeats,
        "riverbed_eps": statistics.median(ours) if ours else None,
        "dbos_eps": statistics.median(theirs) if theirs else None,
        "ratio_dbos": ratio,
        "runs_eps": rates,
        "server_settings": server,
        "plain_eps": None,
        "bytewax_eps": None,
        "naive_asyncio_eps": None,
        "ratio_plain": None,
        "ratio_bytewax": None,
        "peak_rss_mb": None,
        "plain_reason": "W5 compares durable workflow engines (DBOS), not loops",
        "naive_asyncio_reason": "W5 compares durable workflow engines (DBOS), not loops",
        "bytewax_reason": "Bytewax has no durable workflows",
        "targets": {"ratio_dbos": TARGET_RATIO_DBOS},
        "targets_met": {"ratio_dbos": ratio >= TARGET_RATIO_DBOS if ratio else None},
        "failures": failures,
    }
    for impl in IMPLS:
        counted = next((r["pg"] for r in results[impl] if r.get("pg")), None)
        record[f"{impl}_pg_counts"] = counted
        for key, column in (
            ("commits", "commits"),
            ("wal_syncs", "wal_sync"),
            ("wal_records", "wal_records"),
        ):
            record[f"{impl}_{key}_per_workflow"] = _per_workflow(counted, runs, column)
        record[f"{impl}_latency_p50_ms"] = _median_of(results[impl], "p50_ms")
        record[f"{impl}_latency_p99_ms"] = _median_of(results[impl], "p99_ms")
        probes = [r["recorded_before_step_one"] for r in results[impl]]
        record[f"{impl}_run_recorded_before_step_one"] = probes[0] if probes else None
        if record[f"{impl}_eps"] is None:
            record[f"{impl}_reason"] = reasons.get(impl, "no measurement")
    return record


def run_w5(runs: int, repeats: int, log: Any) -> list[dict[str, Any]]:
    """W5 in both modes: riverbed and DBOS alternate, ``repeats`` times each, every run
    checked; the first repeat of each also counts commits and WAL in PostgreSQL. One record
    per mode (workflows per second as ``riverbed_eps`` / ``dbos_eps``, ``ratio_dbos`` the
    median of the ratios within each repeat)."""
    records = []
    no_server = _postgres_unavailable()
    no_dbos = no_server or _dbos_unavailable()
    server = None if no_server else pgstats.settings(POSTGRES_URL)
    for mode, concurrency in MODES:
        results: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLS}
        reasons: dict[str, str] = {}
        failures: dict[str, str] = {}
        if no_server:
            reasons["riverbed"] = no_server
        if no_dbos:
            reasons["dbos"] = no_dbos
        for repeat in range(repeats):
            order = IMPLS if repeat % 2 == 0 else IMPLS[::-1]
            for impl in order:
                if impl in reasons:
                    continue
                try:
                    result = measure(impl, runs, concurrency, count=repeat == 0)
                except Exception as error:
                    reasons[impl] = str(error).splitlines()[0]
                    failures[impl] = str(error)
                    log(f"  W5 {mode} {impl}: FAILED ({reasons[impl]})")
                    continue
                wrong = check(result, runs)
                if wrong is not None:
                    reasons[impl] = f"wrong result: {wrong}"
                    failures[impl] = wrong
                    log(f"  W5 {mode} {impl}: WRONG RESULT ({wrong})")
                    continue
                results[impl].append(result)
                counted = ""
                if result.get("pg"):
                    pg = result["pg"]
                    counted = (
                        f", {pg['commits'] / runs:.2f} commits and "
                        f"{pg.get('wal_sync', 0) / runs:.2f} WAL syncs per workflow"
                    )
                log(
                    f"  W5 {mode} repeat {repeat + 1}/{repeats} {impl:<9} "
                    f"{result['workflows_per_second']:>9,.0f} workflows/s, p50 "
                    f"{result['latency'].get('p50_ms', 0):.2f} ms, p99 "
                    f"{result['latency'].get('p99_ms', 0):.2f} ms ({result['steps']:,} step "
                    f"records, {result['succeeded']:,} runs SUCCEEDED){counted}"
                )
        records.append(
            _mode_record(mode, concurrency, runs, repeats, results, reasons, failures, server)
        )
    return records
