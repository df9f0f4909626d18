"""The PostgreSQL store: shared by many workers on many machines.

- A ``psycopg_pool.ConnectionPool`` (1 to 8 connections) serves the engine's threads.
  Connections are in autocommit mode: a lone statement is its own transaction (one round
  trip, e.g. a workflow's step), and multi-statement writes open one explicitly.
  Connection-level errors (``OperationalError``: the server restarting, the network cut, a
  pooled connection the server dropped) are ``StoreUnavailableError``s, which every call
  retries on a fresh connection (``retry``): a restart costs a reconnect, not the run.
- Statements are prepared on first use (``prepare_threshold=0``): the store runs the same
  few statements over and over.
- A status transition reads the run ``FOR UPDATE``: two concurrent transitions of one run
  are serialized, and the second sees the first's result.
- ``claim`` selects ``FOR UPDATE SKIP LOCKED``, so that workers pass over rows that others
  are claiming instead of waiting for them or taking them too, and compares leases with the
  database's clock (``clock_timestamp()``), since the workers' machines' clocks differ.
  It is one statement, its history entries written by the same statement.
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
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool

from riverbed._errors import StoreError, StoreUnavailableError
from riverbed._records import (
    RunRecord,
    RunStatus,
    StepCommit,
    check_transition,
)
from riverbed._store.codec import RUN_COLUMNS, Codec
from riverbed._store.fencing import HOLDS, holds, wrote
from riverbed._store.retry import new_token
from riverbed._store.schema import (
    SCHEMA_VERSION,
    Dialect,
    check_not_newer,
    migrate,
    stored_version,
)
from riverbed._store.sql import INSERT_RUN, INSERT_STEP, UPSERT_STAGE_RUN, SQLStore, Tx
from riverbed._store.url import redact

__all__ = ["PostgresStore"]

# One statement per claim: lock the oldest matching row (skipping rows other workers hold),
# take it, and append its history (CRASHED first for a lease that expired, then RUNNING).
# Autocommit makes the statement its own transaction: one round trip.
_HISTORY = ", ".join(("run_id", "attempt", "status", "at", "worker", "error"))
_CLAIM = (
    "WITH next AS (SELECT run_id, attempt, worker FROM riverbed_runs WHERE {where} "
    "ORDER BY {order} LIMIT 1 FOR UPDATE SKIP LOCKED), "
    "taken AS (UPDATE riverbed_runs r SET status = 'running', worker = ?, "
    "lease_until = clock_timestamp() + make_interval(secs => ?), "
    "started_at = coalesce(r.started_at, clock_timestamp()), attempt = r.attempt + "
    "(CASE WHEN r.started_at IS NULL THEN 0 ELSE 1 END), write_token = ? "
    "FROM next WHERE r.run_id = next.run_id RETURNING "
    + ", ".join(f"r.{column}" for column in RUN_COLUMNS)
    + "), history AS (INSERT INTO riverbed_run_history ("
    + _HISTORY
    + ") SELECT run_id, attempt, status, at, worker, NULL FROM ({crashed}"
    "SELECT run_id, attempt, 'running' AS status, clock_timestamp() AS at, worker, 2 AS o "
    "FROM taken) entries ORDER BY o) SELECT * FROM taken"
)
_CLAIM_SCHEDULED = _CLAIM.format(where="status = 'scheduled'", order="seq", crashed="")
_CLAIM_EXPIRED = _CLAIM.format(
    where="status = 'running' AND lease_until < clock_timestamp() AND target IS NOT NULL",
    order="lease_until",
    crashed="SELECT run_id, attempt, 'crashed' AS status, clock_timestamp() AS at, worker, "
    "1 AS o FROM next UNION ALL ",
)
POOL_WAIT = 2.0
"""Seconds a call waits for a pooled connection before it counts as a transient failure."""

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
        read_only: bool = False,
    ) -> None:
        """Connect, bring the schema up to date, then open the pool. ``schema_version`` stops
        migrations early, for tests of upgrades. ``read_only``: every session is read-only
        (``default_transaction_read_only``), and the schema is only checked, unless it must
        be created or upgraded."""
        self.url = redact(url)
        self.read_only = read_only
        self._codec = Codec(Dialect.POSTGRESQL)
        # The first connection is made by hand: its error (refused, bad password, no such
        # database) says more than a pool's timeout would.
        try:
            timeout = max(1, round(connect_timeout))
            with psycopg.connect(url, connect_timeout=timeout) as conn, conn.transaction():
                tx = _PgTx(conn.cursor())
                found = stored_version(tx, Dialect.POSTGRESQL) if read_only else 0
                check_not_newer(found, self.url)
                if not read_only or found < schema_version:
                    tx.execute(_MIGRATION_LOCK)
                    migrate(tx, Dialect.POSTGRESQL, self.url, target=schema_version)
        except psycopg.Error as exc:
            # Refused, unreachable, out of connections: the server is away, not the URL
            # wrong (the caller cannot tell a down server from a mistyped host).
            error = StoreUnavailableError if isinstance(exc, _TRANSIENT) else StoreError
            raise error(
                f"cannot open the PostgreSQL store at {self.url}: {_one_line(exc)}", url=self.url
            ) from exc
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            configure=_read_only_session if read_only else None,
            # No check as a connection is handed out: it would cost a round trip per call
            # (4 of the 8 of a 3-step workflow). A connection the server dropped (a
            # restart) fails its first statement with an OperationalError instead, before
            # anything reached the server; the pool discards it and the call is retried
            # on another (every write recognizes its own earlier commit: see ``retry``).
            # Short: a call that cannot get a connection is retried with backoff (see
            # ``retry``), which is what bounds how long a run waits for its store.
            timeout=min(connect_timeout, POOL_WAIT),
            open=True,
            name="riverbed-store",
        )

    def close(self) -> None:
        """Close the pool's connections. The store cannot be used afterwards."""
        self._pool.close()

    @contextmanager
    def _write(self) -> Iterator[Tx]:
        if self.read_only:
            raise StoreError(
                f"the PostgreSQL store {self.url} was opened read-only (open_store(url, "
                "read_only=True)), so it cannot be written; open it without read_only",
                url=self.url,
            )
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield _PgTx(conn.cursor())
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._error(exc) from exc

    @contextmanager
    def _statement(self) -> Iterator[Tx]:
        # Autocommit: each statement is a transaction of its own (a consistent snapshot for
        # a read), without BEGIN/COMMIT round trips.
        try:
            with self._pool.connection() as conn:
                yield _PgTx(conn.cursor())
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> StoreError:
        """A driver error as the store's: connection-level ones (the server restarting or
        unreachable, the pool out of connections) and serialization failures are
        ``StoreUnavailableError``, which every call retries; the rest are ``StoreError``."""
        if isinstance(exc, _TRANSIENT):  # retried; the retry's own error names the store
            return StoreUnavailableError(_one_line(exc) or type(exc).__name__, url=self.url)
        return StoreError(f"PostgreSQL store {self.url}: {_one_line(exc)}", url=self.url)

    def _clock(self) -> tuple[str, tuple[Any, ...]]:
        return "clock_timestamp()", ()

    def _lease_end(self, lease_seconds: float) -> tuple[str, tuple[Any, ...]]:
        return "clock_timestamp() + make_interval(secs => ?)", (float(lease_seconds),)

    def _claim(self, tx: Tx, worker: str, lease_seconds: float, token: str) -> Any:
        """Take the oldest SCHEDULED run, else a RUNNING one whose lease expired, for
        ``worker`` (see ``Store.claim``): one statement each."""
        lease = float(lease_seconds)
        tx.execute(_CLAIM_SCHEDULED, (worker, lease, token))
        row = tx.fetchone()
        if row is None:
            # Its worker died or hung: the run CRASHED, and this worker resumes it.
            check_transition(RunStatus.RUNNING, RunStatus.CRASHED)
            check_transition(RunStatus.CRASHED, RunStatus.RUNNING)
            tx.execute(_CLAIM_EXPIRED, (worker, lease, token))
            row = tx.fetchone()
        return row

    # -- workflow commits ---------------------------------------------------------------------

    def commit_steps(self, commits: Sequence[StepCommit]) -> None:
        """Apply the commits in ONE statement (one round trip, one implicit transaction,
        one fsync), however many workflows they come from: data-modifying CTEs insert the
        runs, steps and stage runs, check each commit's lease, update each ending run's
        status only if its current status may go there, and append the history; the
        statement then fails (so nothing of it is kept) unless every check passed. On
        such a failure the commits are applied once more the general way, in a
        transaction, which raises the precise error (LeaseLostError,
        InvalidTransitionError, DuplicateRunError, RunNotFoundError, StoreError for a step
        recorded twice)."""
        if commits and not self._commit_fast(commits):
            super().commit_steps(commits)

    def _commit_fast(self, commits: Sequence[StepCommit]) -> bool:
        """Apply ``commits`` in their one statement, retried through transient errors;
        False if the statement failed (nothing of it kept) or the commits need the
        general path (one run twice in a group)."""
        try:
            sql, params = _commit_statement(self, commits)
        except _NeedsGeneralPathError:
            return False
        token = new_token()
        params = [token if value is _TOKEN else value for value in params]

        def attempt(retry: bool) -> bool:
            try:
                with self._pool.connection() as conn:
                    if retry and wrote(_PgTx(conn.cursor()), commits[0].run_id, token):
                        return True
                    # A lone workflow's shapes of statement repeat: prepared, they are
                    # parsed and planned once per connection. A group's shape rarely
                    # repeats, and preparing it would cost a round trip and evict others.
                    conn.execute(sql, params, prepare=len(commits) == 1)
                return True
            except psycopg.Error as exc:
                if isinstance(exc, _TRANSIENT):
                    raise self._error(exc) from exc
                return False  # the general path fails the same way, with the precise error
            except psycopg_pool.PoolTimeout as exc:
                raise self._error(exc) from exc

        return self._retrying(attempt)


