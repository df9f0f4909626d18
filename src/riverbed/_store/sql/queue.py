"""The run queue, in SQL both databases share: scheduled runs, the workers' claims and
leases on them, and workflow commits (a workflow's steps, written as a run's lease
allows). A backend that can do better in one statement (PostgreSQL) overrides
``claim_in`` and ``commit_steps``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from riverbed._errors import InternalError
from riverbed._records import (
    DEFAULT_QUEUE,
    Lease,
    RunRecord,
    RunStatus,
    StepCommit,
    check_queue,
    check_queues,
    check_transition,
)
from riverbed._store.fencing import HOLDS, Tx, fence, holds, lease_lost, record_transition, wrote
from riverbed._store.retry import new_token
from riverbed._store.sql.core import SQLCore
from riverbed._store.sql.runs import create_runs, insert_runs, stage_run_rows
from riverbed._store.sql.statements import INSERT_STEP, RUNS, UPSERT_STAGE_RUN, marks

__all__ = ["SQLQueue", "check_commits"]


class SQLQueue:
    """The ``RunQueue`` methods."""

    def __init__(self, core: SQLCore) -> None:
        """The queue kept through ``core``."""
        self._core = core

    def enqueue(self, run: RunRecord) -> None:
        """Store ``run`` as SCHEDULED in its queue, for a worker's ``claim`` to take."""
        check_queue(run.queue)
        scheduled = dataclasses.replace(
            run, status=RunStatus.SCHEDULED, worker=None, lease_until=None
        )
        create_runs(self._core, [scheduled])

    def claim(
        self, worker: str, lease_seconds: float, queues: Sequence[str] = (DEFAULT_QUEUE,)
    ) -> RunRecord | None:
        """Take the oldest SCHEDULED run of ``queues``, else a RUNNING one of them whose
        lease expired, for ``worker``; None if there is neither (see ``RunQueue.claim``)."""
        core = self._core
        token = new_token()
        served = check_queues(queues)

        def attempt(retry: bool) -> Any:
            with core.database.write() as tx:
                if retry:
                    tx.execute(
                        f"SELECT {RUNS} FROM riverbed_runs WHERE status = ? AND write_token = ?",
                        (RunStatus.RUNNING.value, token),
                    )
                    mine = tx.fetchone()
                    if mine is not None:
                        return mine
                return self.claim_in(tx, worker, lease_seconds, token, served)

        row = core.retrying(attempt)
        return core.codec.run_out(row) if row is not None else None

    def claim_in(
        self, tx: Tx, worker: str, lease_seconds: float, token: str, queues: tuple[str, ...]
    ) -> Any:
        """``claim`` inside ``tx``: the claimed run's row (marked with ``token``), or None."""
        core = self._core
        database = core.database
        now_sql, now_args = database.now()
        until_sql, until_args = database.lease_end(lease_seconds)
        served = f"queue IN ({marks(len(queues))})"
        tx.execute(
            f"SELECT run_id, attempt, worker FROM riverbed_runs WHERE status = ? AND {served} "
            f"ORDER BY seq LIMIT 1{database.skip_locked}",
            (RunStatus.SCHEDULED.value, *queues),
        )
        row = tx.fetchone()
        crashed = row is None
        if crashed:
            # Its worker died or hung: the run CRASHED, and this worker resumes it. Only
            # runs with a target: a worker must be able to load their flow (a run started
            # from Python without one is resumed from Python).
            tx.execute(
                f"SELECT run_id, attempt, worker FROM riverbed_runs WHERE status = ? AND "
                f"{served} AND lease_until < {now_sql} AND target IS NOT NULL "
                f"ORDER BY lease_until LIMIT 1{database.skip_locked}",
                (RunStatus.RUNNING.value, *queues, *now_args),
            )
            row = tx.fetchone()
            if row is None:
                return None
            check_transition(RunStatus.RUNNING, RunStatus.CRASHED, run_id=row[0])
            record_transition(
                tx, core.codec, row[0], row[1], RunStatus.CRASHED, datetime.now(UTC), row[2]
            )
        check_transition(
            RunStatus.CRASHED if crashed else RunStatus.SCHEDULED, RunStatus.RUNNING, run_id=row[0]
        )
        tx.execute(
            f"UPDATE riverbed_runs SET status = ?, worker = ?, lease_until = {until_sql}, "
            f"started_at = coalesce(started_at, {now_sql}), attempt = attempt + "
            "(CASE WHEN started_at IS NULL THEN 0 ELSE 1 END), write_token = ? "
            f"WHERE run_id = ? RETURNING {RUNS}",
            (RunStatus.RUNNING.value, worker, *until_args, *now_args, token, row[0]),
        )
        claimed = tx.fetchone()
        if claimed is None:
            raise InternalError(f"run {row[0]!r} vanished while locked for a claim")
        core.record(tx, core.codec.run_out(claimed))
        return claimed

    def renew_lease(self, lease: Lease, lease_seconds: float) -> bool:
        """Extend ``lease`` to now + ``lease_seconds``; False if it no longer holds its run
        (cancelled, or taken over)."""
        until_sql, until_args = self._core.database.lease_end(lease_seconds)

        def write(tx: Tx) -> bool:
            tx.execute(
                f"UPDATE riverbed_runs SET lease_until = {until_sql} WHERE {HOLDS}",
                (*until_args, *holds(lease)),
            )
            return tx.rowcount == 1

        return self._core.write(write)

    def release(self, lease: Lease) -> bool:
        """Put the run ``lease`` holds back into the queue (SCHEDULED) at once, for the next
        ``claim`` to resume (a worker shutting down cleanly). False if it did not hold it."""
        core = self._core
        token = new_token()

        def attempt(retry: bool) -> bool:
            with core.database.write() as tx:
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
                    core.codec,
                    lease.run_id,
                    lease.attempt,
                    RunStatus.SCHEDULED,
                    datetime.now(UTC),
                    lease.worker,
                )
                return True

        return core.retrying(attempt)

    def commit_steps(self, commits: Sequence[StepCommit]) -> None:
        """Apply the commits (run creations, steps, stage runs, status changes) in one
        durable transaction, each fenced by its lease; all or nothing (see
        ``RunQueue.commit_steps``)."""
        if not commits:
            return
        core = self._core
        token = new_token()

        def attempt(retry: bool) -> None:
            with core.database.write() as tx:
                if retry and wrote(tx, commits[0].run_id, token):
                    return
                _commit_steps(core, tx, commits, token)

        core.retrying(attempt)


