"""The store's logic in SQL that SQLite and PostgreSQL share.

``SQLStore`` implements every ``Store`` method on top of two hooks a backend provides:
``_write()``, a transaction that a concurrent writer of the same run cannot interleave with,
and ``_statement()``, a cursor whose statements each stand alone as their own transaction
(reads, and writes of one statement). Statements are written once, with ``?``
placeholders; the PostgreSQL backend turns them into ``%s``. What only one database can
do well (claiming from the queue with ``SKIP LOCKED``, the database's clock for leases, a
one-round-trip ``record_step``) is overridden in the backend.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol

from riverbed._errors import DuplicateRunError, InternalError, RunNotFoundError
from riverbed._store.codec import (
    CHECKPOINT_COLUMNS,
    DEAD_LETTER_COLUMNS,
    RUN_COLUMNS,
    STAGE_RUN_COLUMNS,
    STEP_COLUMNS,
    Codec,
)
from riverbed._store.records import (
    Checkpoint,
    DeadLetterRecord,
    RunRecord,
    RunStatus,
    StageRun,
    StepCommit,
    StepRecord,
    check_transition,
)

__all__ = ["SQLStore", "Tx"]

_RUNS = ", ".join(RUN_COLUMNS)
_STAGE_RUNS = ", ".join(STAGE_RUN_COLUMNS)
_STEPS = ", ".join(STEP_COLUMNS)
_DEAD = ", ".join(DEAD_LETTER_COLUMNS)
_CHECKPOINTS = ", ".join(CHECKPOINT_COLUMNS)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


INSERT_RUN = f"INSERT INTO riverbed_runs ({_RUNS}) VALUES ({_marks(len(RUN_COLUMNS))})"
UPSERT_STAGE_RUN = (
    f"INSERT INTO riverbed_stage_runs ({_STAGE_RUNS}) VALUES ({_marks(len(STAGE_RUN_COLUMNS))}) "
    "ON CONFLICT (run_id, stage) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in STAGE_RUN_COLUMNS[2:])
)
INSERT_STEP = f"INSERT INTO riverbed_steps ({_STEPS}) VALUES ({_marks(len(STEP_COLUMNS))})"
INSERT_DEAD_LETTER = (
    f"INSERT INTO riverbed_dead_letters ({', '.join(DEAD_LETTER_COLUMNS[1:])}) "
    f"VALUES ({_marks(len(DEAD_LETTER_COLUMNS) - 1)}) RETURNING id"
)
MIN_PREFIX = 6
"""The shortest run id prefix ``get_run`` looks up (like git's short hashes)."""


class Tx(Protocol):
    """A cursor inside one transaction, with ``?`` placeholders whatever the dialect."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> object:
        """Run one statement."""

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> object:
        """Run one statement once per row of parameters."""

    def fetchone(self) -> Any:
        """The next row of the last statement (a tuple), or None."""

    def fetchall(self) -> list[Any]:
        """The remaining rows of the last statement (tuples)."""

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""


class SQLStore(abc.ABC):
    """Every ``Store`` method in SQL common to SQLite and PostgreSQL (see the module doc)."""

    url: str
    """Where the store is, without any password."""
    _codec: Codec
    _for_update: str = ""
    """Appended to the SELECT that reads a run before changing its status: the row lock on
    PostgreSQL; empty on SQLite, whose ``BEGIN IMMEDIATE`` already excludes other writers."""
    _integrity_errors: tuple[type[Exception], ...] = ()

    # -- hooks --------------------------------------------------------------------------------

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Tx]:
        """A write transaction, committed when the block ends and rolled back on error."""

    def _statement(self) -> AbstractContextManager[Tx]:
        """A cursor whose every statement is its own transaction."""
        return self._write()

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's connections. The store cannot be used afterwards."""

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, run: RunRecord) -> None:
        """Store a new run; ``DuplicateRunError`` if its id is taken."""
        row = self._codec.run_in(run)
        with self._write() as tx:
            try:
                tx.execute(INSERT_RUN, row)
            except self._integrity_errors as exc:
                raise DuplicateRunError(
                    f"a run with id {run.run_id!r} is already stored in {self.url}; "
                    "give the new run a fresh id",
                    run_id=run.run_id,
                    url=self.url,
                ) from exc

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or with this unique prefix of at least 6 characters."""
        with self._statement() as tx:
            tx.execute(f"SELECT {_RUNS} FROM riverbed_runs WHERE run_id = ?", (run_id,))
            row = tx.fetchone()
            if row is not None:
                return self._codec.run_out(row)
            matches: list[tuple[Any, ...]] = []
            if len(run_id) >= MIN_PREFIX:
                # A scan, not an index range: ranges on text depend on the collation.
                tx.execute(
                    f"SELECT {_RUNS} FROM riverbed_runs WHERE substr(run_id, 1, ?) = ? "
                    "ORDER BY seq LIMIT 6",
                    (len(run_id), run_id),
                )
                matches = tx.fetchall()
        if len(matches) == 1:
            return self._codec.run_out(matches[0])
        raise self._not_found(run_id, tuple(m[0] for m in matches))

    def _not_found(self, run_id: str, candidates: tuple[str, ...] = ()) -> RunNotFoundError:
        if candidates:
            listed = ", ".join(candidates[:5]) + (", ..." if len(candidates) > 5 else "")
            message = (
                f"run id prefix {run_id!r} is ambiguous in {self.url}: it matches {listed}; "
                "give more characters"
            )
        else:
            message = (
                f"no run {run_id!r} in {self.url}; `riverbed runs list` shows the stored runs "
                f"(ids, or unique prefixes of at least {MIN_PREFIX} characters, are accepted)"
            )
        return RunNotFoundError(message, run_id=run_id, url=self.url, candidates=candidates)

    def list_runs(
        self,
        *,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs, newest first, of one flow and/or in one status if given."""
        where, params = _where(flow=flow, status=status.value if status else None)
        with self._statement() as tx:
            tx.execute(
                f"SELECT {_RUNS} FROM riverbed_runs{where} ORDER BY seq DESC LIMIT ?",
                (*params, limit),
            )
            rows = tx.fetchall()
        return [self._codec.run_out(row) for row in rows]

    def transition(self, run_id: str, new: RunStatus, **fields: Any) -> RunRecord:
        """Move a run to status ``new`` and set ``fields``, atomically (see ``Store``)."""
        self._codec.check_fields(fields, "transition")
        values = [self._codec.run_field_in(name, value) for name, value in fields.items()]
        sets = ", ".join(f"{name} = ?" for name in ("status", *fields))
        with self._write() as tx:
            tx.execute(
                f"SELECT status FROM riverbed_runs WHERE run_id = ?{self._for_update}", (run_id,)
            )
            row = tx.fetchone()
            if row is None:
                raise self._not_found(run_id)
            check_transition(RunStatus(row[0]), new, run_id=run_id)
            tx.execute(
                f"UPDATE riverbed_runs SET {sets} WHERE run_id = ? RETURNING {_RUNS}",
                (new.value, *values, run_id),
            )
            updated = tx.fetchone()
        if updated is None:
            raise InternalError(f"run {run_id!r} vanished while locked for a transition")
        return self._codec.run_out(updated)

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set non-status fields of a run (e.g. ``params``)."""
        self._codec.check_fields(fields, "update_run")
        values = [self._codec.run_field_in(name, value) for name, value in fields.items()]
        sets = ", ".join(f"{name} = ?" for name in fields) or "run_id = run_id"
        with self._write() as tx:
            tx.execute(f"UPDATE riverbed_runs SET {sets} WHERE run_id = ?", (*values, run_id))
            if tx.rowcount == 0:
                raise self._not_found(run_id)

    # -- stage runs -------------------------------------------------------------------------

    def save_stage_runs(self, run_id: str, stage_runs: Sequence[StageRun]) -> None:
        """Insert or update stage runs of one run, by (run_id, stage)."""
        rows = self._stage_run_rows(run_id, stage_runs)
        if rows:
            with self._write() as tx:
                tx.executemany(UPSERT_STAGE_RUN, rows)

    def _stage_run_rows(self, run_id: str, stage_runs: Sequence[StageRun]) -> list[tuple[Any, ...]]:
        for stage_run in stage_runs:
            if stage_run.run_id != run_id:
                raise ValueError(
                    f"stage run {stage_run.stage!r} belongs to run {stage_run.run_id!r}, "
                    f"not {run_id!r}; save each run's stage runs with its own id"
                )
        return [self._codec.stage_run_in(stage_run) for stage_run in stage_runs]

    def stage_runs(self, run_id: str) -> list[StageRun]:
        """A run's stage runs, in the order they were first saved."""
        with self._statement() as tx:
            tx.execute(
                f"SELECT {_STAGE_RUNS} FROM riverbed_stage_runs WHERE run_id = ? ORDER BY seq",
                (run_id,),
            )
            rows = tx.fetchall()
        return [self._codec.stage_run_out(row) for row in rows]

    # -- checkpoints --------------------------------------------------------------------------

    KEEP_CHECKPOINTS = 2
    """Checkpoints kept per run: the newest, and the one before in case the newest is torn
    on a disk that lies about flushes."""

    def commit_checkpoint(
        self,
        checkpoint: Checkpoint,
        stage_runs: Sequence[StageRun] = (),
        dead_letters: Sequence[DeadLetterRecord] = (),
    ) -> None:
        """Store a checkpoint, its stage runs and dead letters in one transaction."""
        run_id = checkpoint.run_id
        head = self._codec.checkpoint_in(checkpoint)
        states = [(run_id, checkpoint.checkpoint_id, s, b) for s, b in checkpoint.states.items()]
        stage_rows = self._stage_run_rows(run_id, stage_runs)
        letter_rows = [self._codec.dead_letter_in(letter) for letter in dead_letters]
        with self._write() as tx:
            tx.execute(
                f"INSERT INTO riverbed_checkpoints ({_CHECKPOINTS}) "
                f"VALUES ({_marks(len(CHECKPOINT_COLUMNS))})",
                head,
            )
            if states:
                tx.executemany(
                    "INSERT INTO riverbed_checkpoint_states (run_id, checkpoint_id, stage, state) "
                    "VALUES (?, ?, ?, ?)",
                    states,
                )
            if stage_rows:
                tx.executemany(UPSERT_STAGE_RUN, stage_rows)
            for row in letter_rows:
                tx.execute(INSERT_DEAD_LETTER, row)
            tx.execute(
                "SELECT checkpoint_id FROM riverbed_checkpoints WHERE run_id = ? "
                "ORDER BY checkpoint_id DESC LIMIT 1 OFFSET ?",
                (run_id, self.KEEP_CHECKPOINTS - 1),
            )
            oldest_kept = tx.fetchone()
            if oldest_kept is not None:
                for table in ("riverbed_checkpoint_states", "riverbed_checkpoints"):
                    tx.execute(
                        f"DELETE FROM {table} WHERE run_id = ? AND checkpoint_id < ?",
                        (run_id, oldest_kept[0]),
                    )

    def latest_checkpoint(self, run_id: str) -> Checkpoint | None:
        """The run's newest checkpoint, or None if it has none."""
        # One statement, so that it reads one consistent cut even without a transaction.
        columns = ", ".join(f"c.{column}" for column in CHECKPOINT_COLUMNS)
        with self._statement() as tx:
            tx.execute(
                f"SELECT {columns}, s.stage, s.state FROM riverbed_checkpoints c "
                "LEFT JOIN riverbed_checkpoint_states s "
                "ON s.run_id = c.run_id AND s.checkpoint_id = c.checkpoint_id "
                "WHERE c.run_id = ? AND c.checkpoint_id = "
                "(SELECT max(checkpoint_id) FROM riverbed_checkpoints WHERE run_id = ?) "
                "ORDER BY s.stage",
                (run_id, run_id),
            )
            rows = tx.fetchall()
        if not rows:
            return None
        width = len(CHECKPOINT_COLUMNS)
        states = [row[width:] for row in rows if row[width] is not None]
        return self._codec.checkpoint_out(rows[0][:width], states)

    # -- dead letters -------------------------------------------------------------------------

    def add_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> list[int]:
        """Store dead letters; return the ids assigned, in order."""
        rows = [self._codec.dead_letter_in(letter) for letter in letters]
        ids: list[int] = []
        if rows:
            with self._write() as tx:
                for row in rows:
                    tx.execute(INSERT_DEAD_LETTER, row)
                    inserted = tx.fetchone()
                    if inserted is None:
                        raise InternalError("INSERT ... RETURNING id returned no row")
                    ids.append(int(inserted[0]))
        return ids

    def dead_letters(
        self,
        *,
        run_id: str | None = None,
        flow: str | None = None,
        stage: str | None = None,
        replayed: bool | None = None,
        limit: int = 1000,
    ) -> list[DeadLetterRecord]:
        """Dead letters matching every filter given, oldest first."""
        where, params = _where(run_id=run_id, flow=flow, stage=stage)
        if replayed is not None:
            test = "replayed_by IS NOT NULL" if replayed else "replayed_by IS NULL"
            where += f" AND {test}" if where else f" WHERE {test}"
        with self._statement() as tx:
            tx.execute(
                f"SELECT {_DEAD} FROM riverbed_dead_letters{where} ORDER BY id LIMIT ?",
                (*params, limit),
            )
            rows = tx.fetchall()
        return [self._codec.dead_letter_out(row) for row in rows]

    def mark_replayed(self, ids: Sequence[int], by_run: str) -> None:
        """Record that run ``by_run`` replayed the dead letters ``ids``."""
        if ids:
            with self._write() as tx:
                tx.executemany(
                    "UPDATE riverbed_dead_letters SET replayed_by = ? WHERE id = ?",
                    [(by_run, letter_id) for letter_id in ids],
                )

    # -- step cache ---------------------------------------------------------------------------

    def cache_get(self, stage: str, stage_version: str, digest: str) -> bytes | None:
        """The cached outputs of ``stage`` at ``stage_version`` for input ``digest``."""
        with self._statement() as tx:
            tx.execute(
                "SELECT outputs FROM riverbed_step_cache "
                "WHERE stage = ? AND stage_version = ? AND digest = ?",
                (stage, stage_version, digest),
            )
            row = tx.fetchone()
        return bytes(row[0]) if row is not None else None

    def cache_put(
        self, stage: str, stage_version: str, digest: str, outputs: bytes, run_id: str
    ) -> None:
        """Cache outputs; if the key is cached already, keep the first (they are equal)."""
        with self._write() as tx:
            tx.execute(
                "INSERT INTO riverbed_step_cache "
                "(stage, stage_version, digest, outputs, run_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    stage,
                    stage_version,
                    digest,
                    outputs,
                    run_id,
                    self._codec.time_in(datetime.now(UTC), "created_at"),
                ),
            )

    def cache_clear(self, stage: str | None = None) -> int:
        """Forget cached outputs of one stage, or of all; return how many were removed."""
        where, params = _where(stage=stage)
        with self._write() as tx:
            tx.execute(f"DELETE FROM riverbed_step_cache{where}", params)
            return tx.rowcount

    # -- workflow steps -----------------------------------------------------------------------

    def record_step(self, step: StepRecord, stage_run: StageRun | None = None) -> None:
        """Store a completed step (and its stage run) durably, in one transaction."""
        stage_row = self._stage_run_rows(step.run_id, [stage_run])[0] if stage_run else None
        with self._write() as tx:
            tx.execute(INSERT_STEP, self._codec.step_in(step))
            if stage_row is not None:
                tx.execute(UPSERT_STAGE_RUN, stage_row)

    def steps(self, run_id: str) -> list[StepRecord]:
        """A run's completed steps, by ``seq``."""
        with self._statement() as tx:
            tx.execute(
                f"SELECT {_STEPS} FROM riverbed_steps WHERE run_id = ? ORDER BY seq", (run_id,)
            )
            rows = tx.fetchall()
        return [self._codec.step_out(row) for row in rows]

    # -- queue --------------------------------------------------------------------------------

    _skip_locked: str = ""
    """Appended to the queue's SELECTs: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so that
    concurrent workers pass over each other's rows instead of waiting or taking them."""

    def _clock(self) -> tuple[str, tuple[Any, ...]]:
        """SQL for "now" and its parameters. Leases are compared with one clock: the
        database's on PostgreSQL, since the machines' clocks differ; this machine's on
        SQLite, which only this machine's processes share."""
        return "?", (self._codec.time_in(datetime.now(UTC), "now"),)

    def _lease_end(self, lease_seconds: float) -> tuple[str, tuple[Any, ...]]:
        """SQL for "now + lease_seconds" and its parameters."""
        until = datetime.now(UTC) + timedelta(seconds=lease_seconds)
        return "?", (self._codec.time_in(until, "lease_until"),)

    def enqueue(self, run: RunRecord) -> None:
        """Store ``run`` as SCHEDULED, for a worker's ``claim`` to take."""
        self.create_run(
            dataclasses.replace(run, status=RunStatus.SCHEDULED, worker=None, lease_until=None)
        )

    def claim(self, worker: str, lease_seconds: float) -> RunRecord | None:
        """Take the oldest SCHEDULED run, else a RUNNING one whose lease expired, for
        ``worker``; None if there is neither (see ``Store.claim``)."""
        now_sql, now_args = self._clock()
        until_sql, until_args = self._lease_end(lease_seconds)
        with self._write() as tx:
            tx.execute(
                "SELECT run_id FROM riverbed_runs WHERE status = ? "
                f"ORDER BY seq LIMIT 1{self._skip_locked}",
                (RunStatus.SCHEDULED.value,),
            )
            row = tx.fetchone()
            crashed = row is None
            if crashed:
                # Its worker died or hung: the run CRASHED, and this worker resumes it.
                tx.execute(
                    # Only runs with a target: a worker must be able to load their flow
                    # (a run started from Python is resumed from Python).
                    f"SELECT run_id FROM riverbed_runs WHERE status = ? AND lease_until < "
                    f"{now_sql} AND target IS NOT NULL ORDER BY lease_until "
                    f"LIMIT 1{self._skip_locked}",
                    (RunStatus.RUNNING.value, *now_args),
                )
                row = tx.fetchone()
                if row is None:
                    return None
                check_transition(RunStatus.RUNNING, RunStatus.CRASHED, run_id=row[0])
                check_transition(RunStatus.CRASHED, RunStatus.RUNNING, run_id=row[0])
            else:
                check_transition(RunStatus.SCHEDULED, RunStatus.RUNNING, run_id=row[0])
            tx.execute(
                f"UPDATE riverbed_runs SET status = ?, worker = ?, lease_until = {until_sql}, "
                f"started_at = coalesce(started_at, {now_sql}), attempt = attempt + ? "
                f"WHERE run_id = ? RETURNING {_RUNS}",
                (
                    RunStatus.RUNNING.value,
                    worker,
                    *until_args,
                    *now_args,
                    1 if crashed else 0,
                    row[0],
                ),
            )
            claimed = tx.fetchone()
        if claimed is None:
            raise InternalError(f"run {row[0]!r} vanished while locked for a claim")
        return self._codec.run_out(claimed)

    def renew_lease(self, run_id: str, worker: str, lease_seconds: float) -> bool:
        """Extend ``worker``'s lease on a RUNNING run; False if it no longer holds it."""
        until_sql, until_args = self._lease_end(lease_seconds)
        with self._write() as tx:
            tx.execute(
                f"UPDATE riverbed_runs SET lease_until = {until_sql} "
                "WHERE run_id = ? AND worker = ? AND status = ?",
                (*until_args, run_id, worker, RunStatus.RUNNING.value),
            )
            return tx.rowcount == 1

    def release(self, run_id: str, worker: str) -> bool:
        """Give up ``worker``'s lease on a RUNNING run at once (a worker shutting down):
        the next ``claim`` anywhere resumes it. False if ``worker`` did not hold it."""
        now_sql, now_args = self._clock()
        with self._write() as tx:
            tx.execute(
                f"UPDATE riverbed_runs SET lease_until = {now_sql} "
                "WHERE run_id = ? AND worker = ? AND status = ?",
                (*now_args, run_id, worker, RunStatus.RUNNING.value),
            )
            return tx.rowcount == 1

    # -- workflow commits ---------------------------------------------------------------------

    def commit_steps(self, commits: Sequence[StepCommit]) -> None:
        """Apply the commits (run creations, steps, stage runs, status changes) in one
        durable transaction; all or nothing (see ``Store.commit_steps``)."""
        if commits:
            with self._write() as tx:
                _commit_steps(self, tx, commits)


