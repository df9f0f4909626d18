"""``python -m benchmarks``: run W1 to W7 beside the baselines (the plain loop, naive
asyncio, Bytewax, DBOS), and PARALLEL (the speed-ups of ``parallel_map``); print and save.

Exit status 1 if any implementation raised or gave a wrong result (a missing Bytewax is
reported, not an error); targets not met are shown in the table but do not fail the run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from . import harness, report


def _workloads(text: str) -> list[str]:
    chosen = [part.strip().upper() for part in text.split(",") if part.strip()]
    unknown = [w for w in chosen if w not in harness.ALL_WORKLOADS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {unknown}; choose from {', '.join(harness.ALL_WORKLOADS)}"
        )
    return [w for w in harness.ALL_WORKLOADS if w in chosen]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="riverbed beside the plain loop, naive asyncio and Bytewax (benchmarks.md)",
    )
    parser.add_argument(
        "--only",
        type=_workloads,
        default=list(harness.ALL_WORKLOADS),
        help="comma-separated workloads to run, e.g. W1,W2 (default: all)",
    )
    parser.add_argument("--json", type=Path, help="also write the results as a JSON list here")
    parser.add_argument(
        "--events", type=_positive_int, default=1_000_000, help="events per run (1,000,000)"
    )
    parser.add_argument(
        "--repeats", type=_positive_int, default=5, help="runs per implementation (5)"
    )
    parser.add_argument(
        "--w5-runs", type=_positive_int, default=2000, help="workflow runs per W5 mode (2,000)"
    )
    parser.add_argument(
        "--w6-seconds", type=_positive_float, default=60.0, help="length of W6 in seconds (60)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the JSON; the exit status."""
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:  # piped or redirected: do not squeeze the table into 80 columns
        console = Console(width=160)
    options = {
        "only": args.only,
        "events": args.events,
        "repeats": args.repeats,
        "w6_seconds": args.w6_seconds,
        "w5_runs": args.w5_runs,
    }
    records = harness.run(args.only, args.events, args.repeats, args.w6_seconds, args.w5_runs)
    path = report.write_results(records, options)
    if args.json is not None:
        report.write_json(records, args.json)
    report.print_table(records, report.machine_info(), console)
    console.print(f"results written to {path}")
    failed = [(r["workload"], name, why) for r in records for name, why in r["failures"].items()]
    for workload, name, why in failed:
        console.print(f"\n[red]{workload} {name} failed:[/red]")
        console.print(why, markup=False, highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
