"""CONNECTORS: events per second read from Redis Streams and NATS JetStream through
riverbed into a counting sink, beside the client library's own loop reading the same
messages with the same batch size (and acknowledging them as it goes), in the same run.

For each server: ``EVENTS`` JSON messages are written once; each variant reads all of them
through a consumer of its own (a new group or durable consumer), decodes them and counts
them. riverbed runs twice: without a store (no checkpoints, nothing acked: the source's
own cost) and recorded with checkpoints every ``CHECKPOINT_EVENTS`` events (acks after each
commit: the cost of the checkpoint acks). The ratio is riverbed's rate over the client
loop's (target: >= 0.8). Needs the servers of tests/services.py and the redis and nats
extras; a missing one is reported as a failure of that variant.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

import riverbed as rb

EVENTS = 20_000
BATCH = 500
CHECKPOINT_EVENTS = 5_000
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"


class Counter:
    """The counting sink: how many events, and the sum of their ids (the check)."""

    def __init__(self) -> None:
        self.count = 0
        self.ids = 0

    def write_batch(self, events: list[dict[str, Any]]) -> None:
        """Count ``events``."""
        self.count += len(events)
        self.ids += sum(e["id"] for e in events)


def _check(counter: Counter) -> None:
    want = EVENTS * (EVENTS - 1) // 2
    if counter.count != EVENTS or counter.ids != want:
        raise RuntimeError(f"read {counter.count} events (ids {counter.ids}), not {EVENTS}")


def _riverbed(source: Any, store: bool) -> None:
    counter = Counter()
    flow = rb.Flow("bench-connector")
    flow.source(source, name="read").sink(counter, name="count")
    options: dict[str, Any] = {"store": False}
    if store:
        folder = tempfile.mkdtemp()
        options = {
            "store": rb.open_store(f"sqlite:///{folder}/runs.db"),
            "checkpoint_events": CHECKPOINT_EVENTS,
        }
    result = flow.run(progress=False, batch_size=BATCH, **options)
    if not result.ok:
        raise RuntimeError(result.summary())
    _check(counter)


# -- Redis Streams ---------------------------------------------------------------------------


def _redis_fill() -> str:
    import redis

    stream = f"bench-{uuid.uuid4().hex[:8]}"
    conn = redis.Redis.from_url(REDIS_URL)
    pipe = conn.pipeline(transaction=False)
    for i in range(EVENTS):
        pipe.xadd(stream, {"data": json.dumps({"id": i, "key": i % 100})})
    pipe.execute()
    return stream


def _redis_client_loop(stream: str) -> None:
    """redis-py's own consumer-group loop: XREADGROUP a batch, decode, count, XACK."""
    import redis

    async def loop() -> None:
        conn = redis.asyncio.from_url(REDIS_URL)
        group = uuid.uuid4().hex[:8]
        await conn.xgroup_create(stream, group, "0")
        counter = Counter()
        while counter.count < EVENTS:
            answer = await conn.xreadgroup(group, "c", {stream: ">"}, count=BATCH, block=1000)
            entries = answer[0][1]
            counter.write_batch([json.loads(fields[b"data"]) for _, fields in entries])
            await conn.xack(stream, group, *[entry_id for entry_id, _ in entries])
        await conn.aclose()
        _check(counter)

    asyncio.run(loop())


def _redis_riverbed(stream: str, store: bool) -> None:
    from riverbed.connectors import RedisStreamSource

    group = uuid.uuid4().hex[:8]
    _riverbed(RedisStreamSource(REDIS_URL, stream, group=group, idle_timeout=0.2, block=0.1), store)


# -- NATS JetStream --------------------------------------------------------------------------


async def _nats(work: Callable[[Any], Any]) -> Any:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


def _nats_fill() -> str:
    name = f"BENCH_{uuid.uuid4().hex[:8]}"

    async def fill(js: Any) -> None:
        await js.add_stream(name=name, subjects=[f"{name}.>"])
        for start in range(0, EVENTS, 1000):
            await asyncio.gather(
                *(
                    js.publish(f"{name}.in", json.dumps({"id": i, "key": i % 100}).encode())
                    for i in range(start, min(EVENTS, start + 1000))
                )
            )

    asyncio.run(_nats(fill))
    return name