def _where(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    """`` WHERE a = ? AND b = ?`` for the filters that are not None, and their values."""
    given = {name: value for name, value in filters.items() if value is not None}
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{name} = ?" for name in given), tuple(given.values())


def _predecessors(new: RunStatus) -> tuple[str, ...]:
    """The stored statuses from which a run may move to ``new``."""
    return tuple(old.value for old in RunStatus if new in old.successors)


def _commit_steps(store: SQLStore, tx: Tx, commits: Sequence[StepCommit]) -> None:
    """``SQLStore.commit_steps`` inside the transaction ``tx``: one statement per kind of
    row for the whole group (so a group of concurrent workflows' steps costs a handful of
    round trips), then each run's status change as a compare-and-set on its row."""
    codec = store._codec
    runs = [codec.run_in(commit.run) for commit in commits if commit.run is not None]
    steps = [codec.step_in(commit.step) for commit in commits if commit.step is not None]
    stage_rows = [
        row
        for commit in commits
        if commit.stage_run is not None
        for row in store._stage_run_rows(commit.run_id, [commit.stage_run])
    ]
    for commit in commits:
        for record in (commit.run, commit.step):
            if record is not None and record.run_id != commit.run_id:
                raise ValueError(
                    f"StepCommit of run {commit.run_id!r} holds a {type(record).__name__} of "
                    f"run {record.run_id!r}; each commit writes one run's records"
                )
    if runs:
        try:
            tx.executemany(INSERT_RUN, runs)
        except store._integrity_errors as exc:
            ids = ", ".join(row[RUN_COLUMNS.index("run_id")] for row in runs)
            raise DuplicateRunError(
                f"a run with id {ids if len(runs) == 1 else 'among ' + ids} is already "
                f"stored in {store.url}; give the new run a fresh id",
                run_id=ids,
                url=store.url,
            ) from exc
    if steps:
        tx.executemany(INSERT_STEP, steps)
    if stage_rows:
        tx.executemany(UPSERT_STAGE_RUN, stage_rows)
    for commit in commits:
        if commit.status is not None:
            _set_status(store, tx, commit.run_id, commit.status, commit.fields)


def _set_status(
    store: SQLStore, tx: Tx, run_id: str, new: RunStatus, fields: dict[str, Any]
) -> None:
    """``transition`` inside ``tx``, in one statement on the happy path: the UPDATE itself
    checks that the run's current status may go to ``new``."""
    store._codec.check_fields(fields, "commit_steps")
    values = [store._codec.run_field_in(name, value) for name, value in fields.items()]
    sets = ", ".join(f"{name} = ?" for name in ("status", *fields))
    legal = _predecessors(new)
    tx.execute(
        f"UPDATE riverbed_runs SET {sets} WHERE run_id = ? AND status IN ({_marks(len(legal))})",
        (new.value, *values, run_id, *legal),
    )
    if tx.rowcount == 1:
        return
    tx.execute("SELECT status FROM riverbed_runs WHERE run_id = ?", (run_id,))
    row = tx.fetchone()
    if row is None:
        raise store._not_found(run_id)
    check_transition(RunStatus(row[0]), new, run_id=run_id)
    raise InternalError(f"run {run_id!r}: status {row[0]} may go to {new.value}, yet did not")
