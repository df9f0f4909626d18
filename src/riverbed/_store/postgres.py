"""The PostgreSQL store: shared by many workers on many machines.

- A ``psycopg_pool.ConnectionPool`` (1 to 8 connections) serves the engine's threads.
  Connections are in autocommit mode: a lone statement is its own transaction (one round
  trip, e.g. ``record_step``), and multi-statement writes open one explicitly.
- Statements are prepared on first use (``prepare_threshold=0``): the store runs the same
  few statements over and over.
- A status transition reads the run ``FOR UPDATE``: two concurrent transitions of one run
  are serialized, and the second sees the first's result.
- ``claim`` selects ``FOR UPDATE SKIP LOCKED``, so that workers pass over rows that others
  are claiming instead of waiting for them or taking them too, and compares leases with the
  database's clock (``clock_timestamp()``), since the workers' machines' clocks differ.
- Migrations run under a transaction-scoped advisory lock keyed by the schema, so two
  processes starting at once migrate once.

psycopg is imported by this module only, which ``open_store`` loads on demand: ``import
riverbed`` stays light.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

from riverbed._errors import StoreError
from riverbed._store.codec import RUN_COLUMNS, Codec
from riverbed._store.records import (
    RunRecord,
    RunStatus,
    StageRun,
    StepCommit,
    StepRecord,
    check_transition,
)
from riverbed._store.schema import SCHEMA_VERSION, Dialect, migrate
from riverbed._store.sql import INSERT_RUN, INSERT_STEP, UPSERT_STAGE_RUN, SQLStore, Tx
from riverbed._store.url import redact

__all__ = ["PostgresStore"]

# One statement per claim: lock the oldest matching row (skipping rows other workers hold),
# then take it. Autocommit makes the statement its own transaction: one round trip.
_CLAIM = (
    "WITH next AS (SELECT run_id FROM riverbed_runs WHERE {where} "
    "ORDER BY {order} LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "UPDATE riverbed_runs r SET status = ?, worker = ?, "
    "lease_until = clock_timestamp() + make_interval(secs => ?), "
    "started_at = coalesce(r.started_at, clock_timestamp()), attempt = r.attempt + ? "
    "FROM next WHERE r.run_id = next.run_id RETURNING "
    + ", ".join(f"r.{column}" for column in RUN_COLUMNS)
)
_CLAIM_SCHEDULED = _CLAIM.format(where="status = ?", order="seq")
_CLAIM_EXPIRED = _CLAIM.format(
    where="status = ? AND lease_until < clock_timestamp() AND target IS NOT NULL",
    order="lease_until",
)
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('riverbed_migrate:' || current_schema()))"


@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """A statement written with ``?`` placeholders, in psycopg's ``%s`` style."""
    return sql.replace("?", "%s")


class _PgTx:
    """A psycopg cursor that takes ``?`` placeholders."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> object:
        return self._cursor.execute(_pg(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> object:
        self._cursor.executemany(_pg(sql), rows)
        return None

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class PostgresStore(SQLStore):
    """A store in a PostgreSQL database (see the module doc for how it is used).

    ``url`` is a libpq URI: ``postgresql://user:password@host:5432/dbname``, optionally with
    ``?options=-c%20search_path%3Dmyschema`` to keep riverbed's tables in their own schema.
    """

    _for_update = " FOR UPDATE"
    _skip_locked = " FOR UPDATE SKIP LOCKED"
    _integrity_errors = (psycopg.errors.UniqueViolation,)

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = 10.0,
        schema_version: int = SCHEMA_VERSION,
    ) -> None:
        """Connect, bring the schema up to date, then open the pool. ``schema_version`` stops
        migrations early, for tests of upgrades."""
        self.url = redact(url)
        self._codec = Codec(Dialect.POSTGRESQL)
        # The first connection is made by hand: its error (refused, bad password, no such
        # database) says more than a pool's timeout would.
        try:
            timeout = max(1, round(connect_timeout))
            with psycopg.connect(url, connect_timeout=timeout) as conn, conn.transaction():
                cursor = conn.cursor()
                cursor.execute(_MIGRATION_LOCK)
                migrate(_PgTx(cursor), Dialect.POSTGRESQL, self.url, target=schema_version)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot open the PostgreSQL store at {self.url}: {exc}".strip(), url=self.url
            ) from exc
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            timeout=connect_timeout,
            open=True,
            name="riverbed-store",
        )

    def close(self) -> None:
        """Close the pool's connections. The store cannot be used afterwards."""
        self._pool.close()

    @contextmanager
    def _write(self) -> Iterator[Tx]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield _PgTx(conn.cursor())
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise StoreError(f"PostgreSQL store {self.url}: {exc}", url=self.url) from exc

    @contextmanager
    def _statement(self) -> Iterator[Tx]:
        # Autocommit: each statement is a transaction of its own (a consistent snapshot for
        # a read), without BEGIN/COMMIT round trips.
        try:
            with self._pool.connection() as conn:
                yield _PgTx(conn.cursor())
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise StoreError(f"PostgreSQL store {self.url}: {exc}", url=self.url) from exc

    def _clock(self) -> tuple[str, tuple[Any, ...]]:
        return "clock_timestamp()", ()

    def _lease_end(self, lease_seconds: float) -> tuple[str, tuple[Any, ...]]:
        return "clock_timestamp() + make_interval(secs => ?)", (float(lease_seconds),)

    def claim(self, worker: str, lease_seconds: float) -> RunRecord | None:
        """Take the oldest SCHEDULED run, else a RUNNING one whose lease expired, for
        ``worker``; None if there is neither (see ``Store.claim``). One statement each."""
        lease = float(lease_seconds)
        running = RunStatus.RUNNING.value
        with self._statement() as tx:
            tx.execute(_CLAIM_SCHEDULED, (RunStatus.SCHEDULED.value, running, worker, lease, 0))
            row = tx.fetchone()
            if row is None:
                # Its worker died or hung: the run CRASHED, and this worker resumes it.
                tx.execute(_CLAIM_EXPIRED, (running, running, worker, lease, 1))
                row = tx.fetchone()
                if row is None:
                    return None
                check_transition(RunStatus.RUNNING, RunStatus.CRASHED, run_id=row[0])
                check_transition(RunStatus.CRASHED, RunStatus.RUNNING, run_id=row[0])
        return self._codec.run_out(row)

    def record_step(self, step: StepRecord, stage_run: StageRun | None = None) -> None:
        """Store a completed step (and its stage run) durably, in one statement: one round
        trip, committed (and fsynced by the server) when it returns."""
        step_row = self._codec.step_in(step)
        if stage_run is None:
            with self._statement() as tx:
                tx.execute(INSERT_STEP, step_row)
            return
        stage_row = self._stage_run_rows(step.run_id, [stage_run])[0]
        # A data-modifying CTE: both writes in one statement, so one implicit transaction.
        with self._statement() as tx:
            tx.execute(f"WITH step AS ({INSERT_STEP}) {UPSERT_STAGE_RUN}", (*step_row, *stage_row))

    # -- workflow commits ---------------------------------------------------------------------

    def commit_steps(self, commits: Sequence[StepCommit]) -> None:
        """Apply the commits in ONE statement (one round trip, one implicit transaction,
        one fsync), however many workflows they come from: data-modifying CTEs insert the
        runs, steps and stage runs, and update each ending run's status only if its current
        status may go there; the statement then fails (so nothing of it is kept) unless
        every status changed. On any failure the commits are applied once more the general
        way, in a transaction, which raises the precise error (InvalidTransitionError,
        DuplicateRunError, RunNotFoundError, StoreError for a step recorded twice)."""
        if not commits:
            return
        try:
            statement = _commit_statement(self, commits)
        except _NeedsGeneralPathError:
            statement = None
        if statement is not None:
            sql, params = statement
            try:
                with self._pool.connection() as conn:
                    # A lone workflow's three shapes of statement repeat: prepared, they
                    # are parsed and planned once per connection. A group's shape rarely
                    # repeats, and preparing it would cost a round trip and evict others.
                    conn.execute(sql, params, prepare=len(commits) == 1)
                return
            except psycopg.Error:
                pass  # the transaction below fails the same way, with the precise error
        super().commit_steps(commits)


