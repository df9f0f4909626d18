"""The store's logic in SQL that SQLite and PostgreSQL share.

``SQLStore`` implements every ``Store`` method on top of two hooks a backend provides:
``_write()``, a transaction that a concurrent writer of the same run cannot interleave with,
and ``_statement()``, a cursor whose statements each stand alone as their own transaction
(reads, and writes of one statement). Statements are written once, with ``?``
placeholders; the PostgreSQL backend turns them into ``%s``. What only one database can
do well (claiming from the queue with ``SKIP LOCKED``, the database's clock for leases,
one-statement group commits) is overridden in the backend.

Every method is retried through transient errors (``retry``), and every write a run makes
is fenced by its lease and recorded in its history (``fencing``).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from riverbed._errors import DuplicateRunError, InternalError, RunNotFoundError
from riverbed._records import (
    Checkpoint,
    DeadLetterRecord,
    Lease,
    RunRecord,
    RunStatus,
    RunTransition,
    StageRun,
    StepCommit,
    StepRecord,
    check_transition,
)
from riverbed._store.checkpoint_keys import KeysMoved, read_keyed, state_rows, write_keyed
from riverbed._store.codec import (
    CHECKPOINT_COLUMNS,
    DEAD_LETTER_COLUMNS,
    HISTORY_COLUMNS,
    RUN_COLUMNS,
    STAGE_RUN_COLUMNS,
    STEP_COLUMNS,
    Codec,
)
from riverbed._store.fencing import HOLDS, Tx, fence, holds, lease_lost, record_transition, wrote
from riverbed._store.retry import new_token, retrying

__all__ = ["SQLStore", "Tx"]

T = TypeVar("T")

_RUNS = ", ".join(RUN_COLUMNS)
_STAGE_RUNS = ", ".join(STAGE_RUN_COLUMNS)
_STEPS = ", ".join(STEP_COLUMNS)
_DEAD = ", ".join(DEAD_LETTER_COLUMNS)
_CHECKPOINTS = ", ".join(CHECKPOINT_COLUMNS)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


INSERT_RUN = (
    f"INSERT INTO riverbed_runs ({_RUNS}, write_token) VALUES ({_marks(len(RUN_COLUMNS) + 1)})"
)
"""A run's columns, then the token of the write that creates it."""
UPSERT_STAGE_RUN = (
    f"INSERT INTO riverbed_stage_runs ({_STAGE_RUNS}) VALUES ({_marks(len(STAGE_RUN_COLUMNS))}) "
    "ON CONFLICT (run_id, attempt, stage) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}" for c in STAGE_RUN_COLUMNS if c not in ("run_id", "stage", "attempt")
    )
)
INSERT_STEP = f"INSERT INTO riverbed_steps ({_STEPS}) VALUES ({_marks(len(STEP_COLUMNS))})"
INSERT_DEAD_LETTER = (
    f"INSERT INTO riverbed_dead_letters ({', '.join(DEAD_LETTER_COLUMNS[1:])}) "
    f"VALUES ({_marks(len(DEAD_LETTER_COLUMNS) - 1)}) RETURNING id"
)
MIN_PREFIX = 6
"""The shortest run id prefix ``get_run`` looks up (like git's short hashes)."""


