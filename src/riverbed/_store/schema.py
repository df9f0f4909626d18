"""The store's tables, per dialect, built by an ordered list of migrations.

A fresh store and an upgraded one are the same by construction: opening a store applies
every migration it has not had, in order, from version 1, and records the version reached in
``riverbed_meta``. A store whose version is newer than ``SCHEMA_VERSION`` is refused, since
this riverbed does not know what the newer one changed.

One DDL text serves both dialects; only the column types differ (``_TYPES``), so the two
schemas cannot drift apart. A migration of what one dialect alone has (PostgreSQL's
notifications) names it (``only``); the other takes its version number alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from riverbed._errors import StoreVersionError
from riverbed._version import __version__

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Dialect",
    "Migration",
    "check_not_newer",
    "migrate",
    "stored_version",
]

RIVERBED_VERSION = __version__
"""This riverbed's version, named in errors."""


class Dialect(enum.Enum):
    """The SQL dialects the store speaks."""

    SQLITE = "sqlite"
    """SQLite 3.35 or newer (RETURNING, UPSERT), through the standard library."""
    POSTGRESQL = "postgresql"
    """PostgreSQL 13 or newer, through psycopg 3."""


_TYPES: dict[Dialect, dict[str, str]] = {
    # SQLite keeps times as fixed-width ISO-8601 UTC text, which sorts as time does.
    Dialect.SQLITE: {
        "serial_pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "time": "TEXT",
        "json": "TEXT",
        "blob": "BLOB",
        "real": "REAL",
    },
    Dialect.POSTGRESQL: {
        "serial_pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "time": "TIMESTAMPTZ",
        # JSON, not JSONB: JSONB rewrites numbers (1e16 comes back as an int), and the store
        # must give back exactly what it was given.
        "json": "JSON",
        "blob": "BYTEA",
        "real": "DOUBLE PRECISION",
    },
}


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history: the statements that take version ``version - 1``
    to ``version``, written once with ``{type}`` placeholders for both dialects."""

    version: int
    description: str
    statements: tuple[str, ...]
    only: Dialect | None = None
    """The one dialect the statements are for (the other's schema only takes the
    version): what only it has, such as PostgreSQL's notifications."""

    def sql(self, dialect: Dialect) -> list[str]:
        """The statements with this dialect's column types filled in."""
        if self.only is not None and dialect is not self.only:
            return []
        return [statement.format(**_TYPES[dialect]) for statement in self.statements]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, stage runs, checkpoints and dead letters",
        (
            # seq gives insertion order (newest first, the queue's FIFO) independent of
            # clocks; run_id is the key callers use.
            """CREATE TABLE riverbed_runs (
                seq {serial_pk},
                run_id TEXT NOT NULL UNIQUE,
                flow TEXT NOT NULL,
                flow_version TEXT NOT NULL,
                status TEXT NOT NULL,
                params {json} NOT NULL,
                input {blob},
                output {blob},
                target TEXT,
                created_at {time} NOT NULL,
                started_at {time},
                ended_at {time},
                error {json},
                attempt INTEGER NOT NULL,
                rerun_of TEXT
            )""",
            "CREATE INDEX riverbed_runs_flow ON riverbed_runs (flow, seq)",
            """CREATE TABLE riverbed_stage_runs (
                seq {serial_pk},
                run_id TEXT NOT NULL,
                stage TEXT NOT NULL,
                kind TEXT NOT NULL,
                status TEXT NOT NULL,
                events_in BIGINT NOT NULL,
                events_out BIGINT NOT NULL,
                errors BIGINT NOT NULL,
                retries BIGINT NOT NULL,
                skipped BIGINT NOT NULL,
                dead_lettered BIGINT NOT NULL,
                seconds {real} NOT NULL,
                started_at {time},
                ended_at {time},
                UNIQUE (run_id, stage)
            )""",
            """CREATE TABLE riverbed_checkpoints (
                run_id TEXT NOT NULL,
                checkpoint_id INTEGER NOT NULL,
                flow_version TEXT NOT NULL,
                positions {json} NOT NULL,
                created_at {time} NOT NULL,
                PRIMARY KEY (run_id, checkpoint_id)
            )""",
            # One row per stage: states stay opaque bytes, and a large one does not have to
            # be copied into a combined blob.
            """CREATE TABLE riverbed_checkpoint_states (
                run_id TEXT NOT NULL,
                checkpoint_id INTEGER NOT NULL,
                stage TEXT NOT NULL,
                state {blob} NOT NULL,
                PRIMARY KEY (run_id, checkpoint_id, stage)
            )""",
            """CREATE TABLE riverbed_dead_letters (
                id {serial_pk},
                run_id TEXT NOT NULL,
                flow TEXT NOT NULL,
                stage TEXT NOT NULL,
                event {blob} NOT NULL,
                event_repr TEXT NOT NULL,
                error_type TEXT NOT NULL,
                message TEXT NOT NULL,
                traceback TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                at {time} NOT NULL,
                replayed_by TEXT
            )""",
            "CREATE INDEX riverbed_dead_letters_run ON riverbed_dead_letters (run_id)",
            "CREATE INDEX riverbed_dead_letters_flow ON riverbed_dead_letters (flow, stage)",
        ),
    ),
    Migration(
        2,
        "durable workflows (step cache, steps) and the run queue (worker leases)",
        (
            """CREATE TABLE riverbed_step_cache (
                stage TEXT NOT NULL,
                stage_version TEXT NOT NULL,
                digest TEXT NOT NULL,
                outputs {blob} NOT NULL,
                run_id TEXT NOT NULL,
                created_at {time} NOT NULL,
                PRIMARY KEY (stage, stage_version, digest)
            )""",
            """CREATE TABLE riverbed_steps (
                run_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                stage TEXT NOT NULL,
                output {blob} NOT NULL,
                at {time} NOT NULL,
                PRIMARY KEY (run_id, seq)
            )""",
            "ALTER TABLE riverbed_runs ADD COLUMN worker TEXT",
            "ALTER TABLE riverbed_runs ADD COLUMN lease_until {time}",
            # claim() looks for the oldest SCHEDULED run and for expired RUNNING leases.
            "CREATE INDEX riverbed_runs_queue ON riverbed_runs (status, seq)",
        ),
    ),
    Migration(
        3,
        "fenced writes, every run's history, stage runs per attempt, readable input/output",
        (
            # Readable copies of a workflow's input and output, made when they are stored:
            # listings show them without unpickling anything.
            "ALTER TABLE riverbed_runs ADD COLUMN input_repr TEXT",
            "ALTER TABLE riverbed_runs ADD COLUMN output_repr TEXT",
            # Set by every write to a run's row: a write retried after its commit's
            # outcome was lost (a connection dropped mid-commit) finds its own token and
            # knows it went through, instead of applying twice.
            "ALTER TABLE riverbed_runs ADD COLUMN write_token TEXT",
            """CREATE TABLE riverbed_run_history (
                seq {serial_pk},
                run_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                status TEXT NOT NULL,
                at {time} NOT NULL,
                worker TEXT,
                error {json}
            )""",
            "CREATE INDEX riverbed_run_history_run ON riverbed_run_history (run_id, seq)",
            # What the runs went through so far: one entry each, their current status.
            "INSERT INTO riverbed_run_history (run_id, attempt, status, at, worker, error) "
            "SELECT run_id, attempt, status, coalesce(ended_at, started_at, created_at), "
            "worker, error FROM riverbed_runs ORDER BY seq",
            # Stage runs are kept per attempt (a resumed run keeps its earlier attempts'),
            # and count what operators drop: the table is rebuilt with its new key.
            """CREATE TABLE riverbed_stage_runs_v3 (
                seq {serial_pk},
                run_id TEXT NOT NULL,
                stage TEXT NOT NULL,
                kind TEXT NOT NULL,
                status TEXT NOT NULL,
                events_in BIGINT NOT NULL,
                events_out BIGINT NOT NULL,
                errors BIGINT NOT NULL,
                retries BIGINT NOT NULL,
                skipped BIGINT NOT NULL,
                dead_lettered BIGINT NOT NULL,
                dropped BIGINT NOT NULL,
                seconds {real} NOT NULL,
                started_at {time},
                ended_at {time},
                attempt INTEGER NOT NULL,
                UNIQUE (run_id, attempt, stage)
            )""",
            "INSERT INTO riverbed_stage_runs_v3 (run_id, stage, kind, status, events_in, "
            "events_out, errors, retries, skipped, dead_lettered, dropped, seconds, "
            "started_at, ended_at, attempt) SELECT s.run_id, s.stage, s.kind, s.status, "
            "s.events_in, s.events_out, s.errors, s.retries, s.skipped, s.dead_lettered, 0, "
            "s.seconds, s.started_at, s.ended_at, coalesce(r.attempt, 1) "
            "FROM riverbed_stage_runs s LEFT JOIN riverbed_runs r ON r.run_id = s.run_id "
            "ORDER BY s.seq",
            "DROP TABLE riverbed_stage_runs",
            "ALTER TABLE riverbed_stage_runs_v3 RENAME TO riverbed_stage_runs",
        ),
    ),
    Migration(
        4,
        "incremental checkpoints: keyed stages' state in one row per key",
        (
            # One row per key, overwritten in place by the checkpoint that changes it
            # (see riverbed._store.sql.checkpoint_keys); state NULL: the key was removed.
            """CREATE TABLE riverbed_checkpoint_keys (
                run_id TEXT NOT NULL,
                stage TEXT NOT NULL,
                key {blob} NOT NULL,
                checkpoint_id INTEGER NOT NULL,
                state {blob},
                PRIMARY KEY (run_id, stage, key)
            )""",
            # 1: the stage is kept per key at this checkpoint (its state is the rows).
            "ALTER TABLE riverbed_checkpoint_states ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        5,
        "the runner of a run (local, or a Ray cluster)",
        ("ALTER TABLE riverbed_runs ADD COLUMN runner TEXT",),
    ),
    Migration(
        6,
        "indexes for the dashboard's listings: runs by flow and status, by time",
        (
            # A page of runs of one flow in one status is one index range, newest first
            # (the flow's index alone would read past every run of other statuses).
            "CREATE INDEX riverbed_runs_flow_status ON riverbed_runs (flow, status, seq)",
            # "Since a time" reads only the runs created since, however many are older.
            "CREATE INDEX riverbed_runs_created ON riverbed_runs (created_at)",
        ),
    ),
    Migration(
        7,
        "named run queues: a worker claims the runs of the queues it serves; step runs",
        (
            "ALTER TABLE riverbed_runs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default'",
            # A step run: one step of the workflow run `parent`, run on its stage's queue.
            "ALTER TABLE riverbed_runs ADD COLUMN parent TEXT",
            "ALTER TABLE riverbed_runs ADD COLUMN step TEXT",
            # A claim reads one index range per queue it serves, however many runs wait
            # in other queues. Partial: a run leaves it when it is claimed, so the index
            # costs nothing to the runs' later writes.
            "CREATE INDEX riverbed_runs_claim ON riverbed_runs (queue, seq) "
            "WHERE status = 'scheduled'",
        ),
    ),
    Migration(
        8,
        "PostgreSQL notifies channel riverbed_runs when a run is queued or a step run "
        "changes status: waiting workers and workflows hear it at once",
        (
            # The payload is the topic that waiters wait on (the store protocol's
            # queue_topic and run_topic). Equal notifications of one transaction are
            # sent once: a bulk enqueue into one queue is one.
            "CREATE OR REPLACE FUNCTION riverbed_runs_notify() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('riverbed_runs', "
            "CASE WHEN NEW.status = 'scheduled' THEN 'queue:' || NEW.queue "
            "ELSE 'run:' || NEW.run_id END); RETURN NULL; END $$",
            # OF status: lease renewals and other updates never fire it.
            "CREATE TRIGGER riverbed_runs_changed AFTER INSERT OR UPDATE OF status "
            "ON riverbed_runs FOR EACH ROW "
            "WHEN (NEW.status = 'scheduled' OR NEW.parent IS NOT NULL) "
            "EXECUTE FUNCTION riverbed_runs_notify()",
        ),
        only=Dialect.POSTGRESQL,
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The newest schema this riverbed knows."""


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses (sqlite3's and psycopg's both fit)."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any:
        """Run one statement."""

    def fetchone(self) -> Any:
        """The next row, or None."""


def migrate(
    cursor: Cursor,
    dialect: Dialect,
    url: str,
    *,
    target: int = SCHEMA_VERSION,
) -> int:
    """Bring the schema to version ``target`` and return the version it was at.

    ``cursor`` takes ``?`` placeholders (the PostgreSQL store's cursor translates them).

    Runs inside a transaction that the caller holds exclusively (SQLite: ``BEGIN
    IMMEDIATE``; PostgreSQL: an advisory lock), so two processes opening one store at once
    migrate it once. Raises ``StoreVersionError`` if the store is newer than this riverbed.
    """
    cursor.execute("CREATE TABLE IF NOT EXISTS riverbed_meta (key TEXT PRIMARY KEY, value TEXT)")
    found = _version_in_meta(cursor)
    check_not_newer(found, url)
    for migration in MIGRATIONS:
        if found < migration.version <= target:
            for statement in migration.sql(dialect):
                cursor.execute(statement)
    if target > found:
        cursor.execute(
            "INSERT INTO riverbed_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ("schema_version", str(target)),
        )
    return found


_META_EXISTS = {
    Dialect.SQLITE: "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'riverbed_meta'",
    Dialect.POSTGRESQL: "SELECT 1 WHERE to_regclass('riverbed_meta') IS NOT NULL",
}


def stored_version(cursor: Cursor, dialect: Dialect) -> int:
    """The schema version of a store, read without writing anything (0 for an empty
    database): what a read-only opening checks instead of migrating."""
    cursor.execute(_META_EXISTS[dialect])
    if cursor.fetchone() is None:
        return 0
    return _version_in_meta(cursor)


def _version_in_meta(cursor: Cursor) -> int:
    cursor.execute("SELECT value FROM riverbed_meta WHERE key = ?", ("schema_version",))
    row = cursor.fetchone()
    return int(row[0]) if row is not None else 0


def check_not_newer(found: int, url: str) -> None:
    """Refuse a store whose schema version ``found`` is newer than this riverbed knows."""
    if found > SCHEMA_VERSION:
        raise StoreVersionError(
            f"the store at {url} has schema version {found}, but this riverbed "
            f"({RIVERBED_VERSION}) knows up to {SCHEMA_VERSION}: upgrade riverbed",
            url=url,
            found=found,
            known=SCHEMA_VERSION,
        )