class _NeedsGeneralPathError(Exception):
    """The commits need the general path (e.g. one run twice in a group)."""


def _commit_statement(store: PostgresStore, commits: Sequence[StepCommit]) -> tuple[str, list[Any]]:
    """The one statement of ``PostgresStore.commit_steps`` and its parameters."""
    codec = store._codec
    seen: set[str] = set()
    runs: list[tuple[Any, ...]] = []
    steps: list[tuple[Any, ...]] = []
    stage_rows: list[tuple[Any, ...]] = []
    ends: list[tuple[str, RunStatus, dict[str, Any]]] = []
    for commit in commits:
        if commit.run_id in seen:
            raise _NeedsGeneralPathError
        seen.add(commit.run_id)
        for record in (commit.run, commit.step):
            if record is not None and record.run_id != commit.run_id:
                raise _NeedsGeneralPathError  # the general path says what is wrong
        if commit.run is not None:
            run = commit.run
            if commit.status is not None:
                # Created and ended at once: the CTEs cannot see each other's rows, so
                # the run is inserted in its final status (after the same check).
                check_transition(run.status, commit.status, run_id=run.run_id)
                codec.check_fields(commit.fields, "commit_steps")
                run = dataclasses.replace(run, status=commit.status, **commit.fields)
            runs.append(codec.run_in(run))
        elif commit.status is not None:
            codec.check_fields(commit.fields, "commit_steps")
            ends.append((commit.run_id, commit.status, commit.fields))
        if commit.step is not None:
            steps.append(codec.step_in(commit.step))
        if commit.stage_run is not None:
            stage_rows.extend(store._stage_run_rows(commit.run_id, [commit.stage_run]))
    parts: list[str] = []
    params: list[Any] = []

    def insert(name: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
        head, _, tail = sql.partition(" VALUES (")
        values, _, rest = tail.partition(")")
        one = f"({values})"
        parts.append(f"{name} AS ({head} VALUES {', '.join([one] * len(rows))}{rest})")
        params.extend(value for row in rows for value in row)

    if runs:
        insert("r", INSERT_RUN, runs)
    if steps:
        insert("s", INSERT_STEP, steps)
    if stage_rows:
        insert("g", UPSERT_STAGE_RUN, stage_rows)
    for index, (run_id, status, fields) in enumerate(ends):
        sets = ", ".join(f"{name} = ?" for name in ("status", *fields))
        legal = [old.value for old in RunStatus if status in old.successors]
        parts.append(
            f"u{index} AS (UPDATE riverbed_runs SET {sets} WHERE run_id = ? AND status IN "
            f"({', '.join('?' * len(legal))}) RETURNING 1)"
        )
        params.extend(
            [status.value, *(codec.run_field_in(n, v) for n, v in fields.items()), run_id, *legal]
        )
    if ends:
        # 1/0 when some run did not change status: the whole statement fails, nothing kept.
        counted = " + ".join(f"(SELECT count(*) FROM u{index})" for index in range(len(ends)))
        final = f"SELECT 1 / (CASE WHEN {counted} = {len(ends)} THEN 1 ELSE 0 END)"
    else:
        final = "SELECT 1"
    return _pg(f"WITH {', '.join(parts)} {final}" if parts else final), params
