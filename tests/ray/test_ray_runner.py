"""The Ray runner's own promises: keys split over actors, a lost actor rolled back to the
last checkpoint with exact per-key results, a checkpoint resumed at another parallelism,
clear errors for what cannot run on Ray. (The flow, operator, window, join and policy
tests run on both runners through the ``on_runner`` fixture.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed.connectors import PostgresTable
from riverbed.testing import Capture, TestClock
from tests.ray.flows import (
    EVENTS,
    Count,
    DieFirstTime,
    DieOnce,
    KillWhileIdle,
    NotePid,
    add,
    expected_totals,
    key_of,
    totals_flow,
    worker_pid,
)
from tests.services import require_postgres

pytestmark = pytest.mark.usefixtures("ray_instance")


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/runs.db"


def pid_of_key(state: Any, value: int) -> tuple[Any, int]:
    """Say which process handles the event's key (a keyed stage emits ``(key, pid)``)."""
    return state, os.getpid()


def test_keyed_state_is_split_over_actors_each_key_in_one() -> None:
    """A keyed stage spreads its keys over its actors; each key lives in one of them."""
    seen = Capture()
    flow = rb.Flow("split")
    flow.source(range(2000), name="numbers").key_by(key_of, name="key").stateful(
        pid_of_key, name="where"
    ).sink(seen, name="out")
    result = flow.run(runner=rb.RayRunner(parallelism=3), store=False, progress=False)
    assert result.ok
    owners: dict[int, set[int]] = {}
    for key, pid in seen.items:
        owners.setdefault(key, set()).add(pid)
    assert all(len(pids) == 1 for pids in owners.values())
    assert len({pid for pids in owners.values() for pid in pids}) == 3
    assert os.getpid() not in {pid for pids in owners.values() for pid in pids}


