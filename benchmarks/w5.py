"""W5: durable workflows. 2,000 runs of a 3-step workflow (each step a trivial function),
every step recorded durably in PostgreSQL; run one after the other, and 16 at once; riverbed
beside DBOS Transact on the same server.

Each measurement runs in a fresh subprocess (DBOS is a process-wide singleton) on a fresh
schema, dropped afterwards: ``python -m benchmarks.w5 riverbed|dbos --runs N
--concurrency C`` prints one JSON line with the seconds taken and the checks.

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
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

POSTGRES_URL = os.environ.get(
    "RIVERBED_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
RUNS = 2000
STEPS = 3
WARMUP = 50
"""Untimed workflows run first in the same process (imports, connections, prepared
statements); the checks count them too."""


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


# -- riverbed ---------------------------------------------------------------------------------


def _riverbed(url: str, runs: int, concurrency: int) -> dict[str, Any]:
    import riverbed as rb
    from riverbed._runtime import workflow as engine

    flow = rb.Flow("w5")
    flow.input().map(step_one).map(step_two).map(step_three).output()
    store = rb.open_store(url)

    async def many(first: int, count: int) -> list[Any]:
        results: list[Any] = [None] * count
        cursor = iter(range(count))

        async def worker() -> None:
            for index in cursor:
                results[index] = await rb.arun(flow, first + index, store=store)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results

    async def main() -> tuple[float, list[Any], int]:
        await many(10_000_000, WARMUP)
        commits_before = engine.committer(store).commits
        start = time.perf_counter()
        results = await many(0, runs)
        seconds = time.perf_counter() - start
        return seconds, results, engine.committer(store).commits - commits_before

    def sequential() -> tuple[float, list[Any], int]:
        # rb.run: the plain synchronous call, the way one workflow at a time is run.
        for index in range(WARMUP):
            rb.run(flow, 10_000_000 + index, store=store)
        start = time.perf_counter()
        results = [rb.run(flow, index, store=store) for index in range(runs)]
        return time.perf_counter() - start, results, STEPS * runs

    try:
        seconds, results, commits = sequential() if concurrency == 1 else asyncio.run(main())
    finally:
        store.close()
    wrong = [r.run_id for i, r in enumerate(results) if not r.ok or r.output != expected(i)]
    import psycopg

    with psycopg.connect(url) as conn:
        succeeded = conn.execute(
            "SELECT count(*) FROM riverbed_runs WHERE status = 'succeeded'"
        ).fetchone()
        steps = conn.execute("SELECT count(*) FROM riverbed_steps").fetchone()
    return {
        "seconds": seconds,
        "wrong": len(wrong),
        "succeeded": succeeded[0] if succeeded else 0,
        "steps": steps[0] if steps else 0,
        "transactions": commits,
    }


# -- DBOS -------------------------------------------------------------------------------------


def _dbos(url: str, schema: str, runs: int, concurrency: int) -> dict[str, Any]:
    from dbos import DBOS

    @DBOS.step()
    def one(x: int) -> int:
        return step_one(x)

    @DBOS.step()
    def two(x: int) -> int:
        return step_two(x)

    @DBOS.step()
    def three(x: int) -> int:
        return step_three(x)

    @DBOS.workflow()
    def workflow(x: int) -> int:
        return three(two(one(x)))

    DBOS(
        config={
            "name": "riverbed-w5",
            "system_database_url": url,
            "dbos_system_schema": schema,
            "log_level": "WARNING",
            "sys_db_pool_size": max(20, concurrency * 2),
        }
    )
    DBOS.launch()
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(workflow, range(10_000_000, 10_000_000 + WARMUP)))
            start = time.perf_counter()
            if concurrency == 1:
                outputs = [workflow(i) for i in range(runs)]
            else:
                outputs = list(pool.map(workflow, range(runs)))
            seconds = time.perf_counter() - start
    finally:
        DBOS.destroy()
    import psycopg

    with psycopg.connect(url) as conn:
        succeeded = conn.execute(
            f"SELECT count(*) FROM {schema}.workflow_status WHERE status = 'SUCCESS'"
        ).fetchone()
        steps = conn.execute(f"SELECT count(*) FROM {schema}.operation_outputs").fetchone()
    return {
        "seconds": seconds,
        "wrong": sum(1 for i, out in enumerate(outputs) if out != expected(i)),
        "succeeded": succeeded[0] if succeeded else 0,
        "steps": steps[0] if steps else 0,
        "transactions": None,
    }


# -- one measurement in a subprocess ----------------------------------------------------------


def measure(impl: str, runs: int, concurrency: int, timeout: float = 900) -> dict[str, Any]:
    """Run ``impl`` (riverbed or dbos) in a fresh process on a fresh schema; its figures.

    Raises RuntimeError with the subprocess's stderr if it failed.
    """
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.w5",
            impl,
            "--runs",
            str(runs),
            "--concurrency",
            str(concurrency),
        ],
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
    total = runs + WARMUP
    if result["wrong"]:
        return f"{result['wrong']} of {runs} workflows did not return the right output"
    if result["succeeded"] != total:
        return f"{result['succeeded']} runs SUCCEEDED in the store, expected {total}"
    if result["steps"] != STEPS * total:
        return f"{result['steps']} step records, expected {STEPS * total}"
    return None


def _schema(conn_url: str, prefix: str) -> str:
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(conn_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema


def _drop(conn_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(conn_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main(argv: list[str] | None = None) -> int:
    """The subprocess: one measurement, printed as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w5")
    parser.add_argument("impl", choices=["riverbed", "dbos"])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    if args.impl == "riverbed":
        schema = _schema(POSTGRES_URL, "rb_w5")
        url = f"{POSTGRES_URL}?options=-c%20search_path%3D{schema}"
        try:
            result = _riverbed(url, args.runs, args.concurrency)
        finally:
            _drop(POSTGRES_URL, schema)
    else:
        schema = f"dbos_w5_{uuid.uuid4().hex[:12]}"  # DBOS creates its schema itself
        try:
            result = _dbos(POSTGRES_URL, schema, args.runs, args.concurrency)
        finally:
            _drop(POSTGRES_URL, schema)
    result["workflows_per_second"] = args.runs / result["seconds"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- the harness's W5 ---------------------------------------------------------------------------

TARGET_RATIO_DBOS = 5.0
MODES = (("sequential", 1), ("16 at once", 16))


def _dbos_unavailable() -> str | None:
    """Why DBOS cannot run here, or None."""
    try:
        import dbos  # noqa: F401
    except Exception as error:
        return f"DBOS not installed ({type(error).__name__}: {error}); pip install -e '.[bench]'"
    return None


def _postgres_unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as error:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {error}".strip()
    return None


def run_w5(runs: int, repeats: int, log: Any) -> list[dict[str, Any]]:
    """W5 in both modes: riverbed and DBOS alternate, ``repeats`` times each, every run
    checked; one record per mode (workflows per second as ``riverbed_eps`` / ``dbos_eps``,
    ``ratio_dbos`` the median of the ratios within each repeat)."""
    import statistics

    records = []
    no_server = _postgres_unavailable()
    no_dbos = no_server or _dbos_unavailable()
    for mode, concurrency in MODES:
        rates: dict[str, list[float]] = {"riverbed": [], "dbos": []}
        per_workflow: list[float] = []
        reasons: dict[str, str] = {}
        failures: dict[str, str] = {}
        if no_server:
            reasons["riverbed"] = no_server
        if no_dbos:
            reasons["dbos"] = no_dbos
        for repeat in range(repeats):
            order = ("riverbed", "dbos") if repeat % 2 == 0 else ("dbos", "riverbed")
            for impl in order:
                if impl in reasons:
                    continue
                try:
                    result = measure(impl, runs, concurrency)
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
                rate = result["workflows_per_second"]
                rates[impl].append(rate)
                if result["transactions"]:
                    per_workflow.append(result["transactions"] / runs)
                log(
                    f"  W5 {mode} repeat {repeat + 1}/{repeats} {impl:<9} {rate:>9,.0f} "
                    f"workflows/s ({result['steps']:,} step records, {result['succeeded']:,} "
                    "runs SUCCEEDED)"
                )
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
            "riverbed_commits_per_workflow": statistics.median(per_workflow)
            if per_workflow
            else None,
            "runs_eps": rates,
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
        for impl in ("riverbed", "dbos"):
            if record[f"{impl}_eps"] is None:
                record[f"{impl}_reason"] = reasons.get(impl, "no measurement")
        records.append(record)
    return records
