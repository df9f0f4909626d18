"""A PostgreSQL table as an exactly-once sink.

Rows wait in the sink until the run's checkpoint that covers them is committed; then they
are inserted in one transaction together with a marker row naming that checkpoint (in
``riverbed_sink_commits``). A resumed run commits its checkpoint's rows again; the marker
is already there, so they are not inserted twice. Without checkpoints, rows are inserted
once when the run ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PostgresTable"]

_MARKERS = """
CREATE TABLE IF NOT EXISTS riverbed_sink_commits (
    key TEXT PRIMARY KEY,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


def _ident(name: str) -> str:
    """``name`` quoted as an SQL identifier (``schema.table`` keeps its dot)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


class PostgresTable:
    """Write events as rows of ``table`` at ``url``, exactly once across crashes.

    Events are mappings (their values for ``columns`` are taken by name) or sequences (by
    position). ``upsert_on`` names the columns of a unique key: a row whose key exists
    then updates it instead of failing.

    >>> sink = PostgresTable("postgresql://localhost/app", "readings", ["machine", "celsius"])
    >>> flow.source(readings).sink(sink)  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        table: str,
        columns: Sequence[str],
        *,
        upsert_on: Sequence[str] = (),
    ) -> None:
        if not columns:
            raise ValueError(f"PostgresTable({table!r}): name the columns to write")
        unknown = set(upsert_on) - set(columns)
        if unknown:
            raise ValueError(
                f"PostgresTable({table!r}): upsert_on names {sorted(unknown)}, which are not "
                f"among the columns {list(columns)}"
            )
        self.url = url
        self.table = table
        self.columns = tuple(columns)
        self.upsert_on = tuple(upsert_on)
        self._buffer: list[tuple[Any, ...]] = []
        self._ready = False
        self._sql = self._insert_sql()

    def __repr__(self) -> str:
        return f"PostgresTable({self.table!r})"

    def _insert_sql(self) -> str:
        names = ", ".join(_ident(c) for c in self.columns)
        values = ", ".join(["%s"] * len(self.columns))
        sql = f"INSERT INTO {_ident(self.table)} ({names}) VALUES ({values})"
        if self.upsert_on:
            keys = ", ".join(_ident(c) for c in self.upsert_on)
            rest = [c for c in self.columns if c not in self.upsert_on]
            updates = ", ".join(f"{_ident(c)} = EXCLUDED.{_ident(c)}" for c in rest)
            sql += f" ON CONFLICT ({keys}) " + (
                f"DO UPDATE SET {updates}" if rest else "DO NOTHING"
            )
        return sql

    def _row(self, event: Any) -> tuple[Any, ...]:
        if isinstance(event, Mapping):
            try:
                return tuple(event[c] for c in self.columns)
            except KeyError as missing:
                raise ValueError(
                    f"PostgresTable({self.table!r}): event {event!r:.80} has no {missing}"
                ) from None
        row = tuple(event)
        if len(row) != len(self.columns):
            raise ValueError(
                f"PostgresTable({self.table!r}): event {event!r:.80} has {len(row)} values "
                f"for {len(self.columns)} columns {list(self.columns)}"
            )
        return row

    def write_batch(self, events: list[Any]) -> None:
        """Keep the rows of ``events`` until the checkpoint that covers them."""
        self._buffer.extend(self._row(event) for event in events)

    def prepare(self) -> list[tuple[Any, ...]]:
        """The rows written since the last checkpoint."""
        rows, self._buffer = self._buffer, []
        return rows

    def commit(self, key: str, prepared: list[tuple[Any, ...]]) -> None:
        """Insert ``prepared`` with the marker ``key`` in one transaction, unless the
        marker is there already (this checkpoint's rows were committed before a crash).
        Retried through a server restart or a network cut: the marker makes a retry of a
        commit that went through a no-op."""
        psycopg = _psycopg()

        from riverbed._store.retry import retrying
        from riverbed._store.url import redact

        retrying(
            f"PostgresTable({self.table!r}) at {redact(self.url)}",
            lambda retry: self._commit(key, prepared),
            url=redact(self.url),
            transient=(psycopg.OperationalError,),
        )

    def _commit(self, key: str, prepared: list[tuple[Any, ...]]) -> None:
        psycopg = _psycopg()

        with psycopg.connect(self.url) as conn:
            if not self._ready:
                try:
                    conn.execute(_MARKERS)
                    conn.commit()
                except psycopg.errors.UniqueViolation:  # another process created it just now
                    conn.rollback()
                self._ready = True
            with conn.transaction():
                marked = conn.execute(
                    "INSERT INTO riverbed_sink_commits (key) VALUES (%s) "
                    "ON CONFLICT (key) DO NOTHING",
                    (key,),
                )
                if marked.rowcount == 0:
                    return  # committed before: the rows are in
                if prepared:
                    with conn.cursor() as cursor:
                        cursor.executemany(self._sql, prepared)


def _psycopg() -> Any:
    """The psycopg module, or an ImportError that says how to install it (it comes with
    the PostgreSQL extra, not with riverbed itself)."""
    try:
        import psycopg
    except ImportError as missing:
        raise ImportError(
            "PostgresTable needs psycopg, which comes with riverbed's PostgreSQL extra: "
            "pip install 'riverbed[postgres]'"
        ) from missing
    return psycopg
