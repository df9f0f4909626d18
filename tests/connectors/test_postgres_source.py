"""PostgresTableSource against the real server: rows in the order of their column,
resumed right after the position, woken by NOTIFY, and a clear error for a wrong
address or column."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed.connectors import PostgresTableSource
from riverbed.testing import Capture
from tests.services import require_postgres


@pytest.fixture
def table() -> Iterator[tuple[str, str]]:
    """A table of the test's own (id bigserial, at timestamptz, key, value)."""
    import psycopg

    url = require_postgres()
    name = f"rbtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL "
            "DEFAULT clock_timestamp(), key TEXT, value INTEGER)"
        )
    yield url, name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")


def _insert(url: str, name: str, values: range) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {name} (key, value) VALUES (%s, %s)", [(f"k{v % 3}", v) for v in values]
        )


def test_reads_rows_in_order_and_resumes_after_the_position(
    table: tuple[str, str], tmp_path: Path
) -> None:
    """A run reads every row; a resumed run (its position the last value) reads only the
    rows added since; a timestamp column works as the position too."""
    url, name = table
    _insert(url, name, range(100))
    seen = Capture()
    flow = rb.Flow("pg-read")
    source = PostgresTableSource(url, name, column="id", poll=0.1, idle_timeout=0.3)
    flow.source(source, name="rows").sink(seen)
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")
    first = flow.run(store=store, progress=False, checkpoint_events=30, batch_size=25)
    assert [row["value"] for row in seen.items] == list(range(100))
    assert first.positions["rows"][name] == 100
    _insert(url, name, range(100, 130))
    reader = source.open(name, first.positions["rows"][name])
    by_time = PostgresTableSource(url, name, column="at", columns=["at", "value"])

    async def read() -> tuple[list[Any], list[Any]]:
        rows = await reader.read(100)
        await reader.close()
        timed = by_time.open(name, None)
        head = await timed.read(99)
        rest = by_time.open(name, timed.position())
        tail = await rest.read(100)
        await timed.close()
        await rest.close()
        return rows, [row["value"] for row in head + tail]

    rows, values = asyncio.run(read())
    assert [row["value"] for row in rows] == list(range(100, 130))
    assert values == list(range(130))


def test_notify_wakes_the_source(table: tuple[str, str]) -> None:
    """With notify=, a NOTIFY makes the source read at once, not at its next poll."""
    import psycopg

    url, name = table
    source = PostgresTableSource(url, name, column="id", poll=30, notify=f"{name}_new")

    async def scenario() -> float:
        reader = source.open(name, None)

        async def later() -> None:
            await asyncio.sleep(1.0)  # the reader is connected, listening, waiting
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"INSERT INTO {name} (key, value) VALUES ('k', 1)")
                await conn.execute(f"NOTIFY {name}_new")

        started = time.monotonic()
        waker = asyncio.create_task(later())
        rows: list[Any] = []
        while not rows:  # each empty read waits for a NOTIFY (or 30 s)
            rows = await reader.read(10)
        await waker
        await reader.close()
        assert [row["value"] for row in rows] == [1]
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 10


def test_wrong_address_or_column_is_a_clear_error(table: tuple[str, str]) -> None:
    """No server at the address, or a column the table lacks: the run fails saying so."""
    url, name = table
    for source, says in [
        (
            PostgresTableSource(
                "postgresql://postgres@127.0.0.1:1/test", name, column="id", retry_seconds=0.5
            ),
            "PostgreSQL at postgresql://postgres@127.0.0.1:1/test is unreachable",
        ),
        (PostgresTableSource(url, name, column="nope"), "has no column 'nope'"),
    ]:
        flow = rb.Flow("pg-read")
        flow.source(source, name="rows").sink(Capture())
        result = flow.run(store=False, progress=False, raise_on_failure=False)
        assert result.error is not None
        assert says in result.error.message
