"""The behaviours REFlow states, on riverbed through ``riverbed.compat.reflow``: key-based
and load-balanced routing, per-worker state, expansion and filtering, sinks that consume
part of a batch (flow control), end of stream; on local engines and on Ray."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

import pytest

import riverbed as rb
from riverbed.compat import reflow


@pytest.fixture(params=["local", "ray"])
def engines(request: pytest.FixtureRequest) -> list[str]:
    """Two engines: local ones (the local runner), or two of a Ray instance."""
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
        return ["ray", "ray"]
    return ["tcp://localhost:5001", "tcp://localhost:5002"]


class Numbers:
    """A producer's state: 0 .. end-1, at most ``limit`` per call."""

    def __init__(self, end: int) -> None:
        self.at, self.end = 0, end

    def next(self, limit: int) -> list[int]:
        if self.at >= self.end:
            raise reflow.EndOfStreamException
        batch = list(range(self.at, min(self.end, self.at + limit)))
        self.at += len(batch)
        return batch


class Tagger:
    """A transformer's state: a name of its own, given to every event it sees."""

    made = 0

    def __init__(self) -> None:
        Tagger.made += 1
        self.name = f"worker-{id(self)}"

    def tag(self, event: int) -> list[tuple[str, int]]:
        return [(self.name, event)]


def _source(end: int) -> reflow.EventSource:
    return reflow.EventSource(lambda: Numbers(end), max_workers=1).with_producer_fn(Numbers.next)


def _deploy(engines: list[str], source: reflow.EventSource, **cluster: Any) -> rb.RunResult:
    async def deploy_and_wait() -> rb.RunResult:
        flow_cluster = reflow.FlowCluster(engines, **cluster)
        job_id = await flow_cluster.deploy(source)
        assert await flow_cluster.wait_for_completion(job_id, 60)
        return flow_cluster.result(job_id)

    return asyncio.run(deploy_and_wait())


def _collect(into: list[Any]) -> reflow.EventSink:
    def consume(events: list[Any]) -> int:
        into.extend(events)
        return len(events)

    return reflow.EventSink().with_consumer_fn(consume)


def test_key_based_routing_gives_each_key_one_worker(engines: list[str]) -> None:
    """With KeyBasedRoutingPolicy, every event of a key reaches the same worker (state),
    the one ``rb.stable_hash`` picks; two workers share the keys."""
    seen: list[tuple[str, int]] = []
    source = _source(200)
    tagger = reflow.EventTransformer(1.0, init_fn=Tagger).with_transform_fn(Tagger.tag)
    source.send_to(tagger, routing_policy=reflow.KeyBasedRoutingPolicy(lambda n: n % 10)).send_to(
        _collect(seen)
    )
    assert _deploy(engines, source, store=False).ok
    assert sorted(n for _, n in seen) == list(range(200))
    workers_of_key: dict[int, set[str]] = defaultdict(set)
    for worker, n in seen:
        workers_of_key[n % 10].add(worker)
    assert all(len(workers) == 1 for workers in workers_of_key.values())
    assert len({worker for worker, _ in seen}) == 2  # two engines, two workers, both used
    policy = reflow.KeyBasedRoutingPolicy(lambda n: n % 10)
    groups: dict[int, set[str]] = defaultdict(set)
    for key, workers in workers_of_key.items():
        groups[policy.worker(0, key, 2)] |= workers  # the worker stable_hash picks
    assert all(len(workers) == 1 for workers in groups.values())


def test_load_balanced_routing_spreads_events_evenly(engines: list[str]) -> None:
    """LoadBalancedRoutingPolicy sends events to the next stage's workers in turn."""
    seen: list[tuple[str, int]] = []
    source = _source(100)
    tagger = reflow.EventTransformer(1.0, init_fn=Tagger).with_transform_fn(Tagger.tag)
    source.send_to(tagger, routing_policy=reflow.LoadBalancedRoutingPolicy()).send_to(
        _collect(seen)
    )
    assert _deploy(engines, source, store=False).ok
    assert sorted(n for _, n in seen) == list(range(100))
    assert sorted(Counter(worker for worker, _ in seen).values()) == [50, 50]


def test_max_workers_bounds_a_stages_workers(engines: list[str]) -> None:
    """``max_workers=1`` gives a stage one worker however many engines there are."""
    seen: list[tuple[str, int]] = []
    source = _source(50)
    tagger = reflow.EventTransformer(1.0, init_fn=Tagger, max_workers=1).with_transform_fn(
        Tagger.tag
    )
    source.send_to(tagger, routing_policy=reflow.LoadBalancedRoutingPolicy()).send_to(
        _collect(seen)
    )
    assert _deploy(engines, source, store=False).ok
    assert len({worker for worker, _ in seen}) == 1


