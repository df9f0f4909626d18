"""Kill a connector's durable run with SIGKILL at random moments, resume it each time,
then check it: per-key state exact, every event in the exactly-once sink once, and in an
at-least-once sink at least once (its duplicates counted).

    python -m tests.connectors.crash KIND --kills 100     (make soak)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.connectors import crash_app
from tests.durability.crash_flow import read_results
from tests.durability.processes import child_env, python


@dataclass
class Report:
    """What a crash run did and found."""

    kills: int = 0
    runs_checked: int = 0
    """Runs that finished and were checked (a run that finishes before its next kill is
    checked, and a new one, with new events, takes the remaining kills)."""
    failures: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    """Per at-least-once sink: events written more than once (allowed, counted)."""
    seconds: float = 0.0


def run(kind: str, kills: int, *, seed: int = 0, max_delay: float = 2.0) -> Report:
    """Kill runs ``kills`` times in all, let the last one finish, and check every run.

    A run can finish before the kills are all spent (a quiet machine runs it fast): it is
    checked, and a new run over new events takes the remaining kills."""
    rng = random.Random(seed)
    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        while not report.failures and (report.runs_checked == 0 or report.kills < kills):
            cycle = Path(scratch, f"run{report.runs_checked}")
            cycle.mkdir()
            _kill_until_finished(kind, cycle, kills, rng, report, max_delay)
    report.seconds = time.monotonic() - started
    return report


def _kill_until_finished(
    kind: str, scratch: Path, kills: int, rng: random.Random, report: Report, max_delay: float
) -> None:
    """One run over new events: killed at random moments while ``report`` still owes
    kills, resumed each time, then left to finish, and checked."""
    target = _prepare(kind, scratch)
    store = f"sqlite:///{scratch}/runs.db"
    results = f"{scratch}/results.db"
    args = ["-m", "tests.connectors.crash_app", kind, store, results, uuid.uuid4().hex[:16]]
    try:
        while True:
            if report.kills >= kills:  # the last run reads everything that will come
                _join_publishers()
            process = python(*args, target, env=child_env())
            if report.kills < kills:
                try:
                    process.wait(timeout=rng.uniform(0.3, max_delay))
                except subprocess.TimeoutExpired:  # still running: the moment to kill it
                    process.send_signal(signal.SIGKILL)
                    process.communicate()
                    report.kills += 1
                    continue
            _, err = process.communicate(timeout=120)
            if process.returncode != 0:
                report.failures.append(f"exited {process.returncode}: {err[-2000:]}")
                return
            break
        _join_publishers()
        _check(kind, target, results, report)
        report.runs_checked += 1
    finally:
        _clean(kind, target)


def _join_publishers() -> None:
    for publisher in _PUBLISHERS:
        publisher.join()
    _PUBLISHERS.clear()


def _prepare(kind: str, scratch: Path) -> str:
    """Write the events where ``kind``'s source reads them; the TARGET for the app."""
    events = crash_app.events_for(kind)
    lines = [json.dumps(crash_app.event(i)) + "\n" for i in range(events)]
    if kind == "files":
        (scratch / "in").mkdir()
        third = len(lines) // 3
        for n in range(3):
            (scratch / "in" / f"part{n}.jsonl").write_text(
                "".join(lines[n * third : (n + 1) * third])
            )
        return str(scratch)
    if kind == "nats":
        return _prepare_nats(lines)
    if kind == "rabbitmq":
        return _prepare_rabbitmq(lines)
    if kind == "mqtt":
        return _prepare_mqtt(lines)
    if kind == "postgres":
        return _prepare_postgres(lines)
    import redis

    from tests.services import REDIS_URL

    stream = f"rbtest-crash-{uuid.uuid4().hex[:8]}"
    conn = redis.Redis.from_url(REDIS_URL)
    pipe = conn.pipeline(transaction=False)
    for line in lines:
        pipe.xadd(stream, {"data": line.strip()})
    pipe.execute()
    return f"{REDIS_URL}#{stream}"


