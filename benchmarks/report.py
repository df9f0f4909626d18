"""Output: the Rich table, the ``--json`` list, and the results file with machine info."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import socket
import sys
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from . import bytewax_impl, connectors, parallel, ray_bench, riverbed_impl, serve

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """Where and with what the benchmarks ran."""
    now = dt.datetime.now(dt.UTC)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": now.isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": sys.version,
        "python_implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_total_mb": round(psutil.virtual_memory().total / 1024 / 1024),
        "load_average_at_end": load,
        "riverbed_version": riverbed_impl.version(),
        "bytewax_version": bytewax_impl.version(),
        "bytewax_unavailable": bytewax_impl.UNAVAILABLE,
    }


def write_results(records: list[dict[str, Any]], options: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<date>-<host>.json``: machine info, options, records."""
    info = machine_info()
    host = re.sub(r"[^A-Za-z0-9_.-]+", "_", info["host"]) or "host"
    path = RESULTS_DIR / f"{info['date'][:10]}-{host}.json"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    document = {"machine": info, "options": options, "results": records}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def write_json(records: list[dict[str, Any]], path: Path) -> None:
    """The ``--json`` file: a list, one object per workload."""
    path.write_text(json.dumps(records, indent=2) + "\n")


class _Notes:
    """Footnotes for cells without a figure, numbered in order, each reason once."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def mark(self, reason: str | None) -> str:
        text = reason or "no measurement"
        if text not in self.reasons:
            self.reasons.append(text)
        return f"[{self.reasons.index(text) + 1}]"


def _eps(value: float | None, reason: str | None, notes: _Notes) -> str:
    if value is None:
        return f"[red]n/a[/red] {notes.mark(reason)}"
    return f"{value:,.0f}"


def _num(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.2f}{suffix}"


def _mark(met: bool) -> str:
    return "[green]met[/green]" if met else "[red]NOT met[/red]"


def _ratio(value: float | None, minimum: float | None) -> str:
    text = "n/a" if value is None else f"{value:.2f}"
    if minimum is None:
        return text
    if value is None:
        return f"{text} [dim](>= {minimum:g})[/dim]"
    return f"{text} [dim](>= {minimum:g})[/dim] {_mark(value >= minimum)}"


def _memory(record: dict[str, Any]) -> str:
    peak = record.get("peak_rss_mb")
    text = "n/a" if peak is None else f"{peak:,.0f}"
    if record["workload"] != "W6":
        return text
    growth = record.get("rss_growth_mb")
    limit = record["targets"]["rss_growth_mb_below"]
    if growth is None:
        return f"{text}; growth n/a [dim](< {limit:g})[/dim]"
    return f"{text}; growth {growth:.1f} [dim](< {limit:g})[/dim] {_mark(growth < limit)}"


def print_table(records: list[dict[str, Any]], info: dict[str, Any], console: Console) -> None:
    """The results as one table: medians, ratios against their targets, memory; then
    footnotes saying why a figure is missing. PARALLEL (speed-ups) and CONNECTORS (ratios
    to each client's own loop) and RAY have their own tables."""
    own = {
        "PARALLEL": parallel.print_table,
        "CONNECTORS": connectors.print_table,
        "SERVE": serve.print_table,
    }
    extra = [r for r in records if r["workload"] in own]
    records = [r for r in records if r["workload"] not in own]
    for record in extra:
        own[record["workload"]](record, console)
    on_ray = [r for r in records if r["workload"].startswith("RAY")]
    records = [r for r in records if r not in on_ray]
    if on_ray:
        ray_bench.print_table(on_ray, console)
    if not records:
        return
    rows = [r for r in records if r.get("kind") != "durability"]  # W2C, W7: lines below
    timed = [r for r in rows if "events" in r and "repeats" in r]
    events = timed[0]["events"] if timed else None
    repeats = timed[0]["repeats"] if timed else None
    title = f"riverbed {info['riverbed_version']}: events per second"
    if events:
        title += f", medians of {repeats} run(s) of {events:,} events"
    notes = _Notes()
    table = Table(title=title)
    for column in (
        "workload",
        "riverbed eps",
        "plain eps",
        "naive asyncio eps",
        "bytewax eps",
        "ratio to plain",
        "ratio to bytewax",
        "peak RSS MB",
    ):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for record in rows:
        targets = record.get("targets", {})
        table.add_row(
            record["workload"],
            _eps(record["riverbed_eps"], record.get("riverbed_reason"), notes),
            _eps(record["plain_eps"], record.get("plain_reason"), notes),
            _eps(record.get("naive_asyncio_eps"), record.get("naive_asyncio_reason"), notes),
            _eps(record["bytewax_eps"], record.get("bytewax_reason"), notes),
            _ratio(record["ratio_plain"], targets.get("ratio_plain")),
            _ratio(record["ratio_bytewax"], targets.get("ratio_bytewax")),
            _memory(record),
        )
    if rows:
        console.print(table)
    cpu = [
        f"{r['workload']} {_num(r.get('ratio_plain_cpu'))} of plain, "
        f"{_num(r.get('ratio_bytewax_cpu'), 'x')} bytewax"
        for r in records
        if "ratio_plain_cpu" in r
    ]
    if cpu:
        console.print(
            "[dim]the same ratios on process CPU time (less disturbed by other processes): "
            + "; ".join(cpu)
            + "[/dim]"
        )
    for record in records:
        for line in record.get("lines", ()):
            console.print(line, markup=False, highlight=False)
        if "dbos_eps" in record:  # W5: workflows per second beside DBOS Transact
            console.print(_w5_line(record, notes))
    settings = _settings_line(records)
    if settings is not None:
        console.print(settings, markup=False, highlight=False)
    for number, reason in enumerate(notes.reasons, 1):
        console.print(f"[{number}] {reason}", markup=False, highlight=False)
    console.print(
        f"[dim]{info['platform']}, Python {platform.python_version()}, "
        f"{info['cpu_count']} CPUs, bytewax {info['bytewax_version']}, {info['date']}[/dim]"
    )


def _w5_line(record: dict[str, Any], notes: _Notes) -> str:
    """W5's figures (workflows, not events, per second) beside DBOS's; then what PostgreSQL
    counted per workflow, the latencies, and how each records the run before step 1."""
    line = (
        f"{record['workload']} ({record['mode']}, {record['runs']:,} runs): riverbed "
        f"{_eps(record['riverbed_eps'], record.get('riverbed_reason'), notes)} workflows/s, "
        f"DBOS {_eps(record['dbos_eps'], record.get('dbos_reason'), notes)} workflows/s, "
        f"ratio {_ratio(record['ratio_dbos'], record['targets']['ratio_dbos'])}"
    )
    per = []
    for key, what in (("commits", "commits"), ("wal_syncs", "WAL syncs")):
        ours = record.get(f"riverbed_{key}_per_workflow")
        theirs = record.get(f"dbos_{key}_per_workflow")
        if ours is not None or theirs is not None:
            per.append(f"{what} riverbed {_num(ours)}, DBOS {_num(theirs)}")
    if per:
        others = [
            (record.get(f"{impl}_pg_counts") or {}).get("other_commits", 0)
            for impl in ("riverbed", "dbos")
        ]
        line += (
            "; per workflow (PostgreSQL's counts): "
            + "; ".join(per)
            + f" [dim](WAL is server-wide: other databases committed {others[0]:,.0f} / "
            f"{others[1]:,.0f} transactions meanwhile)[/dim]"
        )
    latency = [
        f"{name} {_num(record.get(f'{impl}_latency_p50_ms'))} / "
        f"{_num(record.get(f'{impl}_latency_p99_ms'))} ms"
        for impl, name in (("riverbed", "riverbed"), ("dbos", "DBOS"))
    ]
    line += "; latency p50 / p99: " + ", ".join(latency)
    before = {
        impl: record.get(f"{impl}_run_recorded_before_step_one") for impl in ("riverbed", "dbos")
    }
    if any(value is not None for value in before.values()):
        said = {
            True: "durably before step 1",
            False: "only in step 1's commit",
            None: "n/a",
        }
        line += (
            f"; the run is recorded: riverbed {said[before['riverbed']]}, "
            f"DBOS {said[before['dbos']]}"
        )
    return line


def _settings_line(records: list[dict[str, Any]]) -> str | None:
    """The PostgreSQL settings W5 ran with, once."""
    settings = next((r["server_settings"] for r in records if r.get("server_settings")), None)
    if not settings:
        return None
    version = settings.get("server_version", "?")
    rest = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "server_version")
    return f"W5 server: PostgreSQL {version}; {rest}"