def check_commits(commits: Sequence[StepCommit]) -> None:
    """``ValueError`` for a commit that holds a record of another run than its own."""
    for commit in commits:
        for record in (commit.run, commit.step):
            if record is not None and record.run_id != commit.run_id:
                raise ValueError(
                    f"StepCommit of run {commit.run_id!r} holds a {type(record).__name__} of "
                    f"run {record.run_id!r}; each commit writes one run's records"
                )


def _commit_steps(core: SQLCore, tx: Tx, commits: Sequence[StepCommit], token: str) -> None:
    """``SQLQueue.commit_steps`` inside the transaction ``tx``: one statement per kind of
    row for the whole group (so a group of concurrent workflows' steps costs a handful of
    round trips), each commit fenced by its lease, then each run's status change as a
    compare-and-set on its row."""
    codec = core.codec
    check_commits(commits)
    created = [commit.run for commit in commits if commit.run is not None]
    if created:
        insert_runs(core, tx, created, token)
    for commit in commits:
        if commit.status is None:
            fence(tx, commit.lease, token, core.url)
    steps = [codec.step_in(commit.step) for commit in commits if commit.step is not None]
    stage_rows = [
        row
        for commit in commits
        if commit.stage_run is not None
        for row in stage_run_rows(codec, commit.run_id, [commit.stage_run])
    ]
    if steps:
        tx.executemany(INSERT_STEP, steps)
    if stage_rows:
        tx.executemany(UPSERT_STAGE_RUN, stage_rows)
    for commit in commits:
        if commit.status is not None:
            _set_status(core, tx, commit, commit.status, token)


def _set_status(core: SQLCore, tx: Tx, commit: StepCommit, new: RunStatus, token: str) -> None:
    """``transition`` inside ``tx``, in one statement on the happy path: the UPDATE itself
    checks that the run's current status may go to ``new`` (and that the commit's lease
    still holds the run)."""
    run_id, fields, lease = commit.run_id, commit.fields, commit.lease
    core.codec.check_fields(fields, "commit_steps")
    values = [core.codec.run_field_in(name, value) for name, value in fields.items()]
    sets = ", ".join(f"{name} = ?" for name in ("status", *fields, "write_token"))
    legal = tuple(old.value for old in RunStatus if new in old.successors)
    clause = f"run_id = ? AND status IN ({marks(len(legal))})"
    params: tuple[Any, ...] = (run_id, *legal)
    if lease is not None:
        clause += " AND worker = ? AND attempt = ?"
        params = (*params, lease.worker, lease.attempt)
    tx.execute(
        f"UPDATE riverbed_runs SET {sets} WHERE {clause} RETURNING {RUNS}",
        (new.value, *values, token, *params),
    )
    row = tx.fetchone()
    if row is not None:
        core.record(tx, core.codec.run_out(row))
        return
    if lease is not None:
        raise lease_lost(tx, lease, core.url)
    tx.execute("SELECT status FROM riverbed_runs WHERE run_id = ?", (run_id,))
    current = tx.fetchone()
    if current is None:
        raise core.not_found(run_id)
    check_transition(RunStatus(current[0]), new, run_id=run_id)
    raise InternalError(f"run {run_id!r}: status {current[0]} may go to {new.value}, yet did not")