class SQLStore(abc.ABC):
    """Every ``Store`` method in SQL common to SQLite and PostgreSQL (see the module doc)."""

    url: str
    """Where the store is, without any password."""
    _codec: Codec
    _for_update: str = ""
    """Appended to the SELECT that reads a run before changing its status: the row lock on
    PostgreSQL; empty on SQLite, whose ``BEGIN IMMEDIATE`` already excludes other writers."""
    _integrity_errors: tuple[type[Exception], ...] = ()
    retry_seconds: float | None = None
    """How long a call keeps trying through transient errors (None: ``RETRY_SECONDS``)."""

    # -- hooks --------------------------------------------------------------------------------

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Tx]:
        """A write transaction, committed when the block ends and rolled back on error.
        Transient failures (connection lost, database locked) raise
        ``StoreUnavailableError``, which ``_retrying`` retries."""

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

    def _retrying(self, attempt: Callable[[bool], T]) -> T:
        """``attempt(retry)``, retried through transient errors (see ``retry``)."""
        return retrying(f"the store {self.url}", attempt, url=self.url, seconds=self.retry_seconds)

    def _read(self, read: Callable[[Tx], T]) -> T:
        """``read(tx)`` in a statement cursor, retried through transient errors."""

        def attempt(retry: bool) -> T:
            with self._statement() as tx:
                return read(tx)

        return self._retrying(attempt)

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, run: RunRecord) -> None:
        """Store a new run; ``DuplicateRunError`` if its id is taken."""
        self._insert_runs([run])

    def _insert_runs(self, runs: Sequence[RunRecord]) -> None:
        """Insert new runs and their first history entries, in one transaction."""
        rows = [self._codec.run_in(run) for run in runs]
        token = new_token()

        def attempt(retry: bool) -> None:
            with self._write() as tx:
                if retry and wrote(tx, runs[0].run_id, token):
                    return
                _insert_runs(self, tx, runs, rows, token)

        self._retrying(attempt)

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or with this unique prefix of at least 6 characters."""

        def read(tx: Tx) -> tuple[Any, list[Any]]:
            tx.execute(f"SELECT {_RUNS} FROM riverbed_runs WHERE run_id = ?", (run_id,))
            row = tx.fetchone()
            if row is not None or len(run_id) < MIN_PREFIX:
                return row, []
            # A scan, not an index range: ranges on text depend on the collation.
            tx.execute(
                f"SELECT {_RUNS} FROM riverbed_runs WHERE substr(run_id, 1, ?) = ? "
                "ORDER BY seq LIMIT 6",
                (len(run_id), run_id),
            )
            return None, tx.fetchall()

        row, matches = self._read(read)
        if row is not None:
            return self._codec.run_out(row)
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

        def read(tx: Tx) -> list[Any]:
            tx.execute(
                f"SELECT {_RUNS} FROM riverbed_runs{where} ORDER BY seq DESC LIMIT ?",
                (*params, limit),
            )
            return tx.fetchall()

        return [self._codec.run_out(row) for row in self._read(read)]

    def history(self, run_id: str) -> list[RunTransition]:
        """Every status the run went through, oldest first."""

        def read(tx: Tx) -> list[Any]:
            tx.execute(
                f"SELECT {', '.join(HISTORY_COLUMNS)} FROM riverbed_run_history "
                "WHERE run_id = ? ORDER BY seq",
                (run_id,),
            )
            return tx.fetchall()

        return [self._codec.history_out(row) for row in self._read(read)]

    def transition(
        self, run_id: str, new: RunStatus, *, lease: Lease | None = None, **fields: Any
    ) -> RunRecord:
        """Move a run to status ``new`` and set ``fields``, atomically (see ``Store``);
        under ``lease``, only while it holds the run."""
        self._codec.check_fields(fields, "transition")
        values = [self._codec.run_field_in(name, value) for name, value in fields.items()]
        sets = ", ".join(f"{name} = ?" for name in ("status", *fields, "write_token"))
        token = new_token()

        def attempt(retry: bool) -> Any:
            with self._write() as tx:
                if retry and wrote(tx, run_id, token):
                    tx.execute(f"SELECT {_RUNS} FROM riverbed_runs WHERE run_id = ?", (run_id,))
                    return tx.fetchone()
                tx.execute(
                    f"SELECT status, worker, attempt FROM riverbed_runs WHERE run_id = ?"
                    f"{self._for_update}",
                    (run_id,),
                )
                row = tx.fetchone()
                if row is None:
                    raise self._not_found(run_id)
                if lease is not None and tuple(row) != ("running", lease.worker, lease.attempt):
                    raise lease_lost(tx, lease, self.url)
                check_transition(RunStatus(row[0]), new, run_id=run_id)
                tx.execute(
                    f"UPDATE riverbed_runs SET {sets} WHERE run_id = ? RETURNING {_RUNS}",
                    (new.value, *values, token, run_id),
                )
                updated = tx.fetchone()
                if updated is None:
                    raise InternalError(f"run {run_id!r} vanished while locked for a transition")
                self._record(tx, self._codec.run_out(updated))
                return updated

        return self._codec.run_out(self._retrying(attempt))

    def _record(self, tx: Tx, run: RunRecord) -> None:
        """Append ``run``'s current status to its history, inside ``tx``."""
        record_transition(
            tx,
            self._codec,
            run.run_id,
            run.attempt,
            run.status,
            datetime.now(UTC),
            run.worker,
            run.error if run.status is RunStatus.FAILED else None,
        )

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set non-status fields of a run (e.g. ``params``)."""
        self._codec.check_fields(fields, "update_run")
        values = [self._codec.run_field_in(name, value) for name, value in fields.items()]
        sets = ", ".join(f"{name} = ?" for name in fields) or "run_id = run_id"

        def attempt(retry: bool) -> None:
            with self._write() as tx:
                tx.execute(f"UPDATE riverbed_runs SET {sets} WHERE run_id = ?", (*values, run_id))
                if tx.rowcount == 0:
                    raise self._not_found(run_id)

        self._retrying(attempt)

    # -- stage runs -------------------------------------------------------------------------

    def save_stage_runs(
        self, run_id: str, stage_runs: Sequence[StageRun], *, lease: Lease | None = None
    ) -> None:
        """Insert or update stage runs of one run, by (run_id, attempt, stage)."""
        rows = self._stage_run_rows(run_id, stage_runs)
        if rows:
            self._fenced(run_id, lease, lambda tx: tx.executemany(UPSERT_STAGE_RUN, rows))

    def _fenced(self, run_id: str, lease: Lease | None, write: Callable[[Tx], object]) -> None:
        """``write(tx)`` in one transaction fenced by ``lease``, retried through transient
        errors without applying twice."""
        token = new_token()

        def attempt(retry: bool) -> None:
            with self._write() as tx:
                if retry and lease is not None and wrote(tx, run_id, token):
                    return
                fence(tx, lease, token, self.url)
                write(tx)

        self._retrying(attempt)

    def _stage_run_rows(self, run_id: str, stage_runs: Sequence[StageRun]) -> list[tuple[Any, ...]]:
        for stage_run in stage_runs:
            if stage_run.run_id != run_id:
                raise ValueError(
                    f"stage run {stage_run.stage!r} belongs to run {stage_run.run_id!r}, "
                    f"not {run_id!r}; save each run's stage runs with its own id"
                )
        return [self._codec.stage_run_in(stage_run) for stage_run in stage_runs]

    def stage_runs(self, run_id: str, *, attempt: int | None = None) -> list[StageRun]:
        """A run's stage runs in the order they were first saved: of ``attempt``, or the
        latest record of each stage (a workflow's steps replayed in a later attempt keep
        the record of the attempt that ran them)."""
        params: tuple[Any, ...] = (run_id,)
        if attempt is not None:
            where, params = "run_id = ? AND attempt = ?", (run_id, attempt)
        else:
            where = (
                "run_id = ? AND attempt = (SELECT max(l.attempt) FROM riverbed_stage_runs l "
                "WHERE l.run_id = riverbed_stage_runs.run_id "
                "AND l.stage = riverbed_stage_runs.stage)"
            )

        def read(tx: Tx) -> list[Any]:
            tx.execute(
                f"SELECT {_STAGE_RUNS} FROM riverbed_stage_runs WHERE {where} ORDER BY seq", params
            )
            return tx.fetchall()

        return [self._codec.stage_run_out(row) for row in self._read(read)]

    # -- checkpoints --------------------------------------------------------------------------

    KEEP_CHECKPOINTS = 2
    """Checkpoints kept per run: the newest, and the one before in case the newest is torn
    on a disk that lies about flushes."""

    def commit_checkpoint(
        self,
        checkpoint: Checkpoint,
        stage_runs: Sequence[StageRun] = (),
        dead_letters: Sequence[DeadLetterRecord] = (),
        *,
        lease: Lease | None = None,
    ) -> None:
        """Store a checkpoint, its stage runs and dead letters in one transaction, fenced
        by ``lease``."""
        run_id = checkpoint.run_id
        head = self._codec.checkpoint_in(checkpoint)
        states = state_rows(checkpoint)
        stage_rows = self._stage_run_rows(run_id, stage_runs)
        letter_rows = [self._codec.dead_letter_in(letter) for letter in dead_letters]

        def write(tx: Tx) -> None:
            write_keyed(tx, checkpoint)
            tx.execute(
                f"INSERT INTO riverbed_checkpoints ({_CHECKPOINTS}) "
                f"VALUES ({_marks(len(CHECKPOINT_COLUMNS))})",
                head,
            )
            if states:
                tx.executemany(
                    "INSERT INTO riverbed_checkpoint_states "
                    "(run_id, checkpoint_id, stage, state, keyed) VALUES (?, ?, ?, ?, ?)",
                    states,
                )
            if stage_rows:
                tx.executemany(UPSERT_STAGE_RUN, stage_rows)
            for row in letter_rows:
                tx.execute(INSERT_DEAD_LETTER, row)
            self._prune_checkpoints(tx, run_id)

        self._fenced(run_id, lease, write)

    def _prune_checkpoints(self, tx: Tx, run_id: str) -> None:
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
        # One statement for the checkpoint and its whole states, so that it reads one
        # consistent cut even without a transaction; the keyed stages' rows in a second,
        # read again if a newer checkpoint was committed in between (``KeysMoved``).
        columns = ", ".join(f"c.{column}" for column in CHECKPOINT_COLUMNS)
        width = len(CHECKPOINT_COLUMNS)

        def read(tx: Tx) -> Checkpoint | None:
            tx.execute(
                f"SELECT {columns}, s.stage, s.state, s.keyed FROM riverbed_checkpoints c "
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
            stages = [row[width:] for row in rows if row[width] is not None]
            whole = [(stage, state) for stage, state, keyed in stages if not keyed]
            checkpoint = self._codec.checkpoint_out(rows[0][:width], whole)
            names = [stage for stage, _, keyed in stages if keyed]
            if not names:
                return checkpoint
            keyed = read_keyed(tx, run_id, checkpoint.checkpoint_id, names)
            return dataclasses.replace(checkpoint, keyed=keyed, complete=frozenset(keyed))

        while True:
            try:
                return self._read(read)
            except KeysMoved:
                continue

    # -- dead letters -------------------------------------------------------------------------

    def add_dead_letters(
        self, letters: Sequence[DeadLetterRecord], *, lease: Lease | None = None
    ) -> list[int]:
        """Store dead letters (fenced by ``lease`` if given); return the ids assigned, in
        order (empty when a retried call found its earlier try committed)."""
        rows = [self._codec.dead_letter_in(letter) for letter in letters]
        ids: list[int] = []
        if not rows:
            return ids

        def write(tx: Tx) -> None:
            ids.clear()
            for row in rows:
                tx.execute(INSERT_DEAD_LETTER, row)
                inserted = tx.fetchone()
                if inserted is None:
                    raise InternalError("INSERT ... RETURNING id returned no row")
                ids.append(int(inserted[0]))

        self._fenced(letters[0].run_id, lease, write)
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

        def read(tx: Tx) -> list[Any]:
            tx.execute(
                f"SELECT {_DEAD} FROM riverbed_dead_letters{where} ORDER BY id LIMIT ?",
                (*params, limit),
            )
            return tx.fetchall()

        return [self._codec.dead_letter_out(row) for row in self._read(read)]

    def mark_replayed(self, ids: Sequence[int], by_run: str) -> None:
        """Record that run ``by_run`` replayed the dead letters ``ids``."""
        if not ids:
            return

        def attempt(retry: bool) -> None:
            with self._write() as tx:
                tx.executemany(
                    "UPDATE riverbed_dead_letters SET replayed_by = ? WHERE id = ?",
                    [(by_run, letter_id) for letter_id in ids],
                )

        self._retrying(attempt)

    # -- step cache ---------------------------------------------------------------------------

    def cache_get(self, stage: str, stage_version: str, digest: str) -> bytes | None:
        """The cached outputs of ``stage`` at ``stage_version`` for input ``digest``."""

        def read(tx: Tx) -> Any:
            tx.execute(
                "SELECT outputs FROM riverbed_step_cache "
                "WHERE stage = ? AND stage_version = ? AND digest = ?",
                (stage, stage_version, digest),
            )
            return tx.fetchone()

        row = self._read(read)
        return bytes(row[0]) if row is not None else None

    def cache_put(
        self, stage: str, stage_version: str, digest: str, outputs: bytes, run_id: str
    ) -> None:
        """Cache outputs; if the key is cached already, keep the first (they are equal)."""
        created = self._codec.time_in(datetime.now(UTC), "created_at")

        def attempt(retry: bool) -> None:
            with self._write() as tx:
                tx.execute(
                    "INSERT INTO riverbed_step_cache "
                    "(stage, stage_version, digest, outputs, run_id, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (stage, stage_version, digest, outputs, run_id, created),
                )

        self._retrying(attempt)

    def cache_clear(self, stage: str | None = None) -> int:
        """Forget cached outputs of one stage, or of all; return how many were removed."""
        where, params = _where(stage=stage)

        def attempt(retry: bool) -> int:
            with self._write() as tx:
                tx.execute(f"DELETE FROM riverbed_step_cache{where}", params)
                return tx.rowcount

        return self._retrying(attempt)

    # -- workflow steps -----------------------------------------------------------------------

    def steps(self, run_id: str) -> list[StepRecord]:
        """A run's completed steps, by ``seq``."""

        def read(tx: Tx) -> list[Any]:
            tx.execute(
                f"SELECT {_STEPS} FROM riverbed_steps WHERE run_id = ? ORDER BY seq", (run_id,)
            )
            return tx.fetchall()

        return [self._codec.step_out(row) for row in self._read(read)]

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
        token = new_token()

        def attempt(retry: bool) -> Any:
            with self._write() as tx:
                if retry:
                    tx.execute(
                        f"SELECT {_RUNS} FROM riverbed_runs WHERE status = ? AND write_token = ?",
                        (RunStatus.RUNNING.value, token),
                    )
                    mine = tx.fetchone()
                    if mine is not None:
                        return mine
                return self._claim(tx, worker, lease_seconds, token)

        row = self._retrying(attempt)
        return self._codec.run_out(row) if row is not None else None

    def _claim(self, tx: Tx, worker: str, lease_seconds: float, token: str) -> Any:
        now_sql, now_args = self._clock()
        until_sql, until_args = self._lease_end(lease_seconds)
        tx.execute(
            f"SELECT run_id, attempt, worker FROM riverbed_runs WHERE status = ? "
            f"ORDER BY seq LIMIT 1{self._skip_locked}",
            (RunStatus.SCHEDULED.value,),
        )
        row = tx.fetchone()
        crashed = row is None
        if crashed:
            # Its worker died or hung: the run CRASHED, and this worker resumes it. Only
            # runs with a target: a worker must be able to load their flow (a run started
            # from Python without one is resumed from Python).
            tx.execute(
                f"SELECT run_id, attempt, worker FROM riverbed_runs WHERE status = ? AND "
                f"lease_until < {now_sql} AND target IS NOT NULL ORDER BY lease_until "
                f"LIMIT 1{self._skip_locked}",
                (RunStatus.RUNNING.value, *now_args),
            )
            row = tx.fetchone()
            if row is None:
                return None
            check_transition(RunStatus.RUNNING, RunStatus.CRASHED, run_id=row[0])
            record_transition(
                tx, self._codec, row[0], row[1], RunStatus.CRASHED, datetime.now(UTC), row[2]
            )
        check_transition(
            RunStatus.CRASHED if crashed else RunStatus.SCHEDULED, RunStatus.RUNNING, run_id=row[0]
        )
        tx.execute(
            f"UPDATE riverbed_runs SET status = ?, worker = ?, lease_until = {until_sql}, "
            f"started_at = coalesce(started_at, {now_sql}), attempt = attempt + "
            "(CASE WHEN started_at IS NULL THEN 0 ELSE 1 END), write_token = ? "
            f"WHERE run_id = ? RETURNING {_RUNS}",
            (RunStatus.RUNNING.value, worker, *until_args, *now_args, token, row[0]),
        )
        claimed = tx.fetchone()
        if claimed is None:
            raise InternalError(f"run {row[0]!r} vanished while locked for a claim")
        self._record(tx, self._codec.run_out(claimed))
        return claimed

    def renew_lease(self, lease: Lease, lease_seconds: float) -> bool:
        """Extend ``lease`` to now + ``lease_seconds``; False if it no longer holds its run
        (cancelled, or taken over)."""
        until_sql, until_args = self._lease_end(lease_seconds)

        def attempt(retry: bool) -> bool:
            with self._write() as tx:
                tx.execute(
                    f"UPDATE riverbed_runs SET lease_until = {until_sql} WHERE {HOLDS}",
                    (*until_args, *holds(lease)),
                )
                return tx.rowcount == 1

        return self._retrying(attempt)

    def release(self, lease: Lease) -> bool:
        """Put the run ``lease`` holds back into the queue (SCHEDULED) at once, for the next
        ``claim`` to resume (a worker shutting down cleanly). False if it did not hold it."""
        token = new_token()

        def attempt(retry: bool) -> bool:
            with self._write() as tx:
                if retry and wrote(tx, lease.run_id, token):
                    return True
                tx.execute(
                    "UPDATE riverbed_runs SET status = ?, worker = NULL, lease_until = NULL, "
                    f"write_token = ? WHERE {HOLDS}",
                    (RunStatus.SCHEDULED.value, token, *holds(lease)),
                )
                if tx.rowcount != 1:
                    return False
                record_transition(
                    tx,
                    self._codec,
                    lease.run_id,
                    lease.attempt,
                    RunStatus.SCHEDULED,
                    datetime.now(UTC),
                    lease.worker,
                )
                return True

        return self._retrying(attempt)

    # -- workflow commits ---------------------------------------------------------------------

    def commit_steps(self, commits: Sequence[StepCommit]) -> None:
        """Apply the commits (run creations, steps, stage runs, status changes) in one
        durable transaction, each fenced by its lease; all or nothing (see
        ``Store.commit_steps``)."""
        if not commits:
            return
        token = new_token()

        def attempt(retry: bool) -> None:
            with self._write() as tx:
                if retry and wrote(tx, commits[0].run_id, token):
                    return
                _commit_steps(self, tx, commits, token)

        self._retrying(attempt)