def _nats(url: str, work: Any) -> Any:
    import nats

    async def run() -> Any:
        nc = await nats.connect(url)
        try:
            return await work(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


def _prepare_nats(lines: list[str]) -> str:
    from tests.services import NATS_URL

    stream = f"RBTEST_CRASH_{uuid.uuid4().hex[:8]}"

    async def fill(js: Any) -> None:
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        for line in lines:
            await js.publish(f"{stream}.in", line.strip().encode())

    _nats(NATS_URL, fill)
    return f"{NATS_URL}#{stream}"


def _nats_ids(target: str) -> list[int]:
    url, _, stream = target.partition("#")

    async def read(js: Any) -> list[int]:
        sub = await js.pull_subscribe(f"{stream}.out", durable="check", stream=stream)
        ids: list[int] = []
        while True:
            try:
                batch = await sub.fetch(500, timeout=1)
            except Exception:  # noqa: BLE001 - nats-py's timeouts: nothing more to read
                return ids
            ids += [json.loads(m.data)["id"] for m in batch]
            for message in batch:
                await message.ack()

    return _nats(url, read)  # type: ignore[no-any-return]


async def _rabbit(url: str, work: Any) -> Any:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        return await work(await connection.channel())
    finally:
        await connection.close()


def _prepare_rabbitmq(lines: list[str]) -> str:
    import aio_pika

    from tests.services import RABBITMQ_URL

    queue = f"rbtest-crash-{uuid.uuid4().hex[:8]}"

    async def fill(channel: Any) -> None:
        await channel.declare_queue(queue, durable=True)
        for start in range(0, len(lines), 500):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(lines[i].strip().encode(), message_id=str(i)),
                        routing_key=queue,
                    )
                    for i in range(start, min(len(lines), start + 500))
                )
            )

    asyncio.run(_rabbit(RABBITMQ_URL, fill))
    return f"{RABBITMQ_URL}#{queue}"


def _rabbit_ids(target: str) -> list[int]:
    url, _, queue = target.partition("#")

    async def drain(channel: Any) -> list[int]:
        declared = await channel.declare_queue(f"{queue}-out", durable=True)
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        await declared.consume(inbox.put, no_ack=True)
        ids = []
        while True:  # until the queue stays quiet for a second
            try:
                message = await asyncio.wait_for(inbox.get(), 1.0)
            except TimeoutError:
                return ids
            ids.append(json.loads(message.body)["id"])

    return asyncio.run(_rabbit(url, drain))  # type: ignore[no-any-return]


def _prepare_postgres(lines: list[str]) -> str:
    import psycopg

    from tests.services import POSTGRES_URL

    table = f"rbtest_crash_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, payload JSONB)")
        conn.execute(f"CREATE TABLE {table}_out (id INTEGER)")
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} (payload) VALUES (%s::jsonb)", [(x,) for x in lines]
            )
    return f"{POSTGRES_URL}#{table}"


def _postgres_ids(target: str) -> list[int]:
    import psycopg

    url, _, table = target.partition("#")
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT id FROM {table}_out").fetchall()
    return [row[0] for row in rows]


_PUBLISHERS: list[threading.Thread] = []
"""Publishers that go on while runs are killed (MQTT keeps no history to pre-fill)."""

MQTT_SECONDS = 6.0
"""How long the MQTT events take to publish (while runs are killed)."""


