"""The driver of a run on Ray killed with SIGKILL: ``riverbed runs resume RUN --runner ray``
finishes the run from its last checkpoint (both drivers join the suite's Ray instance)."""

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

import riverbed as rb
from tests.ray.flows import KEYS

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 400_000


@pytest.mark.slow
def test_a_driver_killed_is_resumed_by_the_cli_on_ray(tmp_path: Path, ray_instance: Any) -> None:
    address = ray_instance.get_runtime_context().gcs_address
    store_url = f"sqlite:///{tmp_path}/runs.db"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}",
        "RAY_TEST_EVENTS": str(EVENTS),
        "RIVERBED_RUNNER": "local",
    }
    ray_options = ["--runner", "ray", "--address", address, "--parallelism", "2"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "riverbed", "run", "tests.ray.flows:counting", "--store",
         store_url, "--checkpoint-interval", "0.5", "--no-progress", *ray_options],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        run_id = _run_id(driver)
        _wait_for_checkpoint(store_url, run_id)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.communicate(timeout=30)  # reaped, its pipes closed
    with rb.open_store(store_url) as store:
        assert store.get_run(run_id).status is rb.RunStatus.RUNNING  # as the driver left it
    done = subprocess.run(
        [sys.executable, "-m", "riverbed", "runs", "resume", run_id, "--store", store_url,
         "--json", *ray_options],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    stages = result["stages"]
    assert stages["numbers"]["events_out"] == EVENTS
    assert stages["total"]["events_in"] == EVENTS  # each event counted once over both drivers
    assert stages["total"]["events_out"] == KEYS
    with rb.open_store(store_url) as store:
        assert store.get_run(run_id).runner == f"ray:{address}"


def _run_id(driver: subprocess.Popen[str]) -> str:
    """The id the driver prints once the run is recorded."""
    assert driver.stdout is not None
    line = driver.stdout.readline()
    assert line.startswith("run "), line + (driver.stderr.read() if driver.stderr else "")
    return line.split()[1]


def _wait_for_checkpoint(store_url: str, run_id: str) -> None:
    deadline = time.monotonic() + 120
    with rb.open_store(store_url) as store:
        while store.latest_checkpoint(run_id) is None:
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.1)
