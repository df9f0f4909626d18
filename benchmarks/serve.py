"""SERVE: ``riverbed serve`` beside a bare FastAPI application doing the same work, both
under uvicorn in processes of their own on 127.0.0.1, driven from this process in the
same run (``serve_apps.py`` has both).

- ingest: ``POST /events/count`` with batches of ``BATCH`` JSON events over
  ``CONNECTIONS`` keep-alive connections, ``REQUESTS`` requests (at most ``SECONDS``
  seconds); events/s accepted (202), then the service's count checked. Ratio: riverbed
  over bare FastAPI (target: >= 0.7).
- calls: ``CLIENTS`` clients, each calling ``POST /events/call`` one call after the other,
  ``CALLS`` calls in all (at most ``SECONDS`` seconds); latency p50 and p99, every answer
  checked.

The load client is a plain asyncio HTTP/1.1 client (a few lines below): httpx's own cost
per request would hide the servers' difference. It connects to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BATCH = 100
CONNECTIONS = 16
REQUESTS = 2_000
WARMUP_REQUESTS = 50
CLIENTS = 50
CALLS = 3_000
SECONDS = 30.0
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _server(kind: str) -> Iterator[tuple[int, int]]:
    """The riverbed or bare service, in a process of its own until the block ends."""
    port = _free_port()
    if kind == "riverbed":
        command = ["-m", "riverbed", "serve", "benchmarks.serve_apps:counting"]
    else:
        command = ["-m", "uvicorn", "benchmarks.serve_apps:bare", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    process = subprocess.Popen(
        [sys.executable, *command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_up(port, process)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_up(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            status, _ = asyncio.run(_one(port, "GET", "/docs", b""))
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start within 30 s")


async def _one(port: int, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _exchange(reader, writer, method, path, body)
    finally:
        writer.close()


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    method: str,
    path: str,
    body: bytes,
) -> tuple[int, bytes]:
    """One request and its response on a keep-alive connection."""
    writer.write(
        f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length")
    )
    return status, await reader.readexactly(length)


async def _ingest(port: int, requests: int = REQUESTS) -> tuple[float, int]:
    """Send ``requests`` batches; the seconds it took and the events accepted."""
    deadline = time.monotonic() + SECONDS
    accepted = 0
    bodies = [
        json.dumps([{"id": r * BATCH + i, "value": i} for i in range(BATCH)]).encode()
        for r in range(requests)
    ]

    async def connection(indices: range) -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in indices:
                if time.monotonic() > deadline:
                    return
                status, _ = await _exchange(reader, writer, "POST", "/events/count", bodies[index])
                if status != 202:
                    raise RuntimeError(f"POST /events/count answered {status}")
                accepted += BATCH
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(range(k, requests, CONNECTIONS)) for k in range(CONNECTIONS)))
    return time.perf_counter() - started, accepted


async def _calls(port: int) -> list[float]:
    """``CALLS`` calls from ``CLIENTS`` clients at once; each one's latency (seconds)."""
    deadline = time.monotonic() + SECONDS
    latencies: list[float] = []

    async def client(numbers: range) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in numbers:
                if time.monotonic() > deadline:
                    return
                body = json.dumps({"id": n, "value": n}).encode()
                started = time.perf_counter()
                status, answer = await _exchange(reader, writer, "POST", "/events/call", body)
                latencies.append(time.perf_counter() - started)
                if status != 200 or json.loads(answer) != {"id": n, "double": 2 * n}:
                    raise RuntimeError(f"call {n} answered {status}: {answer[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(client(range(k, CALLS, CLIENTS)) for k in range(CLIENTS)))
    return latencies


def _counted(kind: str, port: int) -> int:
    """How many events the service counted."""
    if kind == "bare":
        _, body = asyncio.run(_one(port, "GET", "/count", b""))
        return int(json.loads(body)["count"])
    from prometheus_client.parser import text_string_to_metric_families

    _, body = asyncio.run(_one(port, "GET", "/metrics", b""))
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "riverbed_stage_events_total" and sample.labels == {
                "flow": "serve-bench",
                "stage": "counted",
                "direction": "in",
            }:
                return int(sample.value)
    raise RuntimeError("the riverbed service's /metrics has no count of stage 'counted'")


def _cpu_seconds(pid: int) -> float:
    """CPU seconds the server process has used (user + system): on a shared machine, less
    disturbed by other processes than wall-clock time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(kind: str) -> dict[str, Any]:
    with _server(kind) as (port, pid):
        _, warm = asyncio.run(_ingest(port, WARMUP_REQUESTS))  # first-call costs, untimed
        cpu = _cpu_seconds(pid)
        seconds, accepted = asyncio.run(_ingest(port))
        cpu = _cpu_seconds(pid) - cpu
        deadline = time.monotonic() + 10
        total = warm + accepted
        while (counted := _counted(kind, port)) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        if counted != total:
            raise RuntimeError(f"{kind}: {total} events accepted, {counted} counted")
        latencies = asyncio.run(_calls(port))
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "eps": accepted / seconds,
        "cpu_eps": accepted / cpu if cpu > 0 else None,
        "events": accepted,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "calls": len(latencies),
    }


def run_serve(repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The SERVE record: per repeat both services (their order alternating), medians and
    the paired ratio of events/s."""
    record: dict[str, Any] = {
        "workload": "SERVE",
        "description": "POST /events batches of 100 and calls at 50 clients: riverbed serve "
        "vs bare FastAPI",
        "batch": BATCH,
        "connections": CONNECTIONS,
        "clients": CLIENTS,
        "repeats": repeats,
        "targets": {"ratio_bare": 0.7},
        "runs": {"riverbed": [], "bare": []},
        "failures": {},
    }
    try:
        for repeat in range(repeats):
            for kind in ("riverbed", "bare") if repeat % 2 == 0 else ("bare", "riverbed"):
                figures = _measure(kind)
                record["runs"][kind].append(figures)
                log(
                    f"  SERVE {repeat + 1}/{repeats} {kind:<8} {figures['eps']:>10,.0f} ev/s  "
                    f"(cpu {figures['cpu_eps']:,.0f})  p50 {figures['p50_ms']:.1f} ms  "
                    f"p99 {figures['p99_ms']:.1f} ms"
                )
    except Exception as error:
        record["failures"]["serve"] = "".join(traceback.format_exception(error)).rstrip()
        log(f"  SERVE: FAILED ({type(error).__name__}: {error})")
        return record
    runs = record["runs"]
    for kind in ("riverbed", "bare"):
        for figure in ("eps", "p50_ms", "p99_ms"):
            record[f"{kind}_{figure}"] = statistics.median(run[figure] for run in runs[kind])
    record["ratio_bare"] = statistics.median(
        ours["eps"] / theirs["eps"]
        for ours, theirs in zip(runs["riverbed"], runs["bare"], strict=True)
    )
    record["ratio_bare_cpu"] = statistics.median(
        ours["cpu_eps"] / theirs["cpu_eps"]
        for ours, theirs in zip(runs["riverbed"], runs["bare"], strict=True)
    )
    record["targets_met"] = {"ratio_bare": record["ratio_bare"] >= 0.7}
    return record


def print_table(record: dict[str, Any], console: Console) -> None:
    """Events/s and call latencies of both services, and the ratio."""
    if "ratio_bare" not in record:
        console.print("[red]SERVE failed[/red] (see the JSON)")
        return
    table = Table(
        title=f"SERVE: POST /events batches of {record['batch']} over {record['connections']} "
        f"connections; calls from {record['clients']} clients; medians of "
        f"{record['repeats']} run(s)"
    )
    for column in ("service", "events/s", "call p50 ms", "call p99 ms"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for kind, name in (("riverbed", "riverbed serve"), ("bare", "bare FastAPI")):
        table.add_row(
            name,
            f"{record[f'{kind}_eps']:,.0f}",
            f"{record[f'{kind}_p50_ms']:.1f}",
            f"{record[f'{kind}_p99_ms']:.1f}",
        )
    met = "✔" if record["targets_met"]["ratio_bare"] else "✘"
    table.caption = (
        f"ratio riverbed / bare FastAPI: {record['ratio_bare']:.2f} (>= 0.7 {met}); "
        f"per CPU second of the server: {record['ratio_bare_cpu']:.2f}"
    )
    console.print(table)
