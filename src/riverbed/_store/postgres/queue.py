"""The run queue on PostgreSQL: a claim in one statement, and a group commit of workflow
steps in one statement (one round trip, one implicit transaction, one fsync), however many
workflows it carries. Where the one statement fails, the portable queue's general path
applies the commits again and raises the precise error."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool

from riverbed._records import RunRecord, RunStatus, StepCommit, check_transition
from riverbed._store.codec import RUN_COLUMNS, Codec
from riverbed._store.fencing import HOLDS, Tx, holds, wrote
from riverbed._store.postgres.database import TRANSIENT, PgTx, PostgresDatabase, pg
from riverbed._store.retry import new_token
from riverbed._store.sql import SQLCore, SQLQueue
from riverbed._store.sql.runs import stage_run_rows
from riverbed._store.sql.statements import INSERT_RUN, INSERT_STEP, UPSERT_STAGE_RUN

__all__ = ["PostgresQueue"]

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


def _claims(served: str) -> tuple[str, str]:
    """The claim of a SCHEDULED run, and of a RUNNING one whose lease expired, of the
    queues ``served`` names."""
    scheduled = _CLAIM.format(where=f"status = 'scheduled' AND {served}", order="seq", crashed="")
    expired = _CLAIM.format(
        where=f"status = 'running' AND {served} AND lease_until < clock_timestamp() "
        "AND target IS NOT NULL",
        order="lease_until",
        crashed="SELECT run_id, attempt, 'crashed' AS status, clock_timestamp() AS at, "
        "worker, 1 AS o FROM next UNION ALL ",
    )
    return scheduled, expired


# One queue (most workers) compares with a text: a text[] parameter costs ~10% of a claim.
_CLAIMS_ONE = _claims("queue = ?")
_CLAIMS_ANY = _claims("queue = ANY(?)")


class PostgresQueue(SQLQueue):
    """The ``RunQueue`` methods, claiming and committing in one statement each."""

    def __init__(self, core: SQLCore, database: PostgresDatabase) -> None:
        """The queue kept through ``core``, whose database is ``database``."""
        super().__init__(core)
        self._database = database

    def claim_in(
        self, tx: Tx, worker: str, lease_seconds: float, token: str, queues: tuple[str, ...]
    ) -> Any:
        """Take the oldest SCHEDULED run of ``queues``, else a RUNNING one of them whose
        lease expired, for ``worker`` (see ``RunQueue.claim``): one statement each."""
        lease = float(lease_seconds)
        one = len(queues) == 1
        scheduled, expired = _CLAIMS_ONE if one else _CLAIMS_ANY
        served: Any = queues[0] if one else list(queues)
        tx.execute(scheduled, (served, worker, lease, token))
        row = tx.fetchone()
        if row is None:
            # Its worker died or hung: the run CRASHED, and this worker resumes it.
            check_transition(RunStatus.RUNNING, RunStatus.CRASHED)
            check_transition(RunStatus.CRASHED, RunStatus.RUNNING)
            tx.execute(expired, (served, worker, lease, token))
            row = tx.fetchone()
        return row

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
        if commits and not self.commit_fast(commits):
            super().commit_steps(commits)

    def commit_fast(self, commits: Sequence[StepCommit]) -> bool:
        """Apply ``commits`` in their one statement, retried through transient errors;
        False if the statement failed (nothing of it kept) or the commits need the
        general path (one run twice in a group)."""
        try:
            sql, params = _commit_statement(self._core.codec, commits)
        except _NeedsGeneralPathError:
            return False
        token = new_token()
        params = [token if value is _TOKEN else value for value in params]
        database = self._database

        def attempt(retry: bool) -> bool:
            try:
                with database.connection() as conn:
                    if retry and wrote(PgTx(conn.cursor()), commits[0].run_id, token):
                        return True
                    # A lone workflow's shapes of statement repeat: prepared, they are
                    # parsed and planned once per connection. A group's shape rarely
                    # repeats, and preparing it would cost a round trip and evict others.
                    conn.execute(sql, params, prepare=len(commits) == 1)
                return True
            except psycopg.Error as exc:
                if isinstance(exc, TRANSIENT):
                    raise database.error(exc) from exc
                return False  # the general path fails the same way, with the precise error
            except psycopg_pool.PoolTimeout as exc:
                raise database.error(exc) from exc

        return self._core.retrying(attempt)


_TOKEN = object()
"""Stands for the write token among a statement's parameters until it is known."""


class _NeedsGeneralPathError(Exception):
    """The commits need the general path (e.g. one run twice in a group)."""


def _commit_statement(codec: Codec, commits: Sequence[StepCommit]) -> tuple[str, list[Any]]:
    """The one statement of ``PostgresQueue.commit_steps`` and its parameters (the write
    token as ``_TOKEN``)."""
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
        for row in stage_run_rows(codec, commit.run_id, [commit.stage_run])
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
        return pg(f"WITH {', '.join(self.parts)} {final}" if self.parts else final)
