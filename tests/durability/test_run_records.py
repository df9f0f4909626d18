"""What the store says about a run is always true, whichever way its process ends: the
run id printed is a run the store has; a workflow is recorded before its first step and
recovered by a worker; a failed step's traceback is the user's; a resumed run keeps its
earlier attempts; a run cancelled from outside stops, and its process says so; a run is
never left RUNNING by a process that has stopped; liveness is never decided by a host
name and a pid alone."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import riverbed as rb
from riverbed._runtime.identity import WORKER
from tests.durability.processes import child_env, python, riverbed
from tests.durability.slow_app import calls
from tests.services import require_postgres

S = rb.RunStatus


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return child_env(tmp_path / "calls.db", **extra)


def _first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline()


def _wait_for_call(tmp_path: Path, stage: str, timeout: float = 60) -> None:
    path = tmp_path / "calls.db"
    deadline = time.monotonic() + timeout
    while not (path.exists() and any(s == stage for s, _, _ in calls(str(path)))):
        assert time.monotonic() < deadline, f"{stage} was never called"
        time.sleep(0.05)


@pytest.mark.slow
def test_the_printed_run_id_is_always_in_the_store(store_url: str, tmp_path: Path) -> None:
    """Killed right after printing ``run ID``, five times: each time the store has the
    run (before, `runs resume ID` said "no run" 5 of 5 times), and it resumes to its end."""
    env = _env(tmp_path)
    run_ids = []
    for _ in range(5):
        process = riverbed(
            "run", "tests.durability.slow_app:paced_stream", "--store", store_url, env=env
        )
        line = _first_line(process)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert line.startswith("run "), line
        run_ids.append(line.split()[1])
    with rb.open_store(store_url) as store:
        assert [store.get_run(run_id).status for run_id in run_ids] == [S.RUNNING] * 5
    resumed = riverbed("runs", "resume", run_ids[-1], "--store", store_url, env=env)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out + err


@pytest.mark.slow
def test_a_workflow_killed_in_its_first_step_is_resumed(store_url: str, tmp_path: Path) -> None:
    """The run is recorded (with its input) before step 1: killed during step 1, it is
    resumed by id and finishes, its first step called again, the last once."""
    env = _env(tmp_path, SLOW_BUSY_SECONDS="30")
    process = riverbed(
        "run",
        "tests.durability.slow_app:slow_workflow",
        "--store",
        store_url,
        "--input",
        '{"id": 4}',
        env=env,
    )
    run_id = _first_line(process).split()[1]
    _wait_for_call(tmp_path, "slow_step")
    process.send_signal(signal.SIGKILL)
    process.communicate()
    env["SLOW_BUSY_SECONDS"] = "0"
    resumed = riverbed("runs", "resume", run_id, "--store", store_url, env=env)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out + err
    with rb.open_store(store_url) as store:
        record = store.get_run(run_id)
    assert (record.status, record.attempt) == (S.SUCCEEDED, 2)
    assert record.input_repr == "{'id': 4}"
    assert Counter(stage for stage, _, _ in calls(env["SLOW_CALLS"])) == {
        "slow_step": 2,
        "last_step": 1,
    }


_FROM_PYTHON = """
import sys
import riverbed as rb
from tests.durability.slow_app import slow_workflow
rb.run(slow_workflow, {"id": 9}, store=sys.argv[1], run_id=sys.argv[2])
"""


@pytest.mark.slow
def test_a_workflow_started_from_python_is_recovered_by_a_worker(
    store_url: str, tmp_path: Path
) -> None:
    """``rb.run(flow, input)`` from Python records the flow's TARGET by itself (the flow is
    a module's attribute), so a worker recovers the run once its process died and its
    lease expired (before, such runs were recovered only if someone resumed them by id)."""
    env = _env(tmp_path, SLOW_BUSY_SECONDS="30", RIVERBED_LEASE_SECONDS="1.5")
    process = python("-c", _FROM_PYTHON, store_url, "from-python-1", env=env)
    _wait_for_call(tmp_path, "slow_step")
    process.send_signal(signal.SIGKILL)
    process.communicate()
    with rb.open_store(store_url) as store:
        assert store.get_run("from-python-1").target == "tests.durability.slow_app:slow_workflow"
    time.sleep(1.6)
    env["SLOW_BUSY_SECONDS"] = "0"
    worker = riverbed("worker", "--store", store_url, "--once", env=env)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, out + err
    with rb.open_store(store_url) as store:
        record = store.get_run("from-python-1")
        history = [t.status for t in store.history("from-python-1")]
    assert (record.status, record.attempt) == (S.SUCCEEDED, 2)
    assert history == [S.RUNNING, S.CRASHED, S.RUNNING, S.SUCCEEDED]


def failing(x: int) -> int:
    raise ValueError(f"cannot take {x}")


def test_a_failed_steps_traceback_is_the_users(store: rb.Store) -> None:
    """The stored traceback of a failed step starts at the user's function: no error of
    riverbed's own as its context (before: "RuntimeError: no running event loop ...
    During handling of the above exception"), none of the executor's frames."""
    flow = rb.Flow("traced")
    flow.input().map(failing).output()
    result = rb.run(flow, 3, store=store)
    record = store.get_run(result.run_id)
    assert record.error is not None
    text = record.error.traceback
    assert "no running event loop" not in text
    assert "During handling" not in text
    assert "executor.py" not in text
    frames = [line for line in text.splitlines() if line.lstrip().startswith("File ")]
    assert frames
    assert "test_run_records.py" in frames[0]
    assert "in failing" in frames[0]
    assert text.rstrip().endswith("ValueError: cannot take 3")


