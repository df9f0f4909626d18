"""``riverbed runs``, ``dead-letters``, ``schedule``: stored runs from a shell, with their
exit codes and JSON."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import riverbed as rb
from riverbed.cli import app, exit_code
from tests import cli_runs_app

runner = CliRunner()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """An empty SQLite store for the test."""
    return f"sqlite:///{tmp_path}/runs.db"


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def _run(store_url: str, target: str, *extra: str) -> tuple[Any, str]:
    result = invoke("run", target, "--store", store_url, "--no-progress", *extra)
    first = result.stdout.splitlines()[0]
    assert first.startswith("run ")
    return result, first.removeprefix("run ")


def test_runs_list_and_show(store_url: str) -> None:
    """A run started by `riverbed run` is listed, and shown with per-stage counters."""
    result, run_id = _run(store_url, "tests.cli_runs_app:counting")
    assert result.exit_code == 0
    listed = invoke("runs", "list", "--store", store_url, "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [(r["run_id"], r["status"], r["target"]) for r in rows] == [
        (run_id, "succeeded", "tests.cli_runs_app:counting")
    ]
    shown = invoke("runs", "show", run_id[:8], "--store", store_url, "--json")
    data = json.loads(shown.stdout)
    stages = {s["stage"]: s for s in data["stages"]}
    assert stages["numbers"]["events_out"] == 10
    assert stages["keep"]["events_in"] == 10
    text = invoke("runs", "show", run_id, "--store", store_url)
    assert "SUCCEEDED" in text.stdout
    assert "keep" in text.stdout


def test_unknown_run_exits_4(store_url: str) -> None:
    """A run id that matches nothing exits 4 and says so."""
    result = invoke("runs", "show", "nosuchrun", "--store", store_url)
    assert result.exit_code == 4
    assert "nosuchrun" in result.stderr


def test_bad_status_filter_is_a_usage_error(store_url: str) -> None:
    """`runs list --status` takes a run status name."""
    result = invoke("runs", "list", "--status", "done", "--store", store_url)
    assert result.exit_code == 2
    assert "succeeded" in result.stderr


def test_failed_run_resumes_after_the_fix(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed run resumed from its checkpoint after the 'fix' succeeds, same run id."""
    monkeypatch.setattr(cli_runs_app, "BROKEN", True)
    failed, run_id = _run(
        store_url, "tests.cli_runs_app:fragile_flow", "--checkpoint-interval", "0.001"
    )
    assert failed.exit_code == 1
    monkeypatch.setattr(cli_runs_app, "BROKEN", False)
    resumed = invoke("runs", "resume", run_id, "--store", store_url)
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout.splitlines()[0] == f"run {run_id}"
    shown = json.loads(invoke("runs", "show", run_id, "--store", store_url, "--json").stdout)
    assert (shown["status"], shown["attempt"]) == ("succeeded", 2)


