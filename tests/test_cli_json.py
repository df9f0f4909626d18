"""What the CLI prints as JSON and the public names it stands on: each record's one JSON
form (``to_dict``), ``RunResult.to_dict`` unchanged, ``rb.store_url``,
``rb.interruption`` and ``rb.crashed_if_dead``."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _run(**fields: Any) -> rb.RunRecord:
    values: dict[str, Any] = {
        "run_id": "0f3a9c",
        "flow": "orders",
        "flow_version": "v1",
        "status": rb.RunStatus.FAILED,
        "created_at": NOW,
    }
    return rb.RunRecord(**{**values, **fields})


def test_run_record_json_shows_input_and_output_without_unpickling() -> None:
    """RunRecord.to_dict: statuses as their values, times as ISO text, the error with its
    traceback, input and output by their readable copy or their size (never unpickled)."""
    error = rb.ErrorInfo("parse", "ValueError", "bad", "Traceback ...")
    data = _run(
        input=b"\x80planted", output=pickle.dumps([1]), output_repr="[1]", error=error
    ).to_dict()
    assert data["status"] == "failed"
    assert data["created_at"] == "2026-11-26T09:00:00+00:00"
    assert data["started_at"] is None
    assert data["input"] == "<8 bytes, not shown>"
    assert data["output"] == "[1]"
    assert data["error"] == {
        "stage": "parse",
        "type": "ValueError",
        "message": "bad",
        "traceback": "Traceback ...",
        "attempts": 1,
        "action": "stop",
        "event": None,
    }
    assert json.loads(json.dumps(data)) == data


def test_every_record_has_one_json_form() -> None:
    """StageRun, RunTransition, Checkpoint and DeadLetterRecord print through to_dict,
    JSON-able; a checkpoint's states and a letter's pickled event are not in it."""
    stage = rb.StageRun("r", "parse", rb.StageKind.MAP, rb.StageStatus.SUCCEEDED, events_in=3)
    moved = rb.RunTransition("r", 1, rb.RunStatus.RUNNING, NOW, worker="h:1:r0")
    checkpoint = rb.Checkpoint("r", 2, "v1", {"src": {"0": 5}}, {"fold": b"state"}, NOW)
    letter = rb.DeadLetterRecord(
        7, "r", "orders", "parse", b"", "'x'", "ValueError", "bad", "tb", 2, NOW
    )
    forms = [record.to_dict() for record in (stage, moved, checkpoint, letter)]
    assert forms[0]["status"] == "succeeded"
    assert forms[0]["events_in"] == 3
    assert forms[1] == {
        "status": "running",
        "attempt": 1,
        "at": NOW.isoformat(),
        "worker": "h:1:r0",
        "error": None,
    }
    assert forms[2] == {
        "checkpoint_id": 2,
        "created_at": NOW.isoformat(),
        "positions": {"src": {"0": 5}},
    }
    assert (forms[3]["event"], forms[3]["replayable"]) == ("'x'", False)
    assert not letter.replayable
    for form in forms:
        assert json.loads(json.dumps(form)) == form


def test_run_result_to_dict_keeps_its_shape() -> None:
    """RunResult.to_dict, now written with the records' JSON conversions, gives what it
    gave: the same keys, stages and error as plain dicts, times as ISO text."""
    flow = rb.Flow("shape")
    flow.source([1, 2, 0]).map(lambda x: 1 // x).sink(lambda x: None, name="drop")
    result = flow.run(store=False, raise_on_failure=False)
    data = result.to_dict()
    assert list(data) == [
        "run_id", "flow", "flow_version", "status", "started_at", "ended_at", "duration",
        "stages", "positions", "errors", "dead_letters", "error", "output", "steps",
        "replayed",
    ]  # fmt: skip
    assert data["started_at"] == result.started_at.isoformat()
    assert list(data["stages"]["map"]) == [
        "name", "kind", "events_in", "events_out", "errors", "retries", "skipped",
        "dead_lettered", "dropped", "seconds", "fused_with",
    ]  # fmt: skip
    assert data["error"]["error_type"] == "ZeroDivisionError"
    assert (data["error"]["action"], data["error"]["event"]) == ("stop", "0")
    assert set(data["error"]) == {
        "stage", "error_type", "message", "traceback", "attempts", "action", "event",
    }  # fmt: skip
    json.dumps(data)


def test_store_url_resolves_and_checks_without_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rb.store_url: the URL given, else $RIVERBED_STORE, else the default; a URL that
    names no store is a StoreError; nothing is opened or created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RIVERBED_STORE", raising=False)
    assert rb.store_url() == "sqlite:///.riverbed/riverbed.db"
    monkeypatch.setenv("RIVERBED_STORE", "sqlite:///elsewhere.db")
    assert rb.store_url() == "sqlite:///elsewhere.db"
    assert rb.store_url("postgresql://app@db/runs") == "postgresql://app@db/runs"
    for wrong in ("mysql://db/x", "sqlite:///"):
        with pytest.raises(rb.StoreError):
            rb.store_url(wrong)
    assert list(tmp_path.iterdir()) == []


def _dead_worker() -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from riverbed._runtime.identity import WORKER; print(WORKER)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_interruption_says_why_a_running_run_runs_no_more() -> None:
    """rb.interruption reads the record: lease expired, no lease, process gone, or None
    for a run that may still run (or is not RUNNING)."""
    now = datetime.now(UTC)
    running = rb.RunStatus.RUNNING
    expired = _run(status=running, worker="h:1:r0", lease_until=now - timedelta(seconds=5))
    assert (rb.interruption(expired) or "").startswith("lease expired ")
    assert rb.interruption(_run(status=running)) == "no lease"
    later = now + timedelta(minutes=5)
    gone = _run(status=running, worker=_dead_worker(), lease_until=later)
    assert rb.interruption(gone) == "process gone"
    assert rb.interruption(_run(status=running, worker="h:1:r0", lease_until=later)) is None
    assert rb.interruption(_run()) is None


def test_crashed_if_dead_settles_only_dead_runs(tmp_path: Path) -> None:
    """rb.crashed_if_dead records a run of a dead process CRASHED, refuses one still
    running elsewhere, and leaves other statuses alone."""
    later = datetime.now(UTC) + timedelta(minutes=5)
    with rb.open_store(f"sqlite:///{tmp_path}/runs.db") as store:
        dead = _run(run_id="dead01", status=rb.RunStatus.RUNNING, worker=_dead_worker(),
                    lease_until=later, started_at=NOW)  # fmt: skip
        alive = _run(run_id="alive1", status=rb.RunStatus.RUNNING, worker="elsewhere:1:r0",
                     lease_until=later, started_at=NOW)  # fmt: skip
        failed = _run(run_id="failed")
        for record in (dead, alive, failed):
            store.create_run(record)
        assert rb.crashed_if_dead(store, dead).status is rb.RunStatus.CRASHED
        with pytest.raises(rb.RunNotResumableError, match="elsewhere:1:r0"):
            rb.crashed_if_dead(store, alive)
        assert rb.crashed_if_dead(store, failed) == failed
