"""``python -m benchmarks.ui_paging``: the dashboard's runs list over 100,000 runs.

The list pages by seek (``Store.list_runs(before=RUN)``): a page deep in the list should
cost what the first page costs. Measured on SQLite and PostgreSQL (``--postgres``, default
the test server, in a throwaway schema; skipped with a note if unreachable), in the same
run: milliseconds per page (median of ``--repeats``) for

- the first page (50 runs, newest first), the baseline;
- the last page, by seek (``before=`` the run after it);
- the same page by OFFSET (what the list would cost paged by page numbers), for contrast;
- the last page of one flow in one status (the list's filters), by seek;
- the runs of the last hour (``since=``), when they are the newest 50.

and each as a ratio to the first page. Prints a table; ``--json PATH`` also saves it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import riverbed as rb
from riverbed._store.sql.runs import create_runs
from riverbed._store.sql.statements import RUNS

PAGE = 50
S = rb.RunStatus
STATUSES = (S.SUCCEEDED, S.SUCCEEDED, S.SUCCEEDED, S.FAILED, S.CANCELLED)


def _runs(count: int) -> Iterator[list[rb.RunRecord]]:
    """``count`` runs of ten flows in chunks, oldest first: one a minute, the newest
    ``PAGE`` within the last hour."""
    now = datetime.now(UTC)
    chunk: list[rb.RunRecord] = []
    for n in range(count):
        age = timedelta(minutes=count - n) if n < count - PAGE else timedelta(seconds=count - n)
        chunk.append(
            rb.RunRecord(
                run_id=f"r{n:08d}",
                flow=f"flow-{n % 10}",
                flow_version="v1",
                status=STATUSES[n % len(STATUSES)],
                created_at=now - age,
            )
        )
        if len(chunk) == 10_000:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _timed(call: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median milliseconds of ``call()`` (after one call to warm caches and plans), and its
    last result."""
    times, result = [], call()
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def _offset_page(store: Any, offset: int) -> list[Any]:
    """A page by OFFSET, as a list paged by page numbers would read it."""

    def read(tx: Any) -> list[Any]:
        tx.execute(
            f"SELECT {RUNS} FROM riverbed_runs ORDER BY seq DESC LIMIT ? OFFSET ?",
            (PAGE, offset),
        )
        return list(tx.fetchall())

    return list(store._runs._core.read(read))


def measure(store: Any, count: int, repeats: int) -> dict[str, float]:
    """Fill ``store`` with ``count`` runs; milliseconds per page of each kind."""
    for chunk in _runs(count):
        create_runs(store._runs._core, chunk)
    last_but = f"r{PAGE:08d}"  # the last page: the PAGE runs stored before this one
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    filtered_before = f"r{PAGE * 10 * len(STATUSES):08d}"
    cases: dict[str, Callable[[], Any]] = {
        "first page": lambda: store.list_runs(limit=PAGE),
        "last page, seek": lambda: store.list_runs(limit=PAGE, before=last_but),
        "last page, OFFSET": lambda: _offset_page(store, count - PAGE),
        "flow+status, deep seek": lambda: store.list_runs(
            flow="flow-3", status=S.FAILED, limit=PAGE, before=filtered_before
        ),
        "last hour (since)": lambda: store.list_runs(limit=PAGE, since=hour_ago),
    }
    results = {}
    for name, call in cases.items():
        results[name], found = _timed(call, repeats)
        if not found:
            raise AssertionError(f"{name}: no runs found, the benchmark is wrong")
    return results


@contextmanager
def _postgres(url: str) -> Iterator[rb.Store | None]:
    try:
        import psycopg

        schema = f"rb_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except Exception as error:
        print(f"PostgreSQL skipped: {error}")
        yield None
        return
    try:
        with rb.open_store(f"{url}?options=-c%20search_path%3D{schema}") as store:
            yield store
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main(argv: list[str] | None = None) -> None:
    """Measure, print, save."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ui_paging")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    table: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder, rb.open_store(f"sqlite:///{folder}/b.db") as s:
        table["sqlite"] = measure(s, args.runs, args.repeats)
    with _postgres(args.postgres) as store:
        if store is not None:
            table["postgresql"] = measure(store, args.runs, args.repeats)
    print(f"runs list over {args.runs:,} runs, {PAGE} a page: ms per page (x first page)")
    for backend, results in table.items():
        base = results["first page"]
        for name, ms in results.items():
            print(f"  {backend:<11} {name:<24} {ms:8.2f} ms  x{ms / base:6.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "ms": table}, indent=2))


if __name__ == "__main__":
    main()