def test_rerun_is_a_new_run(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`runs rerun` starts a new run recorded as a re-run of the old one."""
    monkeypatch.setattr(cli_runs_app, "BROKEN", True)
    _, old = _run(store_url, "tests.cli_runs_app:fragile_flow")
    monkeypatch.setattr(cli_runs_app, "BROKEN", False)
    rerun = invoke("runs", "rerun", old, "--store", store_url)
    assert rerun.exit_code == 0, rerun.output
    new = rerun.stdout.split()[1]
    assert new != old
    shown = json.loads(invoke("runs", "show", new, "--store", store_url, "--json").stdout)
    assert (shown["status"], shown["rerun_of"]) == ("succeeded", old)
    assert (
        json.loads(invoke("runs", "show", old, "--store", store_url, "--json").stdout)["status"]
        == "failed"
    )


def test_resume_after_a_rename_takes_the_mapping(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runs resume --compatible` after a stateful stage was renamed is refused, naming
    it; with `--rename OLD=NEW` its state goes on under the new name."""
    monkeypatch.setattr(cli_runs_app, "BROKEN", True)
    monkeypatch.setattr(cli_runs_app, "TALLIES", [])
    failed = cli_runs_app.tallies.run(
        store=store_url,
        batch_size=2,
        checkpoint_events=2,
        progress=False,
        raise_on_failure=False,
    )
    assert failed.status is rb.RunStatus.FAILED
    monkeypatch.setattr(cli_runs_app, "BROKEN", False)
    resume = ("runs", "resume", failed.run_id, "tests.cli_runs_app:renamed_tallies")
    refused = invoke(*resume, "--store", store_url, "--compatible")
    assert refused.exit_code == 1
    assert "'tally'" in refused.stderr
    assert "--rename tally=" in refused.stderr
    wrong = invoke(*resume, "--store", store_url, "--compatible", "--rename", "tally")
    assert wrong.exit_code == 2
    resumed = invoke(*resume, "--store", store_url, "--compatible", "--rename", "tally=count")
    assert resumed.exit_code == 0, resumed.output
    assert sorted(cli_runs_app.TALLIES) == [(0, 5), (1, 5)]


def test_resuming_a_succeeded_run_exits_1(store_url: str) -> None:
    """Resuming a run that succeeded is refused with exit 1."""
    _, run_id = _run(store_url, "tests.cli_runs_app:counting")
    result = invoke("runs", "resume", run_id, "--store", store_url)
    assert result.exit_code == 1
    assert "already succeeded" in result.stderr


def test_schedule_then_cancel(store_url: str) -> None:
    """A scheduled run waits in the queue; cancelling it records CANCELLED; cancelling it
    again is refused."""
    scheduled = invoke(
        "schedule", "tests.cli_runs_app:counting", "--store", store_url, "-p", "day=3"
    )
    assert scheduled.exit_code == 0
    run_id = scheduled.stdout.strip()
    with rb.open_store(store_url) as store:
        record = store.get_run(run_id)
        assert (record.status, record.params) == (rb.RunStatus.SCHEDULED, {"day": 3})
    assert invoke("runs", "cancel", run_id, "--store", store_url).exit_code == 0
    again = invoke("runs", "cancel", run_id, "--store", store_url)
    assert again.exit_code == 1
    assert "cancelled" in again.stderr


def test_worker_once_runs_a_scheduled_run(store_url: str) -> None:
    """`riverbed worker --once` claims the scheduled run and runs it to SUCCEEDED."""
    run_id = invoke("schedule", "tests.cli_runs_app:counting", "--store", store_url).stdout.strip()
    worked = invoke("worker", "--store", store_url, "--once")
    assert worked.exit_code == 0, worked.output
    with rb.open_store(store_url) as store:
        assert store.get_run(run_id).status is rb.RunStatus.SUCCEEDED


def test_dead_letters_list_and_replay(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dead letters are listed; replayed after the fix, they reach the sink and are marked."""
    _, run_id = _run(store_url, "tests.cli_runs_app:lettered")
    listed = json.loads(invoke("dead-letters", "list", "--store", store_url, "--json").stdout)
    assert sorted(row["event"] for row in listed) == ["3", "7"]
    assert {row["stage"] for row in listed} == {"picky"}
    monkeypatch.setattr(cli_runs_app, "PICKY", False)
    cli_runs_app.SEEN.clear()
    replayed = invoke("dead-letters", "replay", "--store", store_url, "--run", run_id)
    assert replayed.exit_code == 0, replayed.output
    assert sorted(cli_runs_app.SEEN) == [6, 14]
    pending = json.loads(invoke("dead-letters", "list", "--store", store_url, "--json").stdout)
    assert pending == []
    done = json.loads(
        invoke("dead-letters", "list", "--replayed", "--store", store_url, "--json").stdout
    )
    assert len(done) == 2
    assert all(row["replayed_by"] for row in done)


def test_dead_letters_discard(store_url: str) -> None:
    """`dead-letters discard ID` deletes a pending letter; an id that names none fails."""
    _run(store_url, "tests.cli_runs_app:lettered")
    listed = json.loads(invoke("dead-letters", "list", "--store", store_url, "--json").stdout)
    first = str(listed[0]["id"])
    discarded = invoke("dead-letters", "discard", first, "--store", store_url)
    assert discarded.exit_code == 0, discarded.output
    assert "discarded 1 dead letter(s)" in discarded.stdout
    pending = json.loads(invoke("dead-letters", "list", "--store", store_url, "--json").stdout)
    assert [row["id"] for row in pending] == [listed[1]["id"]]
    again = invoke("dead-letters", "discard", first, "--store", store_url)
    assert again.exit_code == 1
    assert "name no pending dead letter" in again.stderr


def test_resume_and_cancel_print_json(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`runs resume --json` prints the run result; `runs cancel --json` the record."""
    monkeypatch.setattr(cli_runs_app, "BROKEN", True)
    _, run_id = _run(store_url, "tests.cli_runs_app:fragile_flow")
    monkeypatch.setattr(cli_runs_app, "BROKEN", False)
    resumed = invoke("runs", "resume", run_id, "--store", store_url, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    queued = invoke("schedule", "tests.cli_runs_app:counting", "--store", store_url, "--json")
    record = json.loads(queued.stdout)
    assert record["status"] == "scheduled"
    cancelled = invoke("runs", "cancel", record["run_id"], "--store", store_url, "--json")
    assert json.loads(cancelled.stdout)["status"] == "cancelled"


def test_run_with_input_runs_a_workflow(store_url: str) -> None:
    """`riverbed run TARGET --input JSON` runs a workflow: the run id first, then its
    output as JSON; the run and its one step are recorded."""
    result, run_id = _run(store_url, "tests.cli_runs_app:workflow", "--input", '{"net": 10}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[1]) == {"net": 10, "total": 12.0}
    with rb.open_store(store_url) as store:
        assert store.get_run(run_id).status is rb.RunStatus.SUCCEEDED
        assert [step.stage for step in store.steps(run_id)] == ["add_tax"]


def test_run_with_bad_input_json_is_a_usage_error(store_url: str) -> None:
    """--input must be JSON."""
    result = invoke("run", "tests.cli_runs_app:workflow", "--store", store_url, "--input", "{")
    assert result.exit_code == 2
    assert "not JSON" in result.stderr


def test_worker_runs_a_scheduled_workflow(store_url: str) -> None:
    """A workflow scheduled with --input is run by a worker; its output is recorded."""
    run_id = invoke(
        "schedule", "tests.cli_runs_app:workflow", "--store", store_url, "--input", '{"net": 5}'
    ).stdout.strip()
    worked = invoke("worker", "--store", store_url, "--once")
    assert worked.exit_code == 0, worked.output
    with rb.open_store(store_url) as store:
        record = store.get_run(run_id)
        assert record.status is rb.RunStatus.SUCCEEDED
        assert record.output is not None
        assert pickle.loads(record.output) == [{"net": 5, "total": 6.0}]


def test_failed_workflow_resumes_from_the_cli(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runs resume` of a failed workflow (its target recorded by `riverbed run`) replays
    its recorded step and runs the rest; `runs rerun` makes a new run recording both."""
    monkeypatch.setattr(cli_runs_app, "BROKEN", True)
    failed, run_id = _run(
        store_url, "tests.cli_runs_app:fragile_workflow", "--input", '{"net": 10}'
    )
    assert failed.exit_code == 1
    monkeypatch.setattr(cli_runs_app, "BROKEN", False)
    resumed = invoke(
        "runs",
        "resume",
        run_id,
        "tests.cli_runs_app:fragile_workflow",
        "--store",
        store_url,
        "--json",
    )
    assert resumed.exit_code == 0, resumed.output
    report = json.loads(resumed.stdout)
    assert (report["status"], report["replayed"]) == ("succeeded", ["add_tax"])


def test_stored_workflows_run_again_through_the_one_path(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runs resume` and `runs rerun` run a workflow as they run a stream (``rb.run``):
    a checkpoint interval is taken (every step is committed), a re-run from the start goes
    on the recorded input, and a stream-only option (--rename) is one line, exit 2."""
    monkeypatch.setattr(cli_runs_app, "BROKEN", True)
    target = "tests.cli_runs_app:fragile_workflow"
    failed, run_id = _run(store_url, target, "--input", '{"net": 10}')
    assert failed.exit_code == 1
    renamed = invoke("runs", "resume", run_id, target, "--store", store_url, "--rename", "a=b")
    assert renamed.exit_code == 2, renamed.output
    assert "workflow, which takes no renamed" in renamed.output
    monkeypatch.setattr(cli_runs_app, "BROKEN", False)
    resumed = invoke(
        "runs", "resume", run_id, target, "--store", store_url,
        "--checkpoint-interval", "1", "--json",
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["replayed"] == ["add_tax"]
    rerun = invoke("runs", "rerun", run_id, target, "--store", store_url, "--from-start", "--json")
    assert rerun.exit_code == 0, rerun.output
    report = json.loads(rerun.stdout)
    assert (report["status"], report["replayed"]) == ("succeeded", [])
    with rb.open_store(store_url) as store:
        again = store.get_run(report["run_id"])
        assert again.input == store.get_run(run_id).input


# -- dead-letter replays (issue 9, item 18) -------------------------------------------------


def _replay_id(output: str) -> str:
    (line,) = [line for line in output.splitlines() if "replaying" in line]
    return line.split()[1].rstrip(":")


def test_failed_replay_keeps_its_letters_and_resumes_as_a_replay(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay run that FAILED leaves its dead letters pending (listed, not marked);
    resuming it replays those letters again, not the whole original flow, and marks them
    replayed once it SUCCEEDED."""
    monkeypatch.setattr(cli_runs_app, "PICKY", True)
    _, run_id = _run(store_url, "tests.cli_runs_app:strict_letters")
    monkeypatch.setattr(cli_runs_app, "PICKY", False)
    monkeypatch.setattr(cli_runs_app, "BROKEN", True)  # the replay of 7 fails further down
    failed = invoke("dead-letters", "replay", "--store", store_url, "--run", run_id)
    assert failed.exit_code == 1, failed.output
    replay_id = _replay_id(failed.stdout)
    assert "runs resume" in failed.stdout
    pending = json.loads(invoke("dead-letters", "list", "--store", store_url, "--json").stdout)
    assert sorted(row["event"] for row in pending) == ["3", "7"]
    monkeypatch.setattr(cli_runs_app, "BROKEN", False)
    cli_runs_app.SEEN.clear()
    resumed = invoke("runs", "resume", replay_id, "--store", store_url)
    assert resumed.exit_code == 0, resumed.output
    assert 7 in cli_runs_app.SEEN
    assert set(cli_runs_app.SEEN) <= {3, 7}  # the replayed events only
    done = json.loads(
        invoke("dead-letters", "list", "--replayed", "--store", store_url, "--json").stdout
    )
    assert [row["replayed_by"] for row in done] == [replay_id, replay_id]
    listed = json.loads(invoke("runs", "list", "--store", store_url, "--json").stdout)
    replay = next(row for row in listed if row["run_id"] == replay_id)
    assert (replay["status"], replay["target"]) == ("succeeded", None)  # workers never take it


def test_unpicklable_letters_are_said_not_replayable(store_url: str) -> None:
    """Letters whose events could not be pickled are not replayed (no run of 0 events),
    stay pending, and the command says they cannot be replayed, exit 1."""
    _, run_id = _run(store_url, "tests.cli_runs_app:opaque")
    listed = json.loads(invoke("dead-letters", "list", "--store", store_url, "--json").stdout)
    assert [(row["event"], row["replayable"]) for row in listed] == [
        ("Opaque(1)", False),
        ("Opaque(2)", False),
    ]
    replayed = invoke("dead-letters", "replay", "--store", store_url, "--run", run_id)
    assert replayed.exit_code == 1
    assert "cannot be replayed" in replayed.stderr
    assert "could not be pickled" in replayed.stderr
    assert "replaying 0 event(s)" not in replayed.stdout
    pending = json.loads(invoke("dead-letters", "list", "--store", store_url, "--json").stdout)
    assert len(pending) == 2
    runs = json.loads(invoke("runs", "list", "--store", store_url, "--json").stdout)
    assert [row["run_id"] for row in runs] == [run_id]


# -- runs show: history and attempts; runs list: runs of dead processes -------------------------


def test_runs_show_lists_history_and_each_attempt(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that failed then was resumed shows every status change (attempt, worker,
    time, the failure's error) and each attempt's stage records, in text and JSON."""
    monkeypatch.setattr(cli_runs_app, "BROKEN", True)
    _, run_id = _run(store_url, "tests.cli_runs_app:fragile_flow", "--checkpoint-interval", "0.001")
    monkeypatch.setattr(cli_runs_app, "BROKEN", False)
    assert invoke("runs", "resume", run_id, "--store", store_url).exit_code == 0
    data = json.loads(invoke("runs", "show", run_id, "--store", store_url, "--json").stdout)
    history = [(t["status"], t["attempt"]) for t in data["history"]]
    assert history == [("running", 1), ("failed", 1), ("running", 2), ("succeeded", 2)]
    failure = data["history"][1]["error"]
    assert (failure["type"], failure["message"]) == ("ValueError", "seven is broken")
    assert all(t["worker"] for t in data["history"])
    attempts = {a["attempt"]: {s["stage"]: s for s in a["stages"]} for a in data["attempts"]}
    assert attempts[1]["fragile"]["status"] == "failed"
    assert attempts[2]["fragile"]["status"] == "succeeded"
    text = invoke("runs", "show", run_id, "--store", store_url).stdout
    assert "history:" in text
    assert "seven is broken" in text
    assert "attempt 1:" in text
    assert "attempt 2:" in text


def _dead_worker() -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from riverbed._runtime.identity import WORKER; print(WORKER)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_runs_list_marks_runs_of_dead_processes_without_writing(store_url: str) -> None:
    """A RUNNING run whose lease expired, or whose process (on this machine) is gone, is
    listed as running* with why (JSON: lease_expired, process_gone); one still alive is
    plain running; the store is not written (no run recorded CRASHED)."""
    now = datetime.now(UTC)
    runs = {
        "expired": ("elsewhere:1:r0", now - timedelta(minutes=3)),
        "gone": (_dead_worker(), now + timedelta(minutes=3)),
        "alive": (_this_worker(), now + timedelta(minutes=3)),
    }
    with rb.open_store(store_url) as store:
        for name, (worker_name, until) in runs.items():
            store.create_run(
                rb.RunRecord(
                    run_id=f"{name}-run-0001", flow="f", flow_version="v",
                    status=rb.RunStatus.RUNNING, created_at=now, started_at=now,
                    worker=worker_name, lease_until=until,
                )
            )  # fmt: skip
    rows = {
        row["run_id"]: row
        for row in json.loads(invoke("runs", "list", "--store", store_url, "--json").stdout)
    }
    flags = {
        name: (rows[f"{name}-run-0001"]["lease_expired"], rows[f"{name}-run-0001"]["process_gone"])
        for name in runs
    }
    assert flags == {"expired": (True, False), "gone": (False, True), "alive": (False, False)}
    text = invoke("runs", "list", "--store", store_url).stdout
    lines = {line.split()[0]: line for line in text.splitlines()}
    assert "running*" in lines["expired-run-0001"]
    assert f"lease expired {runs['expired'][1]:%H:%M:%S}" in lines["expired-run-0001"]
    assert "running*" in lines["gone-run-0001"]
    assert "process gone" in lines["gone-run-0001"]
    assert "running*" not in lines["alive-run-0001"]
    assert "riverbed runs recover" in text
    with rb.open_store(store_url) as store:
        for name in runs:
            assert store.get_run(f"{name}-run-0001").status is rb.RunStatus.RUNNING
            assert len(store.history(f"{name}-run-0001")) == 1


def _this_worker() -> str:
    from riverbed._runtime.identity import WORKER

    return WORKER


def test_exit_codes_have_one_place() -> None:
    """Statuses and errors map to exit codes in `exit_code`: a store away past its retries
    and a lost lease are 1 (the command was right), a bad TARGET 2, an unknown run 4."""
    assert exit_code(rb.RunStatus.SUCCEEDED) == 0
    assert exit_code(rb.RunStatus.FAILED) == 1
    assert exit_code(rb.RunStatus.CANCELLED) == 130
    assert exit_code(rb.StoreUnavailableError("away", url="x")) == 1
    assert exit_code(rb.LeaseLostError("lost", run_id="r")) == 1
    assert exit_code(rb.RunNotResumableError("no", run_id="r")) == 1
    assert exit_code(rb.TargetError("bad")) == 2
    assert exit_code(rb.RunNotFoundError("none", run_id="r")) == 4
