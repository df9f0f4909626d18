"""Workflows whose steps run on named queues, for tests/workflow/test_queued_steps.py:
importable by the worker processes that take their step runs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import riverbed as rb


def prepare(job: dict[str, Any]) -> dict[str, Any]:
    """Runs in the workflow's own run."""
    return {**job, "prepared_by": os.getpid()}


def render(job: dict[str, Any]) -> dict[str, Any]:
    """Runs on the "gpu" queue; fails while ``job["fail_while"]`` names a file that
    exists (so that a test decides when it is fixed), and lasts while
    ``job["hold_while"]`` does."""
    flag = job.get("fail_while")
    if flag and Path(flag).exists():
        raise ValueError(f"no GPU memory for {job['name']}")
    hold = job.get("hold_while")
    deadline = time.monotonic() + 30
    while hold and Path(hold).exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # a long render, until the test lets it end
    return {**job, "rendered_by": os.getpid()}


render_job = rb.Flow("render-job")
render_job.input().map(prepare).map(render, queue="gpu").output()