def _nats_client_loop(name: str) -> None:
    """nats-py's own pull-consumer loop: fetch a batch, decode, count, ack the last (ack
    policy all, as the connector)."""
    import nats

    async def loop(js: Any) -> None:
        config = nats.js.api.ConsumerConfig(ack_policy=nats.js.api.AckPolicy.ALL)
        sub = await js.pull_subscribe(f"{name}.in", durable=uuid.uuid4().hex[:8], config=config)
        counter = Counter()
        while counter.count < EVENTS:
            messages = await sub.fetch(BATCH, timeout=1.0)
            counter.write_batch([json.loads(m.data) for m in messages])
            await messages[-1].ack()
        _check(counter)

    asyncio.run(_nats(loop))


def _nats_riverbed(name: str, store: bool) -> None:
    from riverbed.connectors import JetStreamSource

    durable = uuid.uuid4().hex[:8]
    source = JetStreamSource(NATS_URL, name, durable=durable, fetch_timeout=0.2, idle_timeout=0.3)
    _riverbed(source, store)


SERVERS: dict[str, tuple[Callable[[], str], Callable[[str], None], Callable[[str, bool], None]]] = {
    "Redis Streams": (_redis_fill, _redis_client_loop, _redis_riverbed),
    "NATS JetStream": (_nats_fill, _nats_client_loop, _nats_riverbed),
}
IDLE = {"Redis Streams": 0.2, "NATS JetStream": 0.3}
"""Seconds riverbed's run waits idle at its end (``idle_timeout``), subtracted from its time."""


def _timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _measure(server: str, repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    fill, client_loop, riverbed_read = SERVERS[server]
    target = fill()
    idle = IDLE[server]
    seconds: dict[str, list[float]] = {"client loop": [], "riverbed": [], "riverbed+acks": []}
    for repeat in range(repeats):
        seconds["client loop"].append(_timed(lambda: client_loop(target)))
        seconds["riverbed"].append(_timed(lambda: riverbed_read(target, False)) - idle)
        seconds["riverbed+acks"].append(_timed(lambda: riverbed_read(target, True)) - idle)
        log(
            f"  CONNECTORS {server} repeat {repeat + 1}/{repeats}: "
            + ", ".join(f"{name} {runs[-1]:.2f} s" for name, runs in seconds.items())
        )
    eps = {name: EVENTS / statistics.median(runs) for name, runs in seconds.items()}

    def ratio(name: str) -> float:
        return statistics.median(
            c / r for c, r in zip(seconds["client loop"], seconds[name], strict=True)
        )

    return {
        "seconds": {name: statistics.median(runs) for name, runs in seconds.items()},
        "runs_seconds": seconds,
        "eps": eps,
        "ratio_client": ratio("riverbed"),
        "ratio_client_with_acks": ratio("riverbed+acks"),
    }


def run_connectors(repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The CONNECTORS record: per server, rates, ratios to the client's own loop, and any
    failure."""
    record: dict[str, Any] = {
        "workload": "CONNECTORS",
        "description": "read JSON messages into a counting sink: riverbed vs the client's loop",
        "events": EVENTS,
        "batch_size": BATCH,
        "checkpoint_events": CHECKPOINT_EVENTS,
        "repeats": repeats,
        "targets": {"ratio_client": 0.8},
        "servers": {},
        "failures": {},
    }
    for server in SERVERS:
        try:
            record["servers"][server] = _measure(server, repeats, log)
        except Exception as error:
            record["failures"][server] = "".join(traceback.format_exception(error)).rstrip()
            log(f"  CONNECTORS {server}: FAILED ({type(error).__name__}: {error})")
    return record


def print_table(record: dict[str, Any], console: Console) -> None:
    """Per server: events/s of each variant, and the ratios to the client's own loop."""
    table = Table(
        title=f"CONNECTORS: {record['events']:,} messages, batch {record['batch_size']}, "
        f"medians of {record['repeats']} run(s)"
    )
    for column in ("server", "client loop", "riverbed", "ratio", "riverbed + acks", "ratio"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for server, figures in record["servers"].items():
        eps = figures["eps"]
        table.add_row(
            server,
            f"{eps['client loop']:,.0f}",
            f"{eps['riverbed']:,.0f}",
            f"{figures['ratio_client']:.2f}",
            f"{eps['riverbed+acks']:,.0f}",
            f"{figures['ratio_client_with_acks']:.2f}",
        )
    console.print(table)
    for server in record["failures"]:
        console.print(f"[red]CONNECTORS {server} failed[/red] (see the JSON)")
