"""Module-level steps for workflow tests: importable by subprocesses, and counting their
calls in a file named by RIVERBED_TEST_CALLS (one line per call), so that a count survives
a process killed with SIGKILL."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import riverbed as rb


def _note(name: str) -> None:
    path = os.environ.get("RIVERBED_TEST_CALLS")
    if path:
        with Path(path).open("a") as calls:
            calls.write(name + "\n")
            calls.flush()
            os.fsync(calls.fileno())


def reserve(order: dict[str, int]) -> dict[str, int]:
    """Step 1."""
    _note("reserve")
    return {**order, "reserved": 1}


def charge(order: dict[str, int]) -> dict[str, int]:
    """Step 2: kills its own process when RIVERBED_TEST_CRASH is set."""
    _note("charge")
    if os.environ.get("RIVERBED_TEST_CRASH"):
        os.kill(os.getpid(), signal.SIGKILL)
    return {**order, "charged": order["amount"]}


def ship(order: dict[str, int]) -> dict[str, int]:
    """Step 3."""
    _note("ship")
    return {**order, "shipped": 1}


def order_flow() -> rb.Flow:
    """reserve -> charge -> ship."""
    flow = rb.Flow("crashing-order")
    flow.input().map(reserve).map(charge).map(ship).output()
    return flow


def calls(path: Path) -> list[str]:
    """The calls noted in ``path``, in order."""
    return path.read_text().split() if path.exists() else []


if __name__ == "__main__":  # python -m tests.workflow.steps STORE_URL RUN_ID
    import sys

    rb.run(order_flow(), {"amount": 5}, store=sys.argv[1], run_id=sys.argv[2])
