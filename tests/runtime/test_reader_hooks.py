"""The optional reader hooks: ``committed(position)`` after each committed checkpoint
(the last one included, before the reader is closed), and ``rejected()`` into dead
letters of the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import riverbed as rb


class Acking:
    """A source of ``n`` numbers whose reader logs what it hears."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.log: list[Any] = []

    def partitions(self) -> list[str]:
        return ["p"]

    def open(self, partition: str, position: Any) -> AckingReader:
        return AckingReader(self, position or 0)


class AckingReader:
    def __init__(self, source: Acking, start: int) -> None:
        self.source = source
        self.at = start

    def read(self, max_events: int) -> list[Any] | None:
        if self.at >= self.source.n:
            return None
        batch = list(range(self.at, min(self.source.n, self.at + max_events)))
        self.at += len(batch)
        return batch

    def position(self) -> int:
        return self.at

    async def committed(self, position: int) -> None:
        self.source.log.append(("committed", position))

    def rejected(self) -> list[tuple[bytes, BaseException]]:
        if self.at == 20:
            return [(b"\x00bad", ValueError("not decodable"))]
        return []

    def close(self) -> None:
        self.source.log.append(("closed", self.at))


def test_readers_hear_of_each_commit_then_close(tmp_path: Path) -> None:
    """Each committed checkpoint tells the reader its position in it, in order; the last
    (at the end) comes before the reader is closed."""
    source = Acking(100)
    flow = rb.Flow("acks")
    flow.source(source, name="nums").sink(lambda n: None, name="out")
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")
    result = flow.run(store=store, progress=False, checkpoint_events=20, batch_size=10)
    assert result.ok
    committed = [p for what, p in source.log if what == "committed"]
    assert committed == sorted(committed)
    assert committed[-1] == 100
    assert source.log[-1] == ("closed", 100)
    assert len(committed) >= 2


def test_without_checkpoints_no_commit_is_heard() -> None:
    """A run without a store never calls ``committed``; the reader closes at its end."""
    source = Acking(30)
    flow = rb.Flow("acks")
    flow.source(source, name="nums").sink(lambda n: None, name="out")
    flow.run(store=False, progress=False, batch_size=10)
    assert source.log == [("closed", 30)]


def test_rejected_become_dead_letters_of_the_source() -> None:
    """What ``rejected()`` returns is stored as dead letters of the source's stage, with
    the raw bytes as the event; the run succeeds."""
    source = Acking(30)
    flow = rb.Flow("acks")
    flow.source(source, name="nums").sink(lambda n: None, name="out")
    result = flow.run(store=False, progress=False, batch_size=10)
    assert result.ok
    assert [(d.stage, d.event, d.message) for d in result.dead_letters] == [
        ("nums", b"\x00bad", "not decodable")
    ]
    assert result.stages["nums"].dead_lettered == 1


def test_a_failing_ack_fails_the_run_naming_the_source(tmp_path: Path) -> None:
    """A ``committed`` that raises fails the run, naming the source and partition."""

    class Failing(AckingReader):
        def committed(self, position: int) -> None:  # type: ignore[override]
            raise ConnectionError("broker gone")

    class Source(Acking):
        def open(self, partition: str, position: Any) -> AckingReader:
            return Failing(self, position or 0)

    flow = rb.Flow("acks")
    flow.source(Source(50), name="nums").sink(lambda n: None, name="out")
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")
    result = flow.run(
        store=store, progress=False, checkpoint_events=20, batch_size=10, raise_on_failure=False
    )
    assert not result.ok
    assert result.error is not None
    assert result.error.stage == "nums"
    assert "partition 'p' could not acknowledge" in result.error.message
    assert "broker gone" in result.error.message
