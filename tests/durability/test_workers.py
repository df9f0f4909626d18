"""Workers with real processes: a run scheduled into the queue is run by a worker; a worker
killed with SIGKILL mid-run is noticed by its expired lease and another worker finishes the
run from its last checkpoint, with nothing lost or doubled."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

import riverbed as rb
from tests.durability.crash_flow import expected, read_results
from tests.durability.processes import child_env, riverbed

LEASE = "1.5"


def _env(results: Path) -> dict[str, str]:
    return child_env(CRASH_RESULTS=str(results), RIVERBED_LEASE_SECONDS=LEASE)


def _schedule(store_url: str, env: dict[str, str], *options: str) -> str:
    process = riverbed(
        "schedule",
        "tests.durability.crash_flow:scheduled",
        "--store",
        store_url,
        *options,
        env=env,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out.strip()


@pytest.mark.slow
def test_a_killed_workers_run_is_finished_by_another(store_url: str, tmp_path: Path) -> None:
    """kill -9 a worker after its run's first checkpoint; a second worker claims the run
    once the lease expires, resumes it, and the results are exact."""
    results = tmp_path / "results.db"
    env = _env(results)
    run_id = _schedule(store_url, env)
    first = riverbed(
        "worker", "--store", store_url, "--once", "--checkpoint-every", "0.05", env=env
    )
    with rb.open_store(store_url) as store:
        deadline = time.monotonic() + 60
        while store.latest_checkpoint(run_id) is None:
            assert time.monotonic() < deadline, "the first worker made no checkpoint"
            assert first.poll() is None, first.communicate()[1]
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.communicate()
        assert store.get_run(run_id).status is rb.RunStatus.RUNNING  # it does not know yet

        second = riverbed(
            "worker",
            "--store",
            store_url,
            "--max-runs",
            "1",
            "--idle-exit",
            "30",
            "--poll",
            "0.2",
            env=env,
        )
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        record = store.get_run(run_id)
    assert record.status is rb.RunStatus.SUCCEEDED
    assert record.attempt == 2
    assert read_results(str(results)) == expected()


@pytest.mark.slow
def test_each_scheduled_run_is_run_once_by_competing_workers(
    store_url: str, tmp_path: Path
) -> None:
    """Three runs, two workers racing for them: every run succeeds, each on one attempt."""
    results = tmp_path / "results.db"
    env = _env(results)
    runs = [_schedule(store_url, env) for _ in range(3)]
    workers = [
        riverbed("worker", "--store", store_url, "--idle-exit", "1", "--poll", "0.1", env=env)
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
    with rb.open_store(store_url) as store:
        records = [store.get_run(run_id) for run_id in runs]
    assert [r.status for r in records] == [rb.RunStatus.SUCCEEDED] * 3
    assert [r.attempt for r in records] == [1, 1, 1]


def test_a_worker_takes_only_the_runs_of_its_queues(store_url: str, tmp_path: Path) -> None:
    """`riverbed schedule --queue io` puts the run into queue io: a worker started with
    `--queue io` takes it, and leaves the default queue's run alone; a queue name with a
    space is a usage error saying what a name is."""
    env = _env(tmp_path / "results.db")
    plain = _schedule(store_url, env)
    on_io = _schedule(store_url, env, "--queue", "io")
    worker = riverbed(
        "worker",
        "--store",
        store_url,
        "--queue",
        "io",
        "--idle-exit",
        "0",
        "--poll",
        "0.1",
        env=env,
    )
    _, err = worker.communicate(timeout=180)
    assert worker.returncode == 0, err
    with rb.open_store(store_url) as store:
        assert store.get_run(on_io).status is rb.RunStatus.SUCCEEDED
        assert store.get_run(on_io).queue == "io"
        assert store.get_run(plain).status is rb.RunStatus.SCHEDULED
    bad = riverbed("worker", "--store", store_url, "--queue", "two words", env=env)
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2
    assert "--queue: a queue name is a non-empty string without spaces" in err
