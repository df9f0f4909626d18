"""Workers: processes that take runs from the store's queue and run them.

Any number of ``riverbed worker`` processes, on any number of machines sharing one
PostgreSQL store (or processes of one machine sharing an SQLite file), claim runs one at a
time. A claim is atomic (``FOR UPDATE SKIP LOCKED`` on PostgreSQL): no run is taken twice.
The worker holds the run's lease by heartbeats while it runs it; a worker that dies stops
renewing, its lease expires, and the next claim anywhere takes the run again and resumes it
from its last checkpoint (the run is CRASHED, then RUNNING with attempt + 1).
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from riverbed._errors import RiverbedError
from riverbed._runtime.recording import LEASE_SECONDS, WORKER, resolve_store
from riverbed._runtime.workflow import run_claimed
from riverbed._store.protocol import Store
from riverbed._store.records import ErrorInfo, RunRecord, RunStatus
from riverbed._targets import load_flow

__all__ = ["Worker"]

logger = logging.getLogger("riverbed")


class Worker:
    """Takes runs from a store's queue and runs them, one at a time.

    >>> worker = Worker("sqlite:///.riverbed/riverbed.db", idle_exit=0)  # doctest: +SKIP
    >>> worker.run()  # doctest: +SKIP

    ``poll``: seconds between claims when the queue is empty; ``idle_exit``: stop after the
    queue has been empty that long (None: never); ``max_runs``: stop after that many runs.
    """

    __module__ = "riverbed"

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        poll: float = 1.0,
        idle_exit: float | None = None,
        max_runs: int | None = None,
        checkpoint_interval: float | None = 1.0,
    ) -> None:
        opened = resolve_store(store)
        assert opened is not None
        self.store = opened
        self.name = WORKER
        self.poll = poll
        self.idle_exit = idle_exit
        self.max_runs = max_runs
        self.checkpoint_interval = checkpoint_interval
        self.done: list[RunRecord] = []

    def run(self) -> int:
        """Claim and run until ``max_runs`` or ``idle_exit``; return how many ran."""
        idle_since = time.monotonic()
        while self.max_runs is None or len(self.done) < self.max_runs:
            record = self.run_one()
            if record is not None:
                idle_since = time.monotonic()
                continue
            if self.idle_exit is not None and time.monotonic() - idle_since >= self.idle_exit:
                break
            time.sleep(self.poll)
        return len(self.done)

    def run_one(self) -> RunRecord | None:
        """Claim one run and run it to its end; None if the queue was empty."""
        claimed = self.store.claim(self.name, LEASE_SECONDS)
        if claimed is None:
            return None
        logger.info(
            "worker %s: running %s of flow %r (attempt %d)",
            self.name,
            claimed.run_id,
            claimed.flow,
            claimed.attempt,
        )
        try:
            self._execute(claimed)
        except Exception as error:  # the flow could not even be loaded or started
            self._fail(claimed, error)
        record = self.store.get_run(claimed.run_id)
        self.done.append(record)
        return record

    def _execute(self, claimed: RunRecord) -> None:
        if claimed.target is None:
            raise RiverbedError(
                f"run {claimed.run_id} has no target (module:attr) to load its flow from; "
                "runs started from Python can be resumed with flow.run(resume=...) only"
            )
        flow = load_flow(claimed.target)
        if flow.is_workflow:
            run_claimed(flow, self.store, claimed.run_id)
            return
        options: dict[str, Any] = {
            "store": self.store,
            "claimed": claimed.run_id,
            "progress": False,
            "raise_on_failure": False,
            "params": claimed.params,
            "target": claimed.target,
        }
        if self.checkpoint_interval is not None:
            options["checkpoint_interval"] = self.checkpoint_interval
        flow.run(**options)

    def _fail(self, claimed: RunRecord, error: Exception) -> None:
        logger.error("worker %s: run %s failed to start: %s", self.name, claimed.run_id, error)
        self.store.transition(
            claimed.run_id,
            RunStatus.FAILED,
            ended_at=datetime.now(UTC),
            lease_until=None,
            error=ErrorInfo(
                stage=None,
                error_type=type(error).__qualname__,
                message=str(error),
                traceback="".join(traceback.format_exception(error)),
            ),
        )
