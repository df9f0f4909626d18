"""The FlowForge dialect: its README quickstart, the behaviours its document states
(slots and events, many-to-many connections, stats(), error strategies, job states and
their persistence, serialization), and its jobs as riverbed runs in the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import riverbed as rb
from riverbed.cli import app
from riverbed.compat.flowforge import ErrorHandler, ErrorStrategy, Flow, JobState, Routine
from tests.compat.flowforge_routines import (
    FAILURES,
    PAUSING,
    Collect,
    Source,
    Starter,
    Upper,
)


@pytest.fixture(autouse=True)
def _no_failures() -> None:
    FAILURES.clear()
    PAUSING.clear()


def test_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's quickstart, unchanged but the import line."""

    class DataProcessor(Routine):
        def __init__(self):
            super().__init__()
            self.input_slot = self.define_slot("input", handler=self.process_data)
            self.output_event = self.define_event("output", ["result"])

        def process_data(self, data: str):
            result = f"Processed: {data}"
            self._stats["processed_count"] = self._stats.get("processed_count", 0) + 1
            self.emit("output", result=result)

    flow = Flow(flow_id="my_flow")

    processor1 = DataProcessor()
    processor2 = DataProcessor()

    id1 = flow.add_routine(processor1, "processor1")
    id2 = flow.add_routine(processor2, "processor2")

    flow.connect(id1, "output", id2, "input")

    job_state = flow.execute(id1, entry_params={"data": "test"})
    print(job_state.status)  # "completed"
    print(processor1.stats())  # {"processed_count": 1}

    assert capsys.readouterr().out.splitlines() == ["completed", "{'processed_count': 1}"]
    assert processor2.stats() == {"processed_count": 1}
    events = [(r.routine_id, r.event_name) for r in job_state.get_execution_history()]
    assert events == [("processor1", "start"), ("processor1", "output"), ("processor2", "output")]


def words(**flow_args: Any) -> tuple[Flow, Upper, Collect]:
    flow = Flow(flow_id="words", **flow_args)
    upper, collect = Upper(), Collect()
    flow.add_routine(Source(), "source")
    flow.add_routine(upper, "upper")
    flow.add_routine(collect, "collect")
    flow.connect("source", "word", "upper", "input")
    flow.connect("upper", "output", "collect", "input", param_mapping={"word": "upper"})
    flow.connect("source", "done", "collect", "input")
    return flow, upper, collect


def test_jobs_run_on_every_runner(on_runner: str) -> None:
    """A flow runs on the local runner and on Ray; the job state's routine states (from
    riverbed's counters) are the same on both."""
    flow, _, _ = words()
    job = flow.execute("source", {"line": "x y z"})
    assert job.status == "completed"
    states = {rid: (s["calls"], s["emitted"]) for rid, s in job.routine_states.items()}
    assert states == {"source": (1, 4), "upper": (3, 3), "collect": (4, 0)}
    emitted = [r.data for r in job.get_execution_history("upper")]
    assert sorted(d["word"] for d in emitted) == ["X", "Y", "Z"]


def test_many_to_many_connections_and_merge_strategies() -> None:
    """An event reaches every slot connected to it; a slot takes several events; the
    'append' strategy accumulates; per-routine states hold riverbed's counters."""
    flow, upper, collect = words()
    job = flow.execute("source", {"line": "to be"})
    assert job.status == "completed"
    assert collect.stats()["seen"] == {"upper": ["TO", "BE"], "count": [2]}
    assert upper.stats() == {"upper_count": 2}
    state = job.get_routine_state("upper")
    assert state is not None
    assert (state["status"], state["calls"], state["emitted"]) == ("completed", 2, 2)
    assert job.get_routine_state("source")["emitted"] == 3  # type: ignore[index]


def test_an_entry_routine_with_its_own_call() -> None:
    """execute hands the entry parameters to the routine's __call__ when it has one."""
    flow = Flow(flow_id="calls")
    starter, collect = Starter(), Collect()
    flow.add_routine(starter, "starter")
    flow.add_routine(collect, "collect")
    flow.connect("starter", "go", "collect", "input")
    assert flow.execute("starter", {"times": 3}).status == "completed"
    assert starter.stats() == {"called": True, "call_count": 1}
    assert collect.stats()["seen"] == {"n": [0, 1, 2]}


@pytest.mark.parametrize(
    ("strategy", "status", "routine_status"),
    [
        ("stop", "failed", "failed"),
        (ErrorStrategy.CONTINUE, "completed", "error_continued"),
        ("skip", "completed", "skipped"),
    ],
)
def test_error_strategies(strategy: Any, status: str, routine_status: str) -> None:
    """STOP fails the job; CONTINUE and SKIP go on without the failed call's events."""
    flow, _, collect = words()
    flow.routines["upper"].set_error_handler(ErrorHandler(strategy))
    FAILURES["upper"] = 1
    job = flow.execute("source", {"line": "a b"})
    assert job.status == status
    state = job.get_routine_state("upper")
    assert state is not None
    assert state["status"] == routine_status
    assert "ConnectionError: upper is down" in state["error"]
    if status == "completed":
        assert collect.stats()["seen"]["upper"] == ["B"]


