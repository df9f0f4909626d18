"""Ctrl-C on a running flow, in a real subprocess: the first SIGINT stops the sources and
drains what is in flight (CANCELLED, with positions); a second stops at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SRC = Path(__file__).resolve().parents[2] / "src"

# argv: sink delay in seconds, source kind ("busy": an event every millisecond; "idle":
# three events, then nothing for a minute).
SCRIPT = """
import asyncio, json, sys
import riverbed as rb

delay, kind = float(sys.argv[1]), sys.argv[2]

async def busy():
    i = 0
    while True:
        yield i
        i += 1
        await asyncio.sleep(0.001)

async def idle():
    for i in range(3):
        yield i
    await asyncio.sleep(60)
    yield 99

written = []

async def slow(x):
    written.append(x)
    if len(written) == (3 if kind == "idle" else 1):
        print("READY", flush=True)
    await asyncio.sleep(delay)

flow = rb.Flow("endless")
flow.source(busy if kind == "busy" else idle, name="ticks").map(abs, name="keep").sink(
    slow, name="out", concurrency=1
)
result = flow.run(progress=False, batch_size=5)
print(result.summary(), flush=True)
print("RESULT " + json.dumps({
    "status": result.status.value,
    "written": len(written),
    "positions": result.positions,
    "read": result.stages["ticks"].events_out,
}), flush=True)
"""


def _start(delay: float, kind: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONWARNINGS": "error"}
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(delay), kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    ready = process.stdout.readline()
    if ready.strip() != "READY":
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"the flow did not start: {ready!r} {err}")
    return process


def _finish(process: subprocess.Popen[str], timeout: float) -> tuple[dict[str, Any], str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"the run did not end within {timeout}s of Ctrl-C")
    assert process.returncode == 0, err
    [line] = [line for line in out.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT ")), out, err


def test_first_sigint_drains_and_ends_cancelled_with_positions() -> None:
    """One SIGINT: the sources stop, every event read is written, the run ends CANCELLED
    and its summary says where the sources stopped."""
    process = _start(0.001, "busy")
    process.send_signal(signal.SIGINT)
    result, out, err = _finish(process, timeout=30)
    assert result["status"] == "cancelled"
    position = result["positions"]["ticks"]["0"]
    assert position >= 1
    assert result["read"] == position  # every event read was counted...
    assert result["written"] == position  # ...and drained into the sink
    assert "CANCELLED" in out
    assert f"stopped with sources at ticks[0]={position}" in out
    assert "stopping" in err
    assert "Traceback" not in err
    assert "Warning" not in err


def test_second_sigint_stops_at_once() -> None:
    """A second SIGINT abandons the drain (a sink that would take minutes) and ends the
    run CANCELLED at once."""
    process = _start(30.0, "busy")
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    # The sink sleeps 30 s per event: ending within 20 s means the drain was cut short.
    result, _, err = _finish(process, timeout=20)
    assert result["status"] == "cancelled"
    assert result["written"] <= result["read"]
    assert "Traceback" not in err
    assert "Warning" not in err


def test_first_sigint_stops_a_source_waiting_for_events() -> None:
    """One SIGINT ends a run whose source is idle, waiting for its next event."""
    process = _start(0.0, "idle")
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    result, _, _ = _finish(process, timeout=4)
    assert result["status"] == "cancelled"
    assert result["written"] == 3