def _where(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    """`` WHERE a = ? AND b = ?`` for the filters that are not None, and their values."""
    given = {name: value for name, value in filters.items() if value is not None}
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{name} = ?" for name in given), tuple(given.values())


def _predecessors(new: RunStatus) -> tuple[str, ...]:
    """The stored statuses from which a run may move to ``new``."""
    return tuple(old.value for old in RunStatus if new in old.successors)


def _insert_runs(
    store: SQLStore, tx: Tx, runs: Sequence[RunRecord], rows: list[tuple[Any, ...]], token: str
) -> None:
    """Insert new runs (marked with ``token``) and their first history entries."""
    try:
        tx.executemany(INSERT_RUN, [(*row, token) for row in rows])
    except store._integrity_errors as exc:
        ids = ", ".join(run.run_id for run in runs)
        raise DuplicateRunError(
            f"a run with id {ids if len(runs) == 1 else 'among ' + ids} is already "
            f"stored in {store.url}; give the new run a fresh id",
            run_id=ids,
            url=store.url,
        ) from exc
    for run in runs:
        store._record(tx, run)


def _commit_steps(store: SQLStore, tx: Tx, commits: Sequence[StepCommit], token: str) -> None:
    """``SQLStore.commit_steps`` inside the transaction ``tx``: one statement per kind of
    row for the whole group (so a group of concurrent workflows' steps costs a handful of
    round trips), each commit fenced by its lease, then each run's status change as a
    compare-and-set on its row."""
    codec = store._codec
    for commit in commits:
        for record in (commit.run, commit.step):
            if record is not None and record.run_id != commit.run_id:
                raise ValueError(
                    f"StepCommit of run {commit.run_id!r} holds a {type(record).__name__} of "
                    f"run {record.run_id!r}; each commit writes one run's records"
                )
    created = [commit.run for commit in commits if commit.run is not None]
    if created:
        _insert_runs(store, tx, created, [codec.run_in(run) for run in created], token)
    for commit in commits:
        if commit.status is None:
            fence(tx, commit.lease, token, store.url)
    steps = [codec.step_in(commit.step) for commit in commits if commit.step is not None]
    stage_rows = [
        row
        for commit in commits
        if commit.stage_run is not None
        for row in store._stage_run_rows(commit.run_id, [commit.stage_run])
    ]
    if steps:
        tx.executemany(INSERT_STEP, steps)
    if stage_rows:
        tx.executemany(UPSERT_STAGE_RUN, stage_rows)
    for commit in commits:
        if commit.status is not None:
            _set_status(store, tx, commit, token)


def _set_status(store: SQLStore, tx: Tx, commit: StepCommit, token: str) -> None:
    """``transition`` inside ``tx``, in one statement on the happy path: the UPDATE itself
    checks that the run's current status may go to ``commit.status`` (and that the
    commit's lease still holds the run)."""
    run_id, new, fields, lease = commit.run_id, commit.status, commit.fields, commit.lease
    assert new is not None
    store._codec.check_fields(fields, "commit_steps")
    values = [store._codec.run_field_in(name, value) for name, value in fields.items()]
    sets = ", ".join(f"{name} = ?" for name in ("status", *fields, "write_token"))
    legal = _predecessors(new)
    where = f"run_id = ? AND status IN ({_marks(len(legal))})"
    params: tuple[Any, ...] = (run_id, *legal)
    if lease is not None:
        where += " AND worker = ? AND attempt = ?"
        params = (*params, lease.worker, lease.attempt)
    tx.execute(
        f"UPDATE riverbed_runs SET {sets} WHERE {where} RETURNING {_RUNS}",
        (new.value, *values, token, *params),
    )
    row = tx.fetchone()
    if row is not None:
        store._record(tx, store._codec.run_out(row))
        return
    if lease is not None:
        raise lease_lost(tx, lease, store.url)
    tx.execute("SELECT status FROM riverbed_runs WHERE run_id = ?", (run_id,))
    current = tx.fetchone()
    if current is None:
        raise store._not_found(run_id)
    check_transition(RunStatus(current[0]), new, run_id=run_id)
    raise InternalError(f"run {run_id!r}: status {current[0]} may go to {new.value}, yet did not")