def test_retry_then_stop_and_handler_precedence() -> None:
    """RETRY calls again (max_retries more times, only retryable errors); a routine's
    handler beats the flow's, which beats STOP."""
    flow, _, _ = words()
    flow.set_error_handler(ErrorHandler("skip"))
    flow.routines["upper"].set_error_handler(ErrorHandler("retry", max_retries=2, retry_delay=0))
    FAILURES["upper"] = 2
    job = flow.execute("source", {"line": "a"})
    assert job.status == "completed"
    assert job.get_routine_state("upper")["retries"] == 2  # type: ignore[index]
    FAILURES["upper"] = 3
    assert flow.execute("source", {"line": "a"}).status == "failed"
    picky = ErrorHandler("retry", max_retries=5, retry_delay=0, retryable_exceptions=(KeyError,))
    flow.routines["upper"].set_error_handler(picky)
    FAILURES["upper"] = 1
    job = flow.execute("source", {"line": "a"})
    assert job.status == "failed"
    assert job.get_routine_state("upper")["retries"] == 0  # type: ignore[index]
    flow.routines["upper"].set_error_handler(None)  # type: ignore[arg-type]
    FAILURES["upper"] = 1
    assert flow.execute("source", {"line": "a"}).status == "completed"  # the flow's skip


def test_job_state_saves_and_loads(tmp_path: Path) -> None:
    """A job state round-trips through save / load with its history and states."""
    flow, _, _ = words()
    job = flow.execute("source", {"line": "x"})
    job.save(tmp_path / "jobs" / "job.json")
    back = JobState.load(tmp_path / "jobs" / "job.json")
    assert back.serialize() == job.serialize()
    assert back.status == "completed"
    assert [r.event_name for r in back.get_execution_history("upper")] == ["output"]
    with pytest.raises(FileNotFoundError):
        JobState.load(tmp_path / "missing.json")


def test_flow_serializes_and_deserializes() -> None:
    """A flow goes to JSON data and back: routines made again by class, with config,
    stats, handlers and connections; the copy runs the same."""
    flow, _, _ = words()
    flow.routines["upper"].set_config(name="upper")
    flow.set_error_handler(ErrorHandler("retry", max_retries=1, retry_delay=0.5))
    data = json.loads(json.dumps(flow.serialize()))
    copy = Flow.deserialize(data)
    assert copy.routines["upper"].get_config("name") == "upper"
    assert copy.error_handler is not None
    assert copy.error_handler.strategy is ErrorStrategy.RETRY
    assert copy.serialize() == flow.serialize()
    assert copy.execute("source", {"line": "p q"}).status == "completed"
    assert copy.routines["collect"].stats()["seen"]["upper"] == ["P", "Q"]


def test_a_job_in_a_store_is_a_run_and_resumes(store_url: str) -> None:
    """Given a store, a job is a riverbed run (listed by the CLI); a failed one resumes
    from the routine that failed, the others not called again."""
    flow, _, _ = words(store=store_url)
    FAILURES["upper"] = 1
    failed = flow.execute("source", {"line": "a b"})
    assert failed.status == "failed"
    again, _, collect = words(store=store_url)
    done = again.resume(failed)
    assert done.status == "completed"
    assert done.job_id == failed.job_id
    assert collect.stats()["seen"]["upper"] == ["A", "B"]
    assert done.get_routine_state("source") is None  # replayed from its record, not called
    assert done.get_routine_state("upper")["calls"] == 2  # type: ignore[index]
    listed = CliRunner().invoke(app, ["runs", "list", "--store", store_url, "--json"])
    rows = json.loads(listed.stdout)
    assert [(row["run_id"], row["status"]) for row in rows] == [(failed.job_id, "succeeded")]
    with rb.open_store(store_url) as store:
        assert store.get_run(failed.job_id).attempt == 2


def test_a_paused_job_stops_before_its_next_routine_and_resumes(store_url: str) -> None:
    """``pause()`` while a job runs: the next routine is not called, the job is "paused"
    (its run cancelled in the store, at the routine's step boundary); ``resume`` goes on
    from the routine that was paused, whose call is made again (its step was not
    committed: a cancelled run commits nothing more)."""
    flow, _, collect = words(store=store_url)
    PAUSING.append(flow)
    paused = flow.execute("source", {"line": "a b"})
    assert paused.status == "paused"
    assert "seen" not in collect.stats()  # the routine after the pause never ran
    assert JobState.deserialize(paused.serialize()).status == "paused"
    again, upper, collect = words(store=store_url)
    done = again.resume(paused)
    assert done.status == "completed"
    assert done.job_id == paused.job_id
    assert collect.stats()["seen"]["upper"] == ["A", "B"]
    assert upper.stats() == {"upper_count": 2}
    assert done.get_routine_state("source") is None  # recorded before the pause


def test_pause_says_what_it_needs() -> None:
    """Without a store there is nowhere to keep a paused job; with no job running, there
    is nothing to pause: both say so."""
    flow, _, _ = words()
    with pytest.raises(ValueError, match="needs the store"):
        flow.pause()
    stored, _, _ = words(store=True)
    with pytest.raises(ValueError, match="no job of this flow is running"):
        stored.pause()