def test_transformers_filter_and_split(engines: list[str]) -> None:
    """A transform returning ``[]`` drops the event, several events split it; fan-out
    sends every event to each downstream stage."""
    split: list[Any] = []
    everything: list[Any] = []
    source = _source(30)
    evens = reflow.EventTransformer(0.5).with_transform_fn(lambda n: [n] if n % 2 == 0 else [])
    triple = reflow.EventTransformer(3).with_transform_fn(lambda n: [n, n + 0.1, n + 0.2])
    source.send_to(evens).send_to(triple).send_to(_collect(split))
    source.send_to(_collect(everything))
    assert _deploy(engines, source, store=False).ok
    assert sorted(split) == sorted(x + d for x in range(0, 30, 2) for d in (0, 0.1, 0.2))
    assert sorted(everything) == list(range(30))


def test_a_slow_sink_is_offered_the_rest_in_order(engines: list[str]) -> None:
    """Flow control: a consumer that takes half of each batch gets the rest again, in
    order; every event is consumed once."""
    consumed: list[int] = []
    offers: list[int] = []

    def slow_sink(events: list[int]) -> int:
        offers.append(len(events))
        taken = max(len(events) // 2, 1)
        consumed.extend(events[:taken])
        return taken

    source = _source(300)
    source.send_to(reflow.EventSink().with_consumer_fn(slow_sink))
    assert _deploy(engines, source, store=False).ok
    assert consumed == list(range(300))
    assert offers[:4] == [300, 150, 75, 38]  # each offer is the rest of the last one


def test_backpressure_holds_the_source_to_the_sinks_pace(engines: list[str]) -> None:
    """Flow control: while the sink consumes two events per call, the producer is never
    far ahead of it, through a transformer that doubles every event."""
    consumed: list[int] = []
    ahead: list[int] = []
    made = [0]

    def produce(limit: int) -> list[int]:
        if made[0] >= 3000:
            raise reflow.EndOfStreamException
        ahead.append(2 * made[0] - len(consumed))
        batch = list(range(made[0], made[0] + 10))
        made[0] += 10
        return batch

    def two_at_a_time(events: list[int]) -> int:
        consumed.extend(events[:2])
        return min(2, len(events))

    source = reflow.EventSource(max_workers=1).with_producer_fn(produce)
    source.send_to(reflow.EventTransformer(2).with_transform_fn(lambda n: [n, -n - 1])).send_to(
        reflow.EventSink().with_consumer_fn(two_at_a_time)
    )
    assert _deploy(engines, source, store=False, batch_size=10).ok
    assert sorted(consumed) == sorted([*range(3000), *range(-3000, 0)])
    assert max(ahead) < 2000  # the sink's 6000 events were never all in flight


def test_sink_state_and_async_connectors(engines: list[str]) -> None:
    """A sink's ``init_fn`` made by ``flow_connector_factory`` (async) gives the consumer
    its state; an async producer ends with EndOfStreamException."""
    store: dict[str, list[int]] = {}

    @reflow.flow_connector_factory
    async def connect(name: str) -> list[int]:
        await asyncio.sleep(0)
        return store.setdefault(name, [])

    left = [5]

    async def produce(limit: int) -> list[int]:
        if not left[0]:
            raise reflow.EndOfStreamException
        left[0] -= 1
        return [left[0]]

    def write(table: list[int], events: list[int]) -> int:
        table.extend(events)
        return len(events)

    source = reflow.EventSource(max_workers=1).with_producer_fn(produce)
    source.send_to(reflow.EventSink(connect("table")).with_consumer_fn(write))
    assert _deploy(engines, source, store=False).ok
    assert store == {"table": [4, 3, 2, 1, 0]}


def test_wait_for_completion_times_out_and_shutdown_cancels() -> None:
    """A flow that never ends: wait_for_completion returns False at its timeout, and
    request_shutdown stops it (its run recorded CANCELLED)."""

    def forever(limit: int) -> list[int]:
        return [1]

    async def main() -> tuple[bool, rb.RunStatus]:
        cluster = reflow.FlowCluster(["local"])
        source = reflow.EventSource().with_producer_fn(forever)
        source.send_to(reflow.EventSink().with_consumer_fn(len))
        job_id = await cluster.deploy(source)
        finished = await cluster.wait_for_completion(job_id, 0.3)
        await cluster.request_shutdown()
        stored = rb.open_store(None).get_run(job_id)
        return finished, stored.status

    assert asyncio.run(main()) == (False, rb.RunStatus.CANCELLED)


def test_bad_graphs_and_addresses_are_named() -> None:
    """Unknown engine addresses, mixed clusters, a stage without its function, a sink
    sending on: clear errors."""
    with pytest.raises(ValueError, match="neither a local engine"):
        reflow.FlowCluster(["http://x"])
    with pytest.raises(ValueError, match="mix clusters"):
        reflow.FlowCluster(["ray", "tcp://localhost:5001"])
    with pytest.raises(ValueError, match="call with_producer_fn"):
        reflow.to_flow(reflow.EventSource())
    with pytest.raises(TypeError, match="ends a flow"):
        reflow.EventSink().send_to(reflow.EventSink())