def _one_line(exc: Exception) -> str:
    """A driver error's message on one line: libpq's span several (a hint, a detail)."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _read_only_session(conn: psycopg.Connection[Any]) -> None:
    """Make every transaction of a pooled connection read-only (a read-only store)."""
    conn.execute("SET default_transaction_read_only = on")


_TRANSIENT = (
    psycopg.OperationalError,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg_pool.PoolTimeout,
)
"""Errors that waiting (and reconnecting) may cure."""

_TOKEN = object()
"""Stands for the write token among a statement's parameters until it is known."""


class _NeedsGeneralPathError(Exception):
    """The commits need the general path (e.g. one run twice in a group)."""


def _commit_statement(store: PostgresStore, commits: Sequence[StepCommit]) -> tuple[str, list[Any]]:
    """The one statement of ``PostgresStore.commit_steps`` and its parameters (the write
    token as ``_TOKEN``)."""
    codec = store._codec
    seen: set[str] = set()
    runs: list[tuple[Any, ...]] = []
    entries: list[tuple[Any, ...]] = []
    statement = _Statement()
    for commit in commits:
        if commit.run_id in seen:
            raise _NeedsGeneralPathError
        seen.add(commit.run_id)
        for record in (commit.run, commit.step):
            if record is not None and record.run_id != commit.run_id:
                raise _NeedsGeneralPathError  # the general path says what is wrong
        if commit.run is not None:
            runs.append((*codec.run_in(_created(codec, commit, entries)), _TOKEN))
    if runs:
        statement.insert("r", INSERT_RUN, runs)
    steps = [codec.step_in(commit.step) for commit in commits if commit.step is not None]
    if steps:
        statement.insert("s", INSERT_STEP, steps)
    stage_rows = [
        row
        for commit in commits
        if commit.stage_run is not None
        for row in store._stage_run_rows(commit.run_id, [commit.stage_run])
    ]
    if stage_rows:
        statement.insert("g", UPSERT_STAGE_RUN, stage_rows)
    checked = [commit for commit in commits if commit.run is None]
    for index, commit in enumerate(checked):
        if commit.status is not None:
            statement.end(codec, f"u{index}", commit)
        elif commit.lease is not None:
            statement.fence(f"f{index}", commit)
    statement.history(entries)
    return statement.sql(), statement.params


