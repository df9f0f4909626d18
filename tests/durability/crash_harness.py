"""Kill a durable run with SIGKILL at random moments, resume it, again and again, and check
that its final per-key results equal an uninterrupted run's.

    python -m tests.durability.crash_harness --store URL --kills 200   (the soak: make soak)

Each cycle starts ``crash_flow`` in a subprocess (a new run, or a resume of the killed
one), waits a random moment and kills it with SIGKILL; a run that finishes before its kill
is checked and a new one starts. Kills land anywhere: while Python imports, while the run
record is written, mid-batch, mid-checkpoint, after the last checkpoint.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.durability.crash_flow import expected, read_results

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Report:
    """What a harness run did."""

    kills: int = 0
    runs_checked: int = 0
    failures: list[str] = field(default_factory=list)
    resume_seconds: list[float] = field(default_factory=list)
    """For each finished run: seconds from its last start to its end."""


def _start(store: str, results: str, run_id: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.durability.crash_flow", store, results, run_id],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(
    store: str,
    kills: int,
    *,
    seed: int = 0,
    max_delay: float = 1.2,
    rows: str | None = None,
) -> Report:
    """Kill runs ``kills`` times in all, finish the last one, and check every finished run.

    Results go to an upserting SQLite table per run, or, with ``rows`` (a PostgreSQL URL),
    to an append-only table there written by the exactly-once ``PostgresTable`` sink."""
    rng = random.Random(seed)
    report = Report()
    want = expected()
    with tempfile.TemporaryDirectory() as scratch:
        results = run_id = ""

        def fresh() -> None:
            nonlocal results, run_id
            run_id = uuid.uuid4().hex[:16]
            if rows is None:
                results = str(Path(scratch) / f"{run_id}.db")
            else:
                results = f"{rows}#crash_rows_{run_id}"
                _create_rows_table(rows, f"crash_rows_{run_id}")

        fresh()
        while True:
            started = time.monotonic()
            process = _start(store, results, run_id)
            if report.kills < kills:
                try:
                    process.wait(timeout=rng.uniform(0.05, max_delay))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                    process.communicate()  # reaps it and closes its pipes
                    report.kills += 1
                    continue
            else:
                process.wait(timeout=120)
            _, err = process.communicate()
            if process.returncode != 0:
                report.failures.append(f"run {run_id} exited {process.returncode}: {err[-2000:]}")
                return report
            report.resume_seconds.append(time.monotonic() - started)
            got = read_results(results)
            report.runs_checked += 1
            if got != want:
                wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
                report.failures.append(
                    f"run {run_id}: {len(wrong)} keys differ (got, want): "
                    f"{dict(list(wrong.items())[:5])}"
                )
            if report.kills >= kills:
                return report
            fresh()


def _create_rows_table(url: str, table: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE {table} (key INTEGER, n INTEGER, total DOUBLE PRECISION)")


def main() -> int:
    """The soak from the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--store", required=True, help="store URL (sqlite:///... or postgresql://...)"
    )
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rows", help="a PostgreSQL URL: write results there with the exactly-once sink"
    )
    args = parser.parse_args()
    report = run(args.store, args.kills, seed=args.seed, rows=args.rows)
    print(
        f"{report.kills} kills, {report.runs_checked} runs checked, {len(report.failures)} failures"
    )
    for failure in report.failures:
        print(failure)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