BROKEN = {"on": True}


def picky(x: int) -> int:
    if BROKEN["on"]:
        raise ValueError("broken today")
    return x * 2


def test_a_resumed_run_keeps_its_earlier_attempts(store: rb.Store) -> None:
    """Attempt 1 fails at step 2; attempt 2 (resumed after a fix) succeeds. The history
    keeps attempt 1's failure with its error, and attempt 1's stage records stay."""
    flow = rb.Flow("attempts")
    flow.input().map(abs, name="first").map(picky, name="second").output()
    BROKEN["on"] = True
    failed = rb.run(flow, -4, store=store)
    assert failed.status is S.FAILED
    BROKEN["on"] = False
    resumed = rb.run(flow, store=store, resume=failed.run_id)
    assert (resumed.status, resumed.output) == (S.SUCCEEDED, 8)
    history = store.history(failed.run_id)
    assert [(t.status, t.attempt) for t in history] == [
        (S.RUNNING, 1),
        (S.FAILED, 1),
        (S.RUNNING, 2),
        (S.SUCCEEDED, 2),
    ]
    assert history[1].error is not None
    assert history[1].error.message == "broken today"
    first = {s.stage: s.status for s in store.stage_runs(failed.run_id, attempt=1)}
    assert first == {"first": rb.StageStatus.SUCCEEDED, "second": rb.StageStatus.FAILED}
    second = {s.stage: s.status for s in store.stage_runs(failed.run_id, attempt=2)}
    assert second == {"second": rb.StageStatus.SUCCEEDED}
    assert store.get_run(failed.run_id).error is None  # the run's error is its last attempt's


@pytest.mark.slow
def test_a_workflow_cancelled_from_outside_stops_between_steps(
    store_url: str, tmp_path: Path
) -> None:
    """`riverbed runs cancel` while step 1 runs: the run stops at the next step boundary
    (step 2 is never called), the process exits 130, and the store says CANCELLED."""
    env = _env(tmp_path, SLOW_BUSY_SECONDS="4", RIVERBED_LEASE_SECONDS="1.5")
    process = riverbed(
        "run",
        "tests.durability.slow_app:slow_workflow",
        "--store",
        store_url,
        "--input",
        '{"id": 2}',
        env=env,
    )
    run_id = _first_line(process).split()[1]
    _wait_for_call(tmp_path, "slow_step")
    cancel = riverbed("runs", "cancel", run_id, "--store", store_url, env=env)
    cancel_out, cancel_err = cancel.communicate(timeout=60)
    assert cancel.returncode == 0, cancel_out + cancel_err
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    with rb.open_store(store_url) as store:
        assert store.get_run(run_id).status is S.CANCELLED
        assert store.steps(run_id) == []
    assert [stage for stage, _, _ in calls(env["SLOW_CALLS"])] == ["slow_step"]