def _created(codec: Codec, commit: StepCommit, entries: list[tuple[Any, ...]]) -> RunRecord:
    """The run a commit creates, as inserted (in its final status if the commit ends it
    at once: the CTEs cannot see each other's rows), with its history entries."""
    run = commit.run
    assert run is not None
    now = codec.time_in(datetime.now(UTC), "at")
    entries.append((run.run_id, run.attempt, run.status.value, now, run.worker, None))
    if commit.status is not None:
        check_transition(run.status, commit.status, run_id=run.run_id)
        codec.check_fields(commit.fields, "commit_steps")
        run = dataclasses.replace(run, status=commit.status, **commit.fields)
        error = codec.error_in(run.error) if run.status is RunStatus.FAILED else None
        entries.append((run.run_id, run.attempt, run.status.value, now, run.worker, error))
    return run


class _Statement:
    """The data-modifying CTEs of one group commit, and their parameters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list[Any] = []
        self.checks: list[str] = []
        """CTEs that must each return one row, or the statement fails."""
        self.ends: list[str] = []

    def insert(self, name: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """``sql`` (an INSERT of one row) for every row, as CTE ``name``."""
        head, _, tail = sql.partition(" VALUES (")
        values, _, rest = tail.partition(")")
        one = f"({values})"
        self.parts.append(f"{name} AS ({head} VALUES {', '.join([one] * len(rows))}{rest})")
        self.params.extend(value for row in rows for value in row)

    def fence(self, name: str, commit: StepCommit) -> None:
        """Check (and stamp) the commit's lease."""
        assert commit.lease is not None
        self.parts.append(
            f"{name} AS (UPDATE riverbed_runs SET write_token = ? WHERE {HOLDS} RETURNING 1)"
        )
        self.params.extend([_TOKEN, *holds(commit.lease)])
        self.checks.append(name)

    def end(self, codec: Codec, name: str, commit: StepCommit) -> None:
        """Move the commit's run to its status if it may go there (under its lease)."""
        assert commit.status is not None
        codec.check_fields(commit.fields, "commit_steps")
        sets = ", ".join(f"{field} = ?" for field in ("status", *commit.fields, "write_token"))
        legal = [old.value for old in RunStatus if commit.status in old.successors]
        where = f"run_id = ? AND status IN ({', '.join('?' * len(legal))})"
        self.params.extend(
            [
                commit.status.value,
                *(codec.run_field_in(n, v) for n, v in commit.fields.items()),
                _TOKEN,
                commit.run_id,
                *legal,
            ]
        )
        if commit.lease is not None:
            where += " AND worker = ? AND attempt = ?"
            self.params.extend([commit.lease.worker, commit.lease.attempt])
        self.parts.append(
            f"{name} AS (UPDATE riverbed_runs SET {sets} WHERE {where} "
            "RETURNING run_id, attempt, status, worker, error)"
        )
        self.checks.append(name)
        self.ends.append(name)

    def history(self, entries: list[tuple[Any, ...]]) -> None:
        """Append the history: ``entries`` of created runs, then every status changed."""
        rows = [
            "SELECT ?::text AS run_id, ?::int AS attempt, ?::text AS status, "
            "?::timestamptz AS at, ?::text AS worker, ?::json AS error, 1 AS o"
        ] * len(entries)
        for entry in entries:
            self.params.extend(entry)
        rows += [
            f"SELECT run_id, attempt, status, clock_timestamp() AS at, worker, "
            f"CASE WHEN status = 'failed' THEN error END AS error, 2 AS o FROM {name}"
            for name in self.ends
        ]
        if rows:
            self.parts.append(
                f"h AS (INSERT INTO riverbed_run_history ({_HISTORY}) SELECT run_id, attempt, "
                f"status, at, worker, error FROM ({' UNION ALL '.join(rows)}) e ORDER BY o)"
            )

    def sql(self) -> str:
        """The statement: the CTEs, then 1/0 unless every check returned its row (the
        whole statement fails then, nothing kept)."""
        if self.checks:
            counted = " + ".join(f"(SELECT count(*) FROM {name})" for name in self.checks)
            final = f"SELECT 1 / (CASE WHEN {counted} = {len(self.checks)} THEN 1 ELSE 0 END)"
        else:
            final = "SELECT 1"
        return _pg(f"WITH {', '.join(self.parts)} {final}" if self.parts else final)
