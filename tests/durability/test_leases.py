"""Leases under the faults of real deployments, with real worker processes on every
backend: a step longer than the lease keeps it (renewed from a thread), so a second
worker never runs it too; SIGTERM and Ctrl-C put a worker's run back into the queue,
resumable from where it stopped; a run cancelled from outside stops, and its process and
the store agree."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import riverbed as rb
from tests.durability.processes import child_env, riverbed
from tests.durability.slow_app import PACED_TOTALS, calls

S = rb.RunStatus


def _env(tmp_path: Path, lease: float = 3.0) -> dict[str, str]:
    return child_env(tmp_path / "calls.db", RIVERBED_LEASE_SECONDS=str(lease))


def _schedule(store_url: str, target: str, env: dict[str, str], *extra: str) -> str:
    process = riverbed("schedule", target, "--store", store_url, *extra, env=env)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out.strip()


def _workers(store_url: str, env: dict[str, str], count: int = 2) -> list[subprocess.Popen[str]]:
    return [
        riverbed("worker", "--store", store_url, "--idle-exit", "4", "--poll", "0.2", env=env)
        for _ in range(count)
    ]


def _wait(workers: list[subprocess.Popen[str]]) -> list[str]:
    errors = []
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        errors.append(err)
    return errors


@pytest.mark.slow
def test_a_workflow_step_longer_than_the_lease_runs_once(store_url: str, tmp_path: Path) -> None:
    """A 5 s synchronous step under a 3 s lease, two workers: the lease is renewed while
    the step keeps the event loop busy, so every step runs once and the run SUCCEEDS on
    its first attempt (before, a second worker took it over: the step ran twice, the run
    FAILED, and the first worker crashed on an illegal transition)."""
    env = _env(tmp_path)
    run_id = _schedule(
        store_url, "tests.durability.slow_app:slow_workflow", env, "--input", '{"id": 1}'
    )
    _wait(_workers(store_url, env))
    with rb.open_store(store_url) as store:
        record = store.get_run(run_id)
        history = [(t.status, t.attempt) for t in store.history(run_id)]
    assert (record.status, record.attempt) == (S.SUCCEEDED, 1), history
    assert Counter(stage for stage, _, _ in calls(str(tmp_path / "calls.db"))) == {
        "slow_step": 1,
        "last_step": 1,
    }
    assert history == [(S.SCHEDULED, 1), (S.RUNNING, 1), (S.SUCCEEDED, 1)]


@pytest.mark.slow
def test_a_stream_stage_longer_than_the_lease_runs_once(store_url: str, tmp_path: Path) -> None:
    """The same for a stream run: one worker runs it, each event once, SUCCEEDED (before,
    two workers processed it at once and it ended CANCELLED, stranded)."""
    env = _env(tmp_path)
    run_id = _schedule(store_url, "tests.durability.slow_app:slow_stream", env)
    _wait(_workers(store_url, env))
    with rb.open_store(store_url) as store:
        record = store.get_run(run_id)
    assert (record.status, record.attempt) == (S.SUCCEEDED, 1)
    seen = calls(str(tmp_path / "calls.db"))
    assert len({pid for _, _, pid in seen}) == 1
    assert Counter((stage, event) for stage, event, _ in seen) == {
        (stage, str(x)): 1 for stage in ("slow_map", "sink") for x in range(3)
    }


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_worker_puts_its_run_back(
    store_url: str, tmp_path: Path, stop: signal.Signals
) -> None:
    """SIGTERM or Ctrl-C: the worker stops its run after a last checkpoint, puts it back
    into the queue (SCHEDULED) and exits 0 instead of polling on; a second worker resumes
    it from there, and the totals are exact."""
    env = _env(tmp_path, lease=30)
    run_id = _schedule(store_url, "tests.durability.slow_app:paced_stream", env)
    first = riverbed("worker", "--store", store_url, "--poll", "0.2", env=env)
    with rb.open_store(store_url) as store:
        deadline = time.monotonic() + 60
        while store.get_run(run_id).status is not S.RUNNING:
            assert time.monotonic() < deadline, "the worker did not take the run"
            time.sleep(0.05)
        time.sleep(1.0)  # mid-way: the source is paced over about 4 s
        first.send_signal(stop)
        _, err = first.communicate(timeout=30)
        assert first.returncode == 0, err
        released = store.get_run(run_id)
        assert (released.status, released.worker) == (S.SCHEDULED, None), err
        assert store.latest_checkpoint(run_id) is not None
        _wait([riverbed("worker", "--store", store_url, "--once", env=env)])
        record = store.get_run(run_id)
        history = [t.status for t in store.history(run_id)]
    assert (record.status, record.attempt) == (S.SUCCEEDED, 2)
    assert history == [S.SCHEDULED, S.RUNNING, S.SCHEDULED, S.RUNNING, S.SUCCEEDED]
    totals = [event for stage, event, _ in calls(str(tmp_path / "calls.db")) if stage == "remember"]
    assert sorted(totals) == sorted(repr((key, total)) for key, total in PACED_TOTALS.items())


@pytest.mark.slow
def test_a_stopped_worker_puts_its_workflow_back_between_steps(
    store_url: str, tmp_path: Path
) -> None:
    """SIGTERM during a workflow step: the step finishes and is recorded, the run goes
    back into the queue, and the next worker goes on from the next step."""
    env = _env(tmp_path, lease=30) | {"SLOW_BUSY_SECONDS": "2"}
    run_id = _schedule(
        store_url, "tests.durability.slow_app:slow_workflow", env, "--input", '{"id": 7}'
    )
    first = riverbed("worker", "--store", store_url, "--poll", "0.2", env=env)
    with rb.open_store(store_url) as store:
        deadline = time.monotonic() + 60
        while not Path(env["SLOW_CALLS"]).exists():
            assert time.monotonic() < deadline, "the worker did not start the step"
            time.sleep(0.05)
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
        assert first.returncode == 0, err
        assert store.get_run(run_id).status is S.SCHEDULED, err
        assert [step.stage for step in store.steps(run_id)] == ["slow_step"]
        _wait([riverbed("worker", "--store", store_url, "--once", env=env)])
        record = store.get_run(run_id)
    assert (record.status, record.attempt) == (S.SUCCEEDED, 2)
    assert Counter(stage for stage, _, _ in calls(env["SLOW_CALLS"])) == {
        "slow_step": 1,
        "last_step": 1,
    }
