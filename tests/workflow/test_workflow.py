"""Workflows as flows: ``rb.run`` on every store backend; outputs, records, resume, policies."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import riverbed as rb
from tests import runners
from tests.workflow import steps as crash

pytestmark = pytest.mark.usefixtures("on_runner")

ROOT = Path(__file__).resolve().parents[2]

CALLS: Counter[str] = Counter()
FAIL_AT: set[str] = set()


def counted(name: str, fn: object = None) -> object:
    """A step named ``name`` that counts its calls and fails while ``name`` is in FAIL_AT."""

    def step(x: int) -> int:
        CALLS[name] += 1
        if name in FAIL_AT:
            raise RuntimeError(f"{name} is broken")
        return x + 1

    step.__name__ = step.__qualname__ = name
    return step


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    """Each test counts its own calls."""
    CALLS.clear()
    FAIL_AT.clear()


def chain(name: str, count: int) -> rb.Flow:
    """input -> s1 -> ... -> s<count> -> output, each step adding 1."""
    flow = rb.Flow(name)
    stream = flow.input()
    for number in range(1, count + 1):
        stream = stream.map(counted(f"s{number}"), name=f"s{number}")
    stream.output()
    return flow


def test_three_step_workflow_output_and_records(store: rb.Store) -> None:
    """A 3-step workflow returns its output, and the store holds the run (SUCCEEDED, input
    and output pickled), one step record per step with its outputs, one stage run each."""
    result = rb.run(chain("three", 3), 10, store=store)
    assert result.ok
    assert result.output == 13
    assert result.outputs == {"output": [13]}
    run = store.get_run(result.run_id)
    assert run.status is rb.RunStatus.SUCCEEDED
    assert pickle.loads(run.input) == 10
    assert pickle.loads(run.output) == [13]
    assert run.ended_at is not None
    assert run.lease_until is None
    recorded = store.steps(result.run_id)
    assert [(s.seq, s.stage) for s in recorded] == [(0, "s1"), (1, "s2"), (2, "s3")]
    assert [pickle.loads(s.output) for s in recorded] == [
        {"out": [11]},
        {"out": [12]},
        {"out": [13]},
    ]
    assert recorded == list(result.steps)
    stage_runs = store.stage_runs(result.run_id)
    assert [(r.stage, r.status, r.events_in, r.events_out) for r in stage_runs] == [
        (f"s{n}", rb.StageStatus.SUCCEEDED, 1, 1) for n in (1, 2, 3)
    ]


@runners.shared_objects
def test_failed_step_then_resume_runs_only_the_rest(store: rb.Store) -> None:
    """A 10-step workflow failing at step 7 is FAILED with the error; resumed after the fix,
    it replays steps 1-6 from their records and calls only steps 7 to 10."""
    flow = chain("ten", 10)
    FAIL_AT.add("s7")
    failed = rb.run(flow, 0, store=store)
    assert failed.status is rb.RunStatus.FAILED
    assert failed.output is None
    assert failed.error is not None
    assert failed.error.stage == "s7"
    assert "s7 is broken" in failed.error.message
    run = store.get_run(failed.run_id)
    assert run.status is rb.RunStatus.FAILED
    assert run.error is not None
    assert run.error.stage == "s7"
    assert [s.stage for s in store.steps(failed.run_id)] == [f"s{n}" for n in range(1, 7)]
    assert {r.stage: r.status for r in store.stage_runs(failed.run_id)}["s7"] is (
        rb.StageStatus.FAILED
    )
    FAIL_AT.clear()
    CALLS.clear()
    resumed = rb.run(flow, store=store, resume=failed.run_id)
    assert resumed.ok
    assert resumed.output == 10
    assert resumed.run_id == failed.run_id
    assert Counter({f"s{n}": 1 for n in range(7, 11)}) == CALLS
    assert resumed.replayed == tuple(f"s{n}" for n in range(1, 7))
    assert len(resumed.steps) == 10
    run = store.get_run(failed.run_id)
    assert run.status is rb.RunStatus.SUCCEEDED
    assert run.attempt == 2
    assert run.error is None


def test_resume_of_a_succeeded_run_returns_its_record(store: rb.Store) -> None:
    """Resuming a run that succeeded calls nothing and returns the recorded output."""
    flow = chain("done", 2)
    first = rb.run(flow, 1, store=store)
    CALLS.clear()
    again = rb.run(flow, store=store, resume=first.run_id)
    assert again.ok
    assert again.output == 3
    assert not CALLS


def test_resume_with_another_input_is_refused(store: rb.Store) -> None:
    """A resumed run keeps its own input; a different one given is an error."""
    flow = chain("inputs", 1)
    FAIL_AT.add("s1")
    failed = rb.run(flow, 1, store=store)
    with pytest.raises(ValueError, match="another input"):
        rb.run(flow, 2, store=store, resume=failed.run_id)


@runners.kills_its_process
def test_step_killed_by_sigkill_resumes_at_that_step(store_url: str, tmp_path: Path) -> None:
    """A process killed with SIGKILL inside step 2 leaves step 1 recorded; resuming runs
    step 2 and 3 without calling step 1 again."""
    calls = tmp_path / "calls.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
        "RIVERBED_TEST_CALLS": str(calls),
        "RIVERBED_TEST_CRASH": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.workflow.steps", store_url, "crash-run-1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    assert crash.calls(calls) == ["reserve", "charge"]
    os.environ["RIVERBED_TEST_CALLS"] = str(calls)
    try:
        with rb.open_store(store_url) as store:
            assert store.get_run("crash-run-1").status is rb.RunStatus.RUNNING
            assert [s.stage for s in store.steps("crash-run-1")] == ["reserve"]
            result = rb.run(crash.order_flow(), store=store, resume="crash-run-1")
            assert result.ok
            assert result.output == {"amount": 5, "reserved": 1, "charged": 5, "shipped": 1}
            assert result.replayed == ("reserve",)
            assert store.get_run("crash-run-1").attempt == 2
    finally:
        del os.environ["RIVERBED_TEST_CALLS"]
    assert crash.calls(calls) == ["reserve", "charge", "charge", "ship"]


@runners.shared_objects
def test_retry_inside_a_workflow(store: rb.Store) -> None:
    """A step's Retry policy retries it, then the workflow goes on; the stage run counts
    the error and the retry."""
    attempts: list[int] = []

    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) < 2:
            raise ConnectionError("try again")
        return x * 10

    flow = rb.Flow("retrying")
    flow.input().map(flaky, retry=rb.Retry(attempts=3, backoff=0)).output()
    result = rb.run(flow, 4, store=store)
    assert result.ok
    assert result.output == 40
    assert len(attempts) == 2
    (stage_run,) = store.stage_runs(result.run_id)
    assert (stage_run.errors, stage_run.retries) == (1, 1)


def test_skip_ends_the_workflow_without_output(store: rb.Store) -> None:
    """A step whose policy is SKIP drops the event: later steps are not called, the run
    SUCCEEDED with no output, and the skip is counted."""

    def refuse(x: int) -> int:
        raise ValueError("not this one")

    flow = rb.Flow("skipping")
    flow.input().map(refuse, on_error=rb.OnError.SKIP).map(counted("after"), name="after").output()
    result = rb.run(flow, 1, store=store)
    assert result.ok
    assert result.output is None
    assert result.outputs == {"output": []}
    assert not CALLS
    assert [s.stage for s in result.steps] == ["refuse"]
    assert store.get_run(result.run_id).status is rb.RunStatus.SUCCEEDED
    assert [r.skipped for r in store.stage_runs(result.run_id)] == [1]


@runners.shared_objects
def test_a_dag_records_only_the_branch_taken(store: rb.Store) -> None:
    """Branch, a map per side, merge: only the side the event took is a step."""
    flow = rb.Flow("dag")
    sides = flow.input().branch(lambda x: x % 2 == 0, name="even")
    rb.merge(
        sides.trues.map(counted("halve"), name="halve"),
        sides.falses.map(counted("triple"), name="triple"),
        name="join",
    ).output()
    result = rb.run(flow, 4, store=store)
    assert result.output == 5
    assert Counter({"halve": 1}) == CALLS
    assert [s.stage for s in result.steps] == ["even", "halve", "join"]
    assert pickle.loads(result.steps[0].output) == {"true": [4], "false": []}


@runners.steps_in_step
def test_workflows_at_once_share_commits(store: rb.Store) -> None:
    """Sixteen workflows awaited at once all succeed, with fewer transactions than steps
    (their steps are group-committed)."""
    from riverbed._runtime.committer import committer

    flow = chain("many", 3)

    async def main() -> tuple[list[rb.WorkflowResult], int]:
        results = await asyncio.gather(*(rb.arun(flow, i, store=store) for i in range(16)))
        return list(results), committer(store).commits

    results, commits = asyncio.run(main())
    assert [r.output for r in results] == [i + 3 for i in range(16)]
    assert sum(len(store.steps(r.run_id)) for r in results) == 48
    assert commits < 48
    assert all(store.get_run(r.run_id).status is rb.RunStatus.SUCCEEDED for r in results)


def test_run_without_a_store_records_nothing() -> None:
    """store=False runs the workflow in memory (no durability)."""
    result = rb.run(chain("memory", 2), 0, store=False)
    assert result.ok
    assert result.output == 2
    assert len(result.steps) == 2


def test_arun_inside_an_event_loop_and_run_refused_there() -> None:
    """``await rb.arun`` works in a loop; ``rb.run`` there says to use it."""

    async def main() -> object:
        with pytest.raises(RuntimeError, match=r"await rb\.arun"):
            rb.run(chain("looped", 1), 0, store=False)
        return (await rb.arun(chain("looped", 1), 0, store=False)).output

    assert asyncio.run(main()) == 1


# -- build errors -----------------------------------------------------------------------------


def test_a_flow_without_input_is_not_a_workflow() -> None:
    """rb.run on a flow whose source is not flow.input() names the source and the fix."""
    flow = rb.Flow("stream")
    flow.source([1, 2], name="numbers").map(str).sink(print)
    with pytest.raises(rb.FlowDefinitionError, match=r"flow.input\(\).*'numbers'"):
        rb.run(flow, 1, store=False)


def test_a_workflow_with_a_second_source_is_refused() -> None:
    """A workflow has one source, its input."""
    flow = rb.Flow("two-sources")
    rb.merge(flow.input(), flow.source([1], name="extra")).output()
    with pytest.raises(rb.FlowDefinitionError, match="'extra'"):
        rb.run(flow, 1, store=False)


def test_two_outputs_are_refused() -> None:
    """A workflow has at most one output: merge first."""
    flow = rb.Flow("two-outputs")
    sides = flow.input().branch(bool)
    sides.trues.output()
    sides.falses.output(name="other")
    with pytest.raises(rb.FlowDefinitionError, match="several outputs"):
        rb.run(flow, 1, store=False)


def test_run_needs_an_input() -> None:
    """rb.run without input (and without resume=) is a TypeError."""
    with pytest.raises(TypeError, match="needs the workflow's input"):
        rb.run(chain("no-input", 1), store=False)


def test_a_workflow_flow_run_as_a_stream_fails_clearly() -> None:
    """flow.run() on a workflow fails, saying to use rb.run(flow, input)."""
    result = chain("as-stream", 1).run(progress=False, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert "rb.run(flow, input)" in result.error.message


def test_workflow_flows_round_trip_through_json() -> None:
    """flow.input(), output() and cache=True survive to_json / from_json."""
    flow = rb.Flow("json-workflow")
    flow.input().map(crash.reserve, cache=True).output()
    again = rb.Flow.from_json(flow.to_json())
    assert again.version == flow.version
    assert again.stage("reserve").cache is True
    assert rb.run(again, {"amount": 1}, store=False).output == {"amount": 1, "reserved": 1}


def test_a_run_alive_elsewhere_is_not_resumed(store: rb.Store) -> None:
    """A RUNNING run whose process is alive and lease current is refused, naming it."""
    from datetime import UTC, datetime, timedelta

    from riverbed._runtime.identity import WORKER

    now = datetime.now(UTC)
    store.create_run(
        rb.RunRecord(
            run_id="busy-run",
            flow="busy",
            flow_version="v",
            status=rb.RunStatus.RUNNING,
            input=pickle.dumps(1),
            created_at=now,
            worker=WORKER,
            lease_until=now + timedelta(minutes=1),
        )
    )
    with pytest.raises(rb.RiverbedError, match="is running in"):
        rb.run(chain("busy", 1), store=store, resume="busy-run")


def test_a_dead_lettered_step_keeps_the_event(store: rb.Store) -> None:
    """DEAD_LETTER drops the event from the workflow (no output) and stores it, with the
    error, in the run's dead letters."""

    def reject(x: int) -> int:
        raise ValueError(f"cannot take {x}")

    flow = rb.Flow("dead-letters")
    flow.input().map(reject, on_error=rb.OnError.DEAD_LETTER).output()
    result = rb.run(flow, 7, store=store)
    assert result.ok
    assert result.output is None
    (letter,) = store.dead_letters(run_id=result.run_id)
    assert (letter.stage, pickle.loads(letter.event), letter.message) == (
        "reject",
        7,
        "cannot take 7",
    )


def test_a_step_whose_outputs_cannot_be_recorded_fails(store: rb.Store) -> None:
    """A step returning something unpicklable fails the run, saying why."""
    import threading

    flow = rb.Flow("unpicklable-output")
    flow.input().map(lambda x: threading.Lock(), name="lock").output()
    result = rb.run(flow, 1, store=store)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert "cannot be pickled" in result.error.message
    assert store.get_run(result.run_id).status is rb.RunStatus.FAILED


def test_a_bad_commit_in_a_group_fails_alone(store: rb.Store) -> None:
    """Two workflows started at once with one run id: the second's creation is a
    DuplicateRunError, and the first runs to the end all the same."""
    flow = chain("same-id", 2)

    async def main() -> list[object]:
        return await asyncio.gather(
            rb.arun(flow, 1, store=store, run_id="same-id-run"),
            rb.arun(flow, 10, store=store, run_id="same-id-run"),
            return_exceptions=True,
        )

    first, second = asyncio.run(main())
    assert isinstance(first, rb.WorkflowResult)
    assert first.output == 3
    assert isinstance(second, rb.DuplicateRunError)
    assert pickle.loads(store.get_run("same-id-run").output) == [3]