def _prepare_mqtt(lines: list[str]) -> str:
    """Make the session (subscribed once), then publish the events, paced, in a thread."""
    import paho.mqtt.client as mqtt

    from riverbed.connectors import MQTTSource
    from tests.services import MQTT_URL

    tag = uuid.uuid4().hex[:8]
    topic, client_id = f"rbtest/crash-{tag}", f"rbtest-crash-{tag}"

    async def subscribe() -> None:
        reader = MQTTSource(MQTT_URL, f"{topic}/#", client_id=client_id, wait=0.2).open("", None)
        await reader.read(1)
        reader.close()

    asyncio.run(subscribe())

    def publish() -> None:
        paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        paho.connect("127.0.0.1", int(MQTT_URL.rsplit(":", 1)[1]))
        paho.loop_start()
        pause = MQTT_SECONDS / len(lines)
        infos = []
        for line in lines:
            infos.append(paho.publish(f"{topic}/in", line.strip(), qos=1))
            time.sleep(pause)
        for info in infos:
            info.wait_for_publish(30)
        paho.disconnect()
        paho.loop_stop()

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    _PUBLISHERS.append(thread)
    return f"{MQTT_URL}#{topic}#{client_id}"


def _ids(kind: str, target: str) -> dict[str, list[int]]:
    """Per copy sink, the ids of the events it holds, as often as it holds them."""
    if kind == "files":
        ids = []
        for part in sorted(Path(target, "out").glob("part-*")):
            ids += [json.loads(line)["id"] for line in part.read_text().splitlines()]
        return {"exactly-once": ids}
    if kind == "nats":
        return {"exactly-once": _nats_ids(target)}
    if kind == "rabbitmq":
        return {"at-least-once": _rabbit_ids(target)}
    if kind == "postgres":
        return {"exactly-once": _postgres_ids(target)}
    if kind == "mqtt":
        return {}  # the source's side only: MQTTSink's QoS 1 is tested in test_mqtt
    import redis

    url, _, stream = target.partition("#")
    conn = redis.Redis.from_url(url)

    def read(name: str) -> list[int]:
        return [json.loads(fields[b"data"])["id"] for _, fields in conn.xrange(name)]

    return {"exactly-once": read(f"{stream}:out"), "at-least-once": read(f"{stream}:plain")}


def _check(kind: str, target: str, results: str, report: Report) -> None:
    got = read_results(results)
    events = crash_app.events_for(kind)
    want = crash_app.expected(events)
    if got != want:
        wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        report.failures.append(f"{len(wrong)} keys differ (got, want): {wrong}")
    everything = set(range(events))
    for guarantee, ids in _ids(kind, target).items():
        missing = everything - set(ids)
        if missing:
            report.failures.append(f"{guarantee} sink lost {len(missing)} events")
        extra = len(ids) - len(set(ids))
        if guarantee == "exactly-once" and extra:
            report.failures.append(f"exactly-once sink wrote {extra} events twice")
        if guarantee == "at-least-once":
            report.duplicates[guarantee] = extra


def _clean(kind: str, target: str) -> None:
    if kind == "postgres":
        import psycopg

        url, _, table = target.partition("#")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}, {table}_out")
    if kind == "rabbitmq":
        url, _, queue = target.partition("#")

        async def drop(channel: Any) -> None:
            await channel.queue_delete(queue)
            await channel.queue_delete(f"{queue}-out")

        asyncio.run(_rabbit(url, drop))
    if kind == "nats":
        url, _, stream = target.partition("#")

        async def drop(js: Any) -> None:
            await js.delete_stream(stream)

        _nats(url, drop)
    if kind == "redis":
        import redis

        url, _, stream = target.partition("#")
        conn = redis.Redis.from_url(url)
        conn.delete(stream, f"{stream}:out", f"{stream}:plain")  # sink markers expire


def main() -> int:
    """The soak from the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["files", "redis", "nats", "rabbitmq", "mqtt", "postgres"])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = run(args.kind, args.kills, seed=args.seed)
    print(
        f"{args.kind}: {report.kills} kills, {report.runs_checked} runs checked "
        f"in {report.seconds:.0f} s, "
        f"{len(report.failures)} failures, duplicates {report.duplicates}"
    )
    for failure in report.failures:
        print(failure)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
