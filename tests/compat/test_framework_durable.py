"""``riverbed.compat.framework``: rendezvous orphan policies, load balancer gap policies,
persisted builders replayed from the store, and pipelines as recorded, resumable runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import riverbed as rb
from riverbed.cli import app
from riverbed.compat.framework import (
    AbstractProcessor,
    Context,
    Event,
    MaxPendingRendezvousKeys,
    Pipeline,
    ReactiveBuilder,
    ReactiveEvent,
    SkipAheadOnBacklog,
    WaitForRendezvousOrphans,
    WaitForSequenceGaps,
    make_load_balancer,
    make_rendezvous,
    parallelize,
)


class Recorder(AbstractProcessor):
    """Records the artifacts built for its target."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.log: list[Any] = []

    def process(self, context: Context, event: Event) -> None:
        match event:
            case ReactiveEvent(name="built", target=target, artifact=artifact):
                if target == self.target:
                    self.log.append(artifact)


class Ledger(ReactiveBuilder):
    """Orders for keys 1, 2, 3 then payments for 3, 2, 1: one source, in this order."""

    def build(self, context: Context) -> Any:
        yield from [("order", 1), ("order", 2), ("order", 3)]
        yield from [("payment", 3), ("payment", 2), ("payment", 1)]


class Only(ReactiveBuilder):
    """The ledger entries of one kind."""

    def build(self, context: Context, entry: Any) -> Any:
        if entry[0] == self.provides.rstrip("s"):
            yield {"id": entry[1], "kind": entry[0]}


def rendezvous(policy: Any) -> list[Any]:
    publisher, *receivers = make_rendezvous(
        "paid", ["orders", "payments"], keys=["id", "id"], orphan_policy=policy
    )
    recorder = Recorder("paid")
    pipeline = Pipeline(
        [
            Ledger("ledger"),
            Only("orders", ["ledger"]),
            Only("payments", ["ledger"]),
            publisher,
            *receivers,
            recorder,
        ]
    )
    pipeline.submit(ReactiveEvent(name="resolve", target="paid"))
    result = pipeline.run()
    assert result.status is rb.RunStatus.SUCCEEDED
    return [(order["id"], payment["id"]) for order, payment in recorder.log]


def test_rendezvous_joins_by_key_and_its_orphan_policy_bounds_waiting_keys() -> None:
    """make_rendezvous returns (publisher, receiver_0, receiver_1); WaitForRendezvousOrphans
    keeps every key until its partner comes; MaxPendingRendezvousKeys(max_pending=1) keeps
    one, so orders 1 and 2 are evicted by the next before their payments come."""
    assert sorted(rendezvous(WaitForRendezvousOrphans())) == [(1, 1), (2, 2), (3, 3)]
    assert rendezvous(MaxPendingRendezvousKeys(max_pending=1)) == [(3, 3)]
    with pytest.raises(ValueError, match="one key per requirement"):
        make_rendezvous("x", ["a", "b"], keys=["id"])


class Slow(ReactiveBuilder):
    """A worker: the first item is slow, the others quick."""

    def build(self, context: Context, n: int) -> Any:
        time.sleep(0.4 if n == 0 else 0.001)
        yield n * 10


class Items(ReactiveBuilder):
    def build(self, context: Context) -> Any:
        yield from range(12)


def balanced(**options: Any) -> list[int]:
    recorder = Recorder("results")
    parts = make_load_balancer("results", ["items"], Slow, num_workers=4, **options)
    pipeline = Pipeline([Items("items"), *parts, recorder])
    pipeline.submit(ReactiveEvent(name="resolve", target="results"))
    pipeline.run()
    return recorder.log


def test_load_balancer_keeps_fifo_and_its_gap_policies() -> None:
    """preserve_fifo with WaitForSequenceGaps keeps input order behind the slow first item;
    SkipAheadOnBacklog(max_buffered=2) lets results past it; preserve_fifo=False emits as
    they come. Every result comes out once in all three."""
    expected = [n * 10 for n in range(12)]
    assert balanced(gap_policy=WaitForSequenceGaps()) == expected
    skipped = balanced(gap_policy=SkipAheadOnBacklog(max_buffered=2))
    assert sorted(skipped) == expected
    assert skipped[0] != 0
    unordered = balanced(preserve_fifo=False)
    assert sorted(unordered) == expected
    assert unordered[0] != 0
    assert parallelize is make_load_balancer


class Squares(ReactiveBuilder):
    calls = 0

    def build(self, context: Context, n: int) -> Any:
        Squares.calls += 1
        yield n * n


def test_persisted_artifacts_replay_from_the_workspace(tmp_path: Path) -> None:
    """persist=True with a workspace: a later resolve replays the artifacts from the store
    without calling build."""

    def resolve() -> list[Any]:
        recorder = Recorder("squares")
        pipeline = Pipeline(
            [Items("items"), Squares("squares", ["items"], persist=True), recorder],
            workspace=tmp_path / "workspace",
        )
        pipeline.submit(ReactiveEvent(name="resolve", target="squares"))
        pipeline.run()
        return recorder.log

    Squares.calls = 0
    first = resolve()
    assert Squares.calls == 12
    assert resolve() == first == [n * n for n in range(12)]
    assert Squares.calls == 12  # the second resolve called nothing


class Flaky(AbstractProcessor):
    broken = True

    def process(self, context: Context, event: Event) -> None:
        match event:
            case Event(name="job", n=n):
                if Flaky.broken and n == 2:
                    raise RuntimeError("job 2 failed")
                context.submit(Event(name="done", n=n))


def test_a_pipeline_with_a_store_is_a_recorded_resumable_run(tmp_path: Path) -> None:
    """Given a store, a pipeline's run is recorded, listed by `riverbed runs list`, and a
    failed one resumes after the fix."""
    url = f"sqlite:///{tmp_path}/runs.db"

    def pipeline() -> Pipeline:
        built = Pipeline([Flaky()], store=url, name="jobs")
        for n in range(4):
            built.submit(Event(name="job", n=n))
        return built

    Flaky.broken = True
    with pytest.raises(rb.RunFailedError) as failed:
        pipeline().run()
    run_id = failed.value.result.run_id
    Flaky.broken = False
    resumed = pipeline().run(resume=run_id)
    assert resumed.status is rb.RunStatus.SUCCEEDED
    assert resumed.run_id == run_id
    listed = CliRunner().invoke(app, ["runs", "list", "--store", url, "--json"])
    rows = json.loads(listed.stdout)
    assert [(r["run_id"], r["flow"], r["status"]) for r in rows] == [(run_id, "jobs", "succeeded")]