class _CancelAtLast(rb.RunObserver):
    """Cancels the run from outside (as `riverbed runs cancel` does) at its last event."""

    def __init__(self, store: rb.Store) -> None:
        self.store = store
        self.run_id = ""

    def started(self, run: rb.RunRecord) -> None:
        self.run_id = run.run_id

    def sink(self, x: int) -> None:
        if x == 9:
            self.store.transition(self.run_id, S.CANCELLED, ended_at=datetime.now(UTC))


def test_a_stream_cancelled_just_before_its_end_says_cancelled(store: rb.Store) -> None:
    """Cancelled after its last event but before its end was recorded: the result says
    CANCELLED, as the store does (before: SUCCEEDED in the process, CANCELLED in the
    store)."""
    cancel = _CancelAtLast(store)
    flow = rb.Flow("cancelled-late")
    flow.source(list(range(10)), name="numbers").sink(cancel.sink, name="out")
    result = flow.run(store=store, observers=[cancel], progress=False)
    assert result.status is S.CANCELLED
    assert store.get_run(result.run_id).status is S.CANCELLED


def test_a_sink_failing_at_its_first_commit_fails_the_run(store: rb.Store) -> None:
    """A transactional sink naming a missing table, with checkpoints on: the run FAILS at
    that sink with one clear error, and the store says FAILED (before: a 139-line
    traceback, and the run left RUNNING after the process exited)."""
    from riverbed.connectors import PostgresTable

    url = require_postgres()
    flow = rb.Flow("missing-table")
    flow.source(list(range(5)), name="numbers").map(lambda x: (x,), name="row").sink(
        PostgresTable(url, "no_such_table_anywhere", ["n"]), name="rows"
    )
    result = flow.run(store=store, checkpoint_interval=0.05, raise_on_failure=False, progress=False)
    assert result.status is S.FAILED
    assert result.error is not None
    assert result.error.stage == "rows"
    assert "no_such_table_anywhere" in result.error.message
    record = store.get_run(result.run_id)
    assert record.status is S.FAILED
    assert record.lease_until is None


def _running(store: rb.Store, run_id: str, worker: str) -> None:
    now = datetime.now(UTC)
    store.create_run(
        rb.RunRecord(
            run_id=run_id,
            flow="chain",
            flow_version="v",
            status=S.RUNNING,
            input=b"\x80\x04K\x01.",
            created_at=now,
            worker=worker,
            lease_until=now + timedelta(minutes=5),
        )
    )


def _chain() -> rb.Flow:
    flow = rb.Flow("chain")
    flow.input().map(abs).output()
    return flow


def test_a_host_name_and_a_free_pid_do_not_make_a_run_dead(store: rb.Store) -> None:
    """A RUNNING run under a live lease whose worker has this machine's host name and a
    pid that is free here may run on a clone of this machine (same host name): it is not
    resumed (before, it was declared CRASHED and run twice)."""
    host = WORKER.split(":")[0]
    for run_id, worker in [("clone-1", f"{host}:999999"), ("clone-2", f"{host}:999999:abcdef")]:
        _running(store, run_id, worker)
        with pytest.raises(rb.RunNotResumableError, match="is running in"):
            rb.run(_chain(), store=store, resume=run_id)
        assert store.get_run(run_id).status is S.RUNNING


def test_a_process_of_this_machine_that_ended_is_known_dead(store: rb.Store) -> None:
    """A run whose process ran here and has ended is resumed at once, lease or not."""
    gone = subprocess.run(
        [sys.executable, "-c", "from riverbed._runtime.identity import WORKER; print(WORKER)"],
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _running(store, "ended-1", gone)
    result = rb.run(_chain(), store=store, resume="ended-1")
    assert (result.status, result.output) == (S.SUCCEEDED, 1)
    assert [t.status for t in store.history("ended-1")] == [
        S.RUNNING,
        S.CRASHED,
        S.RUNNING,
        S.SUCCEEDED,
    ]