@pytest.mark.parametrize("where", ["map", "fold"])
@pytest.mark.parametrize("how", ["sigkill", "ray.kill"])
def test_a_lost_actor_rolls_the_run_back_and_it_goes_on(
    tmp_path: Path, how: str, where: str
) -> None:
    """An actor killed mid-run (its process SIGKILLed, or ray.kill): the run rolls back to
    its last checkpoint by itself and ends with every key's exact total."""
    die = DieOnce(tmp_path / "died", at=EVENTS // 2 + 7, how=how)
    seen = Capture()
    if where == "map":
        flow = totals_flow(die, sink=seen)
    else:
        flow = rb.Flow("ray-totals")
        flow.source(range(EVENTS), name="numbers").key_by(key_of, name="key").fold(
            0, _DyingAdd(die), name="total"
        ).sink(seen, name="out")
    result = flow.run(
        runner=rb.RayRunner(parallelism=2),
        store=_store(tmp_path),
        checkpoint_events=2_000,
        progress=False,
    )
    assert (tmp_path / "died").exists()  # it did die
    assert result.ok, result.summary()
    assert dict(seen.items) == expected_totals()
    assert result.stages["total"].events_in == EVENTS  # counted once, after the rollback


def test_an_actor_lost_while_idle_is_rolled_back_at_the_next_checkpoint(tmp_path: Path) -> None:
    """An actor that dies while no batch is in flight to it is first met by a checkpoint
    (asking every actor for its state): that too is a lost actor, rolled back, and the run
    goes on to exact totals, rather than failing with Ray's own error."""
    pids = tmp_path / "pids"
    pids.mkdir()
    events = 4_000
    seen = Capture()
    flow = rb.Flow("ray-idle-loss")
    flow.source(KillWhileIdle(pids, events), name="numbers").map(
        NotePid(pids), name="where"
    ).key_by(key_of, name="key").fold(0, add, name="total").sink(seen, name="out")
    result = flow.run(
        runner=rb.RayRunner(parallelism=2),
        store=_store(tmp_path),
        checkpoint_interval=0.2,
        progress=False,
        raise_on_failure=False,
    )
    assert result.ok, result.summary()
    assert dict(seen.items) == expected_totals(events)


class _DyingAdd:
    def __init__(self, die: DieOnce) -> None:
        self.die = die

    def __call__(self, total: int, x: int) -> int:
        self.die(x)
        return total + x


def test_a_lost_actor_fails_a_run_without_checkpoints(tmp_path: Path) -> None:
    """Without checkpoints there is nothing to roll back to: the run fails, saying why."""
    flow = totals_flow(DieOnce(tmp_path / "died", at=500, how="sigkill"))
    result = flow.run(
        runner=rb.RayRunner(parallelism=2), store=False, progress=False, raise_on_failure=False
    )
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert result.error.stage == "die"
    assert "takes no checkpoints" in result.error.message


class FailOnce:
    """A source of 0..n-1 that fails after ``at`` events when ``marker`` is missing."""

    def __init__(self, marker: Path, n: int, at: int) -> None:
        self.marker = marker
        self.n = n
        self.at = at

    def __call__(self) -> Any:
        for x in range(self.n):
            if x == self.at and not self.marker.exists():
                self.marker.write_text("failed")
                raise OSError("the disk went away")
            yield x


def test_a_checkpoint_resumes_at_another_parallelism(tmp_path: Path) -> None:
    """A run checkpointed with two actors per stage, re-run from its checkpoint with three
    and with one: the same exact totals (keys move between actors by key group)."""
    store = _store(tmp_path)
    source = FailOnce(tmp_path / "failed", EVENTS, at=12_345)

    def flow_with(seen: Capture) -> rb.Flow:
        flow = rb.Flow("rescale")
        flow.source(source, name="numbers").key_by(key_of, name="key").fold(
            0, _add, name="total"
        ).sink(seen, name="out")
        return flow

    first = flow_with(Capture()).run(
        runner=rb.RayRunner(parallelism=2),
        store=store,
        checkpoint_events=1_000,
        progress=False,
        raise_on_failure=False,
    )
    assert first.status is rb.RunStatus.FAILED
    for parallelism in (3, 1):
        seen = Capture()
        again = flow_with(seen).run(
            runner=rb.RayRunner(parallelism=parallelism),
            store=store,
            rerun_of=first.run_id,
            progress=False,
        )
        assert again.ok
        assert dict(seen.items) == expected_totals()
        # It started from the checkpoint, not from the beginning.
        assert again.stages["numbers"].events_out == EVENTS


def _add(total: int, x: int) -> int:
    return total + x


def test_a_stage_that_cannot_be_shipped_fails_naming_it() -> None:
    """A stage holding what cannot be pickled (a lock) fails the run before any actor
    starts, with an error naming the stage and saying what to do."""
    lock = threading.Lock()

    def locked(x: int) -> int:
        with lock:
            return x

    flow = rb.Flow("unshippable")
    flow.source([1, 2], name="numbers").map(locked, name="locked").sink(Capture(), name="out")
    result = flow.run(
        runner=rb.RayRunner(parallelism=2), store=False, progress=False, raise_on_failure=False
    )
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert result.error.stage == "locked"
    assert "cannot be shipped to Ray's workers" in result.error.message


def test_an_event_that_cannot_be_pickled_fails_saying_so() -> None:
    """An event no pickler can ship (a lock) fails the run with riverbed's message, which
    names the chain and says that events crossing to Ray's actors must be picklable."""
    flow = rb.Flow("unpicklable-event")
    flow.source([1, threading.Lock()], name="numbers").map(str, name="text").sink(
        Capture(), name="out"
    )
    result = flow.run(
        runner=rb.RayRunner(parallelism=2), store=False, progress=False, raise_on_failure=False
    )
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert "events that cross to Ray's actors must be picklable" in result.error.message


def test_a_test_clock_is_refused_on_ray() -> None:
    flow = rb.Flow("clocked")
    flow.source([1], name="numbers").sink(Capture(), name="out")
    with pytest.raises(ValueError, match="local runner only"):
        flow.run(runner=rb.RayRunner(), clock=TestClock(), store=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"parallelism": 0}, "parallelism must be an int >= 1"),
        ({"parallelism": 200}, "more than key_groups"),
        ({"in_flight": "4"}, "in_flight must be an int >= 1"),
        ({"stages": {"x": {"num_cpus": 2}}}, "must be an rb.StageResources"),
    ],
)
def test_bad_runner_options_say_what_is_wrong(options: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        rb.RayRunner(**options)


def test_importing_riverbed_does_not_import_ray_and_a_missing_ray_says_which_extra() -> None:
    code = (
        "import sys\n"
        "import riverbed as rb\n"
        "assert 'ray' not in sys.modules, 'import riverbed imported ray'\n"
        "sys.modules['ray'] = None  # as if the extra were not installed\n"
        "flow = rb.Flow('f'); flow.source([1]).sink(print)\n"
        "try:\n"
        "    flow.run(runner=rb.RayRunner(), store=False, progress=False)\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "pip install 'riverbed[ray]'" in done.stdout


def test_the_run_record_says_which_runner_ran_it(tmp_path: Path) -> None:
    flow = totals_flow(events=100)
    store_url = _store(tmp_path)
    on_ray = flow.run(runner=rb.RayRunner(parallelism=2), store=store_url, progress=False)
    here = flow.run(store=store_url, progress=False, runner=None)
    with rb.open_store(store_url) as store:
        assert store.get_run(on_ray.run_id).runner == "ray:local"
        assert store.get_run(here.run_id).runner in ("local", "ray:local")  # RIVERBED_RUNNER
        assert store.get_run(on_ray.run_id).to_dict()["runner"] == "ray:local"


def test_workflow_steps_run_as_ray_tasks_and_are_recorded(tmp_path: Path) -> None:
    flow = rb.Flow("steps-on-ray")
    flow.input().map(worker_pid, name="where").output()
    result = rb.run(flow, 1, runner=rb.RayRunner(parallelism=2), store=_store(tmp_path))
    assert result.ok
    assert result.output != os.getpid()  # the step ran in a Ray worker
    assert [step.stage for step in result.steps] == ["where"]


def test_a_workflow_step_whose_worker_dies_is_run_again(tmp_path: Path) -> None:
    """A step's worker killed: Ray runs the task again, as the step's retry policy allows."""
    flow = rb.Flow("step-dies")
    flow.input().map(DieFirstTime(tmp_path / "died"), name="double", retry=rb.Retry(2)).output()
    result = rb.run(flow, 21, runner=rb.RayRunner(parallelism=2), store=_store(tmp_path))
    assert (tmp_path / "died").exists()
    assert result.ok
    assert result.output == 42


def test_the_postgres_table_sink_stays_exactly_once_when_an_actor_dies(tmp_path: Path) -> None:
    """Rows written by the transactional sink: each (key, n) once, though an actor was
    killed mid-run and the run rolled back to its checkpoint."""
    url = require_postgres()
    import psycopg

    table = f"ray_rows_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (key INT, n INT)")
    try:
        flow = rb.Flow("ray-exactly-once")
        flow.source(range(EVENTS), name="numbers").map(
            DieOnce(tmp_path / "died", at=EVENTS // 2, how="sigkill"), name="die"
        ).key_by(key_of, name="key").stateful(Count, Count.add, name="count").sink(
            PostgresTable(url, table, ["key", "n"]), name="rows"
        )
        result = flow.run(
            runner=rb.RayRunner(parallelism=2),
            store=_store(tmp_path),
            checkpoint_events=2_000,
            progress=False,
        )
        assert (tmp_path / "died").exists()
        assert result.ok, result.summary()
        with psycopg.connect(url) as conn:
            rows = conn.execute(f"SELECT key, n FROM {table}").fetchall()
        per_key = EVENTS // 50
        assert len(rows) == EVENTS
        assert sorted(rows) == sorted((k, n) for k in range(50) for n in range(1, per_key + 1))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_a_ray_run_leaves_pythons_print_alone(tmp_path: Path) -> None:
    """Ray's driver would replace ``builtins.print`` with its own on a worker's first
    output; after a Ray run, ``print`` is still Python's and a flow that names it still
    saves as JSON (a fresh process: this one's Ray showed output long ago)."""
    script = (
        "import json, sys, ray\n"
        "ray.init(address='local', num_cpus=2, include_dashboard=False)\n"
        "from tests.ray.flows import keeps_print\n"
        "sys.__stdout__.write(json.dumps(keeps_print()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_TQDM_PATCH_PRINT"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"ok": True, "same_print": True, "saved": True}
