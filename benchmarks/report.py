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

from . import bytewax_impl, riverbed_impl

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


def _eps(value: float | None, reason: str | None) -> str:
    if value is None:
        return f"[red]n/a[/red]\n[dim]{(reason or '')[:60]}[/dim]"
    return f"{value:,.0f}"


def _target(value: float | None, minimum: float | None, *, fmt: str = "{:.2f}") -> str:
    if value is None:
        text = "n/a"
    else:
        text = fmt.format(value)
    if minimum is None:
        return text
    if value is None:
        return f"{text} [dim](target >= {minimum:g})[/dim]"
    mark = "[green]met[/green]" if value >= minimum else "[red]NOT met[/red]"
    return f"{text} [dim](target >= {minimum:g})[/dim] {mark}"


def _memory(record: dict[str, Any]) -> str:
    peak = record.get("peak_rss_mb")
    text = "n/a" if peak is None else f"{peak:,.0f}"
    if record["workload"] != "W6":
        return text
    growth = record.get("rss_growth_mb")
    limit = record["targets"]["rss_growth_mb_below"]
    if growth is None:
        return f"{text}\ngrowth n/a [dim](target < {limit:g})[/dim]"
    mark = "[green]met[/green]" if growth < limit else "[red]NOT met[/red]"
    return f"{text}\ngrowth {growth:.1f} [dim](target < {limit:g})[/dim] {mark}"


def print_table(records: list[dict[str, Any]], info: dict[str, Any], console: Console) -> None:
    """The results as one table: medians, ratios against their targets, memory."""
    events = next((r["events"] for r in records if "events" in r), None)
    repeats = next((r["repeats"] for r in records if "repeats" in r), None)
    title = (
        f"riverbed {info['riverbed_version']} vs baselines: medians of {repeats} repeat(s) "
        f"of {events:,} events"
        if events
        else f"riverbed {info['riverbed_version']}"
    )
    table = Table(title=title, show_lines=True)
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
    for record in records:
        targets = record.get("targets", {})
        table.add_row(
            record["workload"],
            _eps(record["riverbed_eps"], record.get("riverbed_reason")),
            _eps(record["plain_eps"], record.get("plain_reason")),
            _eps(record.get("naive_asyncio_eps"), record.get("naive_asyncio_reason")),
            _eps(record["bytewax_eps"], record.get("bytewax_reason")),
            _target(record["ratio_plain"], targets.get("ratio_plain")),
            _target(record["ratio_bytewax"], targets.get("ratio_bytewax")),
            _memory(record),
        )
    console.print(table)
    console.print(
        f"[dim]{info['platform']}, Python {platform.python_version()}, "
        f"{info['cpu_count']} CPUs, bytewax {info['bytewax_version']}, {info['date']}[/dim]"
    )
