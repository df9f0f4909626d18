"""A PostgreSQL table as an incremental source: the rows whose ``column`` is greater
than the last one read, in its order, polled (or woken by LISTEN/NOTIFY).

The position is the last value of ``column`` read: a resumed run goes on right after it,
so its state is exactly-once. The column must grow with every new row (a ``bigserial``
id, an insertion timestamp). A row that becomes visible *after* a row with a greater
value (two transactions committing out of order) is not read: the same caveat as every
incremental query source (Kafka Connect's JDBC source has it too). Rows are dicts by
column name, with the types psycopg gives them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import time
from collections.abc import Sequence
from typing import Any

from riverbed.connectors._common import ConnectorError, client, retry_async
from riverbed.connectors.postgres import _ident

__all__ = ["PostgresTableSource"]


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    user = rest.partition("@")[0].partition(":")[0]
    return f"{scheme}://{user}@{rest.rpartition('@')[2]}"


def _jsonable(value: Any) -> Any:
    """A column value as a JSON-able position (cast back by the query)."""
    if isinstance(value, dt.date | dt.datetime | dt.time | decimal.Decimal):
        return str(value)
    return value


class PostgresTableSource:
    """Read the rows of ``table`` in the order of ``column``, from where the last run
    stopped, polling every ``poll`` seconds for new ones.

    ``columns`` chooses what each row holds (all by default). With ``notify`` (a channel
    name), the source LISTENs and reads as soon as a ``NOTIFY channel`` comes, polling
    only as a fallback. With ``idle_timeout``, it ends once nothing new came for that
    long. A lost connection is retried with backoff for ``retry_seconds``, then the run
    fails naming the connector and the server.

    >>> source = PostgresTableSource("postgresql://localhost/app", "orders", column="id")
    >>> flow.source(source).key_by(customer)  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        table: str,
        *,
        column: str,
        columns: Sequence[str] = (),
        poll: float = 1.0,
        notify: str | None = None,
        idle_timeout: float | None = None,
        retry_seconds: float = 30.0,
    ) -> None:
        if columns and column not in columns:
            raise ValueError(
                f"PostgresTableSource({table!r}): columns={list(columns)} must include the "
                f"column {column!r} that orders the rows (it is the position)"
            )
        self.url = url
        self.table = table
        self.column = column
        self.columns = tuple(columns)
        self.poll = poll
        self.notify = notify
        self.idle_timeout = idle_timeout
        self.retry_seconds = retry_seconds

    def __repr__(self) -> str:
        return f"PostgresTableSource({_redact(self.url)!r}, {self.table!r}, column={self.column!r})"

    def partitions(self) -> Sequence[str]:
        """One partition: the table."""
        return [self.table]

    def open(self, partition: str, position: Any | None) -> _TableReader:
        """A reader of the rows after ``position`` (a value of ``column``)."""
        return _TableReader(self, position)


class _TableReader:
    """Reads a ``PostgresTableSource``; the position is the last value of its column."""

    def __init__(self, source: PostgresTableSource, position: Any | None) -> None:
        self.source = source
        self.last = position
        self.conn: Any = None
        self.sql = ""
        self.idle_since = time.monotonic()

    async def _connect(self) -> None:
        psycopg = client("psycopg", "postgres", "PostgresTableSource")
        self.conn = await psycopg.AsyncConnection.connect(
            self.source.url, autocommit=True, connect_timeout=5
        )
        kind = await self.conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname = %s",
            (self.source.table, self.source.column),
        )
        found = await kind.fetchone()
        if found is None:
            raise ValueError(
                f"{self.source!r}: table {self.source.table!r} has no column {self.source.column!r}"
            )
        names = ", ".join(_ident(c) for c in self.source.columns) or "*"
        order = _ident(self.source.column)
        self.sql = (
            f"SELECT {names} FROM {_ident(self.source.table)} "
            f"WHERE %(after)s::text IS NULL OR {order} > %(after)s::text::{found[0]} "
            f"ORDER BY {order} LIMIT %(limit)s"
        )
        if self.source.notify is not None:
            await self.conn.execute(f"LISTEN {_ident(self.source.notify)}")

    async def _rows(self, limit: int) -> list[dict[str, Any]]:
        psycopg = client("psycopg", "postgres", "PostgresTableSource")
        rows = psycopg.rows.dict_row

        async def once() -> list[dict[str, Any]]:
            if self.conn is None or self.conn.closed:
                await self._connect()
            after = None if self.last is None else str(self.last)
            async with self.conn.cursor(row_factory=rows) as cursor:
                await cursor.execute(self.sql, {"after": after, "limit": limit})
                return list(await cursor.fetchall())

        try:
            return await retry_async(
                repr(self.source),
                once,
                (psycopg.OperationalError,),
                seconds=self.source.retry_seconds,
            )
        except psycopg.OperationalError as error:
            raise ConnectorError(
                f"{self.source!r}: PostgreSQL at {_redact(self.source.url)} is unreachable "
                f"({str(error).strip()}); retried for {self.source.retry_seconds:g} s. Check "
                "that the server runs and the URL is right",
                connector="PostgresTableSource",
                address=_redact(self.source.url),
            ) from error

    async def read(self, max_events: int) -> list[Any] | None:
        """The next rows after the position; when there are none, a wait for a NOTIFY or
        ``poll`` seconds."""
        rows = await self._rows(max_events)
        if rows:
            self.idle_since = time.monotonic()
            self.last = _jsonable(rows[-1][self.source.column])
            return rows
        idle = self.source.idle_timeout
        if idle is not None and time.monotonic() - self.idle_since >= idle:
            return None
        await self._wait()
        return []

    async def _wait(self) -> None:
        if self.source.notify is None or self.conn is None:
            await asyncio.sleep(self.source.poll)
            return
        async for _ in self.conn.notifies(timeout=self.source.poll, stop_after=1):
            pass

    def position(self) -> Any:
        """The last value of the column read."""
        return self.last

    async def close(self) -> None:
        """Close the connection."""
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await conn.close()
