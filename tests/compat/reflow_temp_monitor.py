# ruff: noqa: UP006, UP035, SIM105 - written as REFlow users write it (typing.List, try-pass)
"""The temperature-monitor quickstart of REFlow's README ("learn to write a basic flow by
studying the temperature monitor flow"), written against REFlow's API as its example
shows it: a simulated machine shop whose readings are categorized per machine (routed by
machine), with only the changes of category reaching the sink. Only the import line is
riverbed's; ``tests/compat/test_reflow_quickstart.py`` runs it as a script."""

import asyncio
import logging
import random
from typing import List, Tuple

from riverbed.compat.reflow import (
    EndOfStreamException,
    EventSink,
    EventSource,
    EventTransformer,
    FlowCluster,
    KeyBasedRoutingPolicy,
)


class RandomWalkTempSimulator:
    """Temperatures that wander by a random step at each reading, up to ``max_count``."""

    def __init__(self, initial_temp: float, steps: List[float], max_count: int = 0):
        self.temp = initial_temp
        self.steps = steps
        self.count = 0
        self.max_count = max_count

    def next(self, limit: int) -> List[float]:
        wanted = min(limit, self.max_count - self.count) if self.max_count > 0 else limit
        if wanted == 0:
            raise EndOfStreamException
        readings = []
        for _ in range(wanted):
            self.temp += random.choice(self.steps)
            readings.append(self.temp)
        self.count += wanted
        return readings


class MachineShopSimulator:
    """Several machines, each a random walk; events are ``(machine, temperature)``."""

    def __init__(self, machine_count: int, max_events_per_machine: int):
        self.machines = [
            RandomWalkTempSimulator(98.0, [-2.0, -1.0, 0.0, 1.0, 2.0], max_events_per_machine)
            for _ in range(machine_count)
        ]

    def next(self, limit: int) -> List[Tuple[int, float]]:
        per_machine = max(limit // len(self.machines), 1)
        events = []
        for number, machine in enumerate(self.machines):
            try:
                events.extend((number, temp) for temp in machine.next(per_machine))
            except EndOfStreamException:
                pass
            if len(events) + per_machine > limit:
                break
        if not events:
            raise EndOfStreamException
        return events


def categorize_temp(event: Tuple[int, float]) -> List[Tuple[int, float, str]]:
    machine, temp = event
    if temp < 97.0:
        status = "COLD"
    elif temp > 99.0:
        status = "HOT"
    else:
        status = "NOMINAL"
    return [(machine, temp, status)]


class ChangeDetector:
    """Passes an event on only when its machine's status changed."""

    def __init__(self):
        self.status_of = {}

    def filter_event(self, event: Tuple[int, float, str]) -> List[Tuple[int, float, str]]:
        machine, _, status = event
        if self.status_of.get(machine) == status:
            return []
        self.status_of[machine] = status
        return [event]


def print_sink(events: List[Tuple[int, float, str]]) -> int:
    for event in events:
        print(f"EVENT: {event}")
    return len(events)


def create_flow() -> EventSource:
    source = EventSource(lambda: MachineShopSimulator(5, 100), max_workers=1).with_producer_fn(
        MachineShopSimulator.next
    )
    categorize = EventTransformer(expansion_factor=1.0).with_transform_fn(categorize_temp)
    change_detector = EventTransformer(
        init_fn=ChangeDetector, expansion_factor=1.0
    ).with_transform_fn(ChangeDetector.filter_event)
    sink = EventSink().with_consumer_fn(print_sink)
    source.send_to(
        categorize, routing_policy=KeyBasedRoutingPolicy(lambda event: event[0])
    ).send_to(change_detector).send_to(sink)
    return source


if __name__ == "__main__":
    engine_addresses = ["tcp://localhost:5001", "tcp://localhost:5002"]

    async def deploy_and_wait_for_flow(
        engine_addresses: List[str], flow: EventSource, timeout_secs: int
    ):
        flow_cluster = FlowCluster(engine_addresses)
        job_id = await flow_cluster.deploy(flow)
        await flow_cluster.wait_for_completion(job_id, timeout_secs)

    logging.basicConfig(level=logging.INFO)
    flow = create_flow()
    asyncio.run(deploy_and_wait_for_flow(engine_addresses, flow, 10))
