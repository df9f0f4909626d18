"""Runs, their history and their stage runs, in SQL both databases share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from riverbed._errors import DuplicateRunError, InternalError
from riverbed._records import (
    Lease,
    RunRecord,
    RunStatus,
    RunTransition,
    StageRun,
    check_transition,
)
from riverbed._store.codec import HISTORY_COLUMNS, Codec
from riverbed._store.fencing import Tx, lease_lost, wrote
from riverbed._store.retry import new_token
from riverbed._store.sql.core import MIN_PREFIX, SQLCore
from riverbed._store.sql.prune import prune
from riverbed._store.sql.statements import INSERT_RUN, RUNS, STAGE_RUNS, UPSERT_STAGE_RUN, where

__all__ = ["SQLRuns", "create_runs", "insert_runs", "stage_run_rows"]


class SQLRuns:
    """The ``RunStore`` methods: runs, their history and their stage runs."""

    def __init__(self, core: SQLCore) -> None:
        """Runs stored through ``core``."""
        self._core = core

    def create_run(self, run: RunRecord) -> None:
        """Store a new run; ``DuplicateRunError`` if its id is taken."""
        create_runs(self._core, [run])

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or with this unique prefix of at least 6 characters."""

        def read(tx: Tx) -> tuple[Any, list[Any]]:
            tx.execute(f"SELECT {RUNS} FROM riverbed_runs WHERE run_id = ?", (run_id,))
            row = tx.fetchone()
            if row is not None or len(run_id) < MIN_PREFIX:
                return row, []
            # A scan, not an index range: ranges on text depend on the collation.
            tx.execute(
                f"SELECT {RUNS} FROM riverbed_runs WHERE substr(run_id, 1, ?) = ? "
                "ORDER BY seq LIMIT 6",
                (len(run_id), run_id),
            )
            return None, tx.fetchall()

        row, matches = self._core.read(read)
        if row is not None:
            return self._core.codec.run_out(row)
        if len(matches) == 1:
            return self._core.codec.run_out(matches[0])
        raise self._core.not_found(run_id, tuple(m[0] for m in matches))

    def list_runs(
        self,
        *,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        since: datetime | None = None,
        before: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, of one flow and/or in one status if given, created since
        ``since``, stored before the run ``before`` (seek paging: see ``RunStore``)."""
        clause, params = where(flow=flow, status=status.value if status else None)
        conditions = [clause.removeprefix(" WHERE ")] if clause else []
        if since is not None:
            conditions.append("created_at >= ?")
            params = (*params, self._core.codec.time_in(since, "since"))

        def read(tx: Tx) -> list[Any]:
            bounds, values = list(conditions), params
            if before is not None:
                tx.execute("SELECT seq FROM riverbed_runs WHERE run_id = ?", (before,))
                row = tx.fetchone()
                if row is None:
                    raise self._core.not_found(before)
                bounds.append("seq < ?")
                values = (*values, row[0])
            found = f" WHERE {' AND '.join(bounds)}" if bounds else ""
            tx.execute(
                f"SELECT {RUNS} FROM riverbed_runs{found} ORDER BY seq DESC LIMIT ?",
                (*values, limit),
            )
            return tx.fetchall()

        return [self._core.codec.run_out(row) for row in self._core.read(read)]

    def history(self, run_id: str) -> list[RunTransition]:
        """Every status the run went through, oldest first."""

        def read(tx: Tx) -> list[Any]:
            tx.execute(
                f"SELECT {', '.join(HISTORY_COLUMNS)} FROM riverbed_run_history "
                "WHERE run_id = ? ORDER BY seq",
                (run_id,),
            )
            return tx.fetchall()

        return [self._core.codec.history_out(row) for row in self._core.read(read)]

    def transition(
        self, run_id: str, new: RunStatus, *, lease: Lease | None = None, **fields: Any
    ) -> RunRecord:
        """Move a run to status ``new`` and set ``fields``, atomically (see ``Store``);
        under ``lease``, only while it holds the run."""
        core = self._core
        core.codec.check_fields(fields, "transition")
        values = [core.codec.run_field_in(name, value) for name, value in fields.items()]
        sets = ", ".join(f"{name} = ?" for name in ("status", *fields, "write_token"))
        token = new_token()

        def attempt(retry: bool) -> Any:
            with core.database.write() as tx:
                if retry and wrote(tx, run_id, token):
                    tx.execute(f"SELECT {RUNS} FROM riverbed_runs WHERE run_id = ?", (run_id,))
                    return tx.fetchone()
                tx.execute(
                    f"SELECT status, worker, attempt FROM riverbed_runs WHERE run_id = ?"
                    f"{core.database.for_update}",
                    (run_id,),
                )
                row = tx.fetchone()
                if row is None:
                    raise core.not_found(run_id)
                if lease is not None and tuple(row) != ("running", lease.worker, lease.attempt):
                    raise lease_lost(tx, lease, core.url)
                check_transition(RunStatus(row[0]), new, run_id=run_id)
                tx.execute(
                    f"UPDATE riverbed_runs SET {sets} WHERE run_id = ? RETURNING {RUNS}",
                    (new.value, *values, token, run_id),
                )
                updated = tx.fetchone()
                if updated is None:
                    raise InternalError(f"run {run_id!r} vanished while locked for a transition")
                core.record(tx, core.codec.run_out(updated))
                return updated

        return core.codec.run_out(core.retrying(attempt))

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set non-status fields of a run (e.g. ``params``)."""
        core = self._core
        core.codec.check_fields(fields, "update_run")
        values = [core.codec.run_field_in(name, value) for name, value in fields.items()]
        sets = ", ".join(f"{name} = ?" for name in fields) or "run_id = run_id"

        def write(tx: Tx) -> None:
            tx.execute(f"UPDATE riverbed_runs SET {sets} WHERE run_id = ?", (*values, run_id))
            if tx.rowcount == 0:
                raise core.not_found(run_id)

        core.write(write)

    def save_stage_runs(
        self, run_id: str, stage_runs: Sequence[StageRun], *, lease: Lease | None = None
    ) -> None:
        """Insert or update stage runs of one run, by (run_id, attempt, stage)."""
        rows = stage_run_rows(self._core.codec, run_id, stage_runs)
        if rows:
            self._core.fenced(run_id, lease, lambda tx: tx.executemany(UPSERT_STAGE_RUN, rows))

    def stage_runs(self, run_id: str, *, attempt: int | None = None) -> list[StageRun]:
        """A run's stage runs in the order they were first saved: of ``attempt``, or the
        latest record of each stage (a workflow's steps replayed in a later attempt keep
        the record of the attempt that ran them)."""
        params: tuple[Any, ...] = (run_id,)
        if attempt is not None:
            clause, params = "run_id = ? AND attempt = ?", (run_id, attempt)
        else:
            clause = (
                "run_id = ? AND attempt = (SELECT max(l.attempt) FROM riverbed_stage_runs l "
                "WHERE l.run_id = riverbed_stage_runs.run_id "
                "AND l.stage = riverbed_stage_runs.stage)"
            )

        def read(tx: Tx) -> list[Any]:
            tx.execute(
                f"SELECT {STAGE_RUNS} FROM riverbed_stage_runs WHERE {clause} ORDER BY seq",
                params,
            )
            return tx.fetchall()

        return [self._core.codec.stage_run_out(row) for row in self._core.read(read)]

    def prune(self, *, finished_before: datetime) -> int:
        """Delete the runs that finished before ``finished_before``, with what they own
        (see ``riverbed._store.sql.prune``); return how many."""
        return prune(self._core, finished_before)


def create_runs(core: SQLCore, runs: Sequence[RunRecord]) -> None:
    """Insert new runs and their first history entries, in one transaction, retried
    through transient errors without inserting twice."""
    token = new_token()

    def attempt(retry: bool) -> None:
        with core.database.write() as tx:
            if retry and wrote(tx, runs[0].run_id, token):
                return
            insert_runs(core, tx, runs, token)

    core.retrying(attempt)


def insert_runs(core: SQLCore, tx: Tx, runs: Sequence[RunRecord], token: str) -> None:
    """Insert new runs (marked with ``token``) and their first history entries, inside
    ``tx``; ``DuplicateRunError`` if a run id is taken."""
    rows = [(*core.codec.run_in(run), token) for run in runs]
    try:
        tx.executemany(INSERT_RUN, rows)
    except core.database.integrity_errors as exc:
        ids = ", ".join(run.run_id for run in runs)
        raise DuplicateRunError(
            f"a run with id {ids if len(runs) == 1 else 'among ' + ids} is already "
            f"stored in {core.url}; give the new run a fresh id",
            run_id=ids,
            url=core.url,
        ) from exc
    for run in runs:
        core.record(tx, run)


def stage_run_rows(
    codec: Codec, run_id: str, stage_runs: Sequence[StageRun]
) -> list[tuple[Any, ...]]:
    """The rows of stage runs of run ``run_id``; ``ValueError`` for one of another run."""
    for stage_run in stage_runs:
        if stage_run.run_id != run_id:
            raise ValueError(
                f"stage run {stage_run.stage!r} belongs to run {stage_run.run_id!r}, "
                f"not {run_id!r}; save each run's stage runs with its own id"
            )
    return [codec.stage_run_in(stage_run) for stage_run in stage_runs]
