"""The store's database going away under a run, on a PostgreSQL cluster of the test's
own (never the shared server): a one-second restart mid-run costs a retry, not the run
(stream and workflow: nothing lost, nothing run twice); a database that stays away fails
the run after the retry time with exit code 1 and a message naming the store, leaving the
run resumable."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import riverbed as rb
from tests.durability.processes import child_env, riverbed
from tests.durability.restart_app import EVENTS, KEYS
from tests.durability.slow_app import calls
from tests.pgcluster import Cluster, own_cluster

S = rb.RunStatus


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test's own."""
    with own_cluster() as started:
        yield started


def _env(tmp_path: Path, cluster: Cluster, **extra: str) -> dict[str, str]:
    return child_env(tmp_path / "calls.db", RESTART_ROWS=f"{cluster.url}#rows", **extra)


def _started(process: subprocess.Popen[str]) -> str:
    """The run id the process printed first (once its run is in the store)."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("run "), line + (process.stderr.read() if process.stderr else "")
    return line.split()[1]


def _rows(cluster: Cluster) -> Counter[tuple[int, int]]:
    with psycopg.connect(cluster.url) as conn:
        return Counter(conn.execute("SELECT key, n FROM rows").fetchall())


@pytest.mark.slow
def test_a_stream_rides_out_a_database_restart(cluster: Cluster, tmp_path: Path) -> None:
    """A checkpointed stream writing exactly-once rows, with the store in the same
    database: restarted for a second mid-run, the run still SUCCEEDS in its first attempt
    and every (key, count) row is there exactly once (before, the run died at once and
    exited 2)."""
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE rows (key INT, n INT)")
    env = _env(tmp_path, cluster)
    process = riverbed(
        "run",
        "tests.durability.restart_app:stream",
        "--store",
        cluster.url,
        "--checkpoint-every",
        "0.3",
        env=env,
    )
    run_id = _started(process)
    time.sleep(2.0)
    cluster.restart(down=1.0)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    with rb.open_store(cluster.url) as store:
        record = store.get_run(run_id)
    assert (record.status, record.attempt) == (S.SUCCEEDED, 1)
    expected = Counter((key, n) for key in range(KEYS) for n in range(1, EVENTS // KEYS + 1))
    assert _rows(cluster) == expected


@pytest.mark.slow
def test_a_workflow_rides_out_a_database_restart(cluster: Cluster, tmp_path: Path) -> None:
    """A workflow whose store restarts during its second step: it SUCCEEDS, each step
    called once."""
    env = _env(tmp_path, cluster)
    process = riverbed(
        "run",
        "tests.durability.restart_app:workflow",
        "--store",
        cluster.url,
        "--input",
        '{"id": 3}',
        env=env,
    )
    run_id = _started(process)
    deadline = time.monotonic() + 60
    while not any(stage == "second" for stage, _, _ in _calls(tmp_path)):
        assert time.monotonic() < deadline, "the second step never started"
        time.sleep(0.05)
    cluster.restart(down=1.0)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    with rb.open_store(cluster.url) as store:
        record = store.get_run(run_id)
    assert (record.status, record.attempt) == (S.SUCCEEDED, 1)
    assert Counter(stage for stage, _, _ in _calls(tmp_path)) == {
        "first": 1,
        "second": 1,
        "third": 1,
    }


def _calls(tmp_path: Path) -> list[tuple[str, str, int]]:
    path = tmp_path / "calls.db"
    return calls(str(path)) if path.exists() else []


@pytest.mark.slow
def test_a_database_that_stays_away_fails_clearly_then_resumes(
    cluster: Cluster, tmp_path: Path
) -> None:
    """With the database down past the retry time, the run exits 1 with one line naming
    the store (not 2, "wrong command"); once the database is back, the run is resumed to
    its end, each step once."""
    env = _env(tmp_path, cluster, RIVERBED_STORE_RETRY_SECONDS="3", RIVERBED_LEASE_SECONDS="3")
    process = riverbed(
        "run",
        "tests.durability.restart_app:workflow",
        "--store",
        cluster.url,
        "--input",
        '{"id": 5}',
        env=env,
    )
    run_id = _started(process)
    deadline = time.monotonic() + 60
    while not any(stage == "second" for stage, _, _ in _calls(tmp_path)):
        assert time.monotonic() < deadline, "the second step never started"
        time.sleep(0.05)
    cluster.stop()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: "), err
    assert "stayed unreachable" in last, err
    assert cluster.url.split("@")[1] in last
    cluster.start()
    time.sleep(3.5)  # the dead run's lease expires
    again = riverbed("runs", "resume", run_id, "--store", cluster.url, env=env)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, out + err
    with rb.open_store(cluster.url) as store:
        record = store.get_run(run_id)
    assert (record.status, record.attempt) == (S.SUCCEEDED, 2)
    assert Counter(stage for stage, _, _ in _calls(tmp_path)) == {
        "first": 1,
        "second": 2,  # the step running when the store went away runs again
        "third": 1,
    }
