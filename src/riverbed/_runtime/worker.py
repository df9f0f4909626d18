"""Workers: processes that take runs from the store's queue and run them.

Any number of ``riverbed worker`` processes, on any number of machines sharing one
PostgreSQL store (or processes of one machine sharing an SQLite file), claim runs one at a
time. A claim is atomic (``FOR UPDATE SKIP LOCKED`` on PostgreSQL): no run is taken twice.
The worker holds the run's lease by renewing it from a thread while it runs it, and every
write of the run is fenced by that lease; a worker that dies stops renewing, its lease
expires, and the next claim anywhere takes the run again and resumes it from its last
checkpoint (the run is CRASHED, then RUNNING with attempt + 1). A worker that finds its
run taken over or cancelled stops working on it and goes on with the queue.

SIGTERM or Ctrl-C stop a worker cleanly: the run it holds stops at once (a stream after a
last checkpoint, a workflow at its next step boundary) and goes back to the queue
(SCHEDULED), resumable by any worker from there; then the worker exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from riverbed._errors import LeaseLostError, RiverbedError
from riverbed._model.flow import Flow
from riverbed._records import (
    DEFAULT_QUEUE,
    Lease,
    RunRecord,
    RunStatus,
    StageError,
    check_queues,
)
from riverbed._runtime.config import DEFAULT, Default, RunConfig
from riverbed._runtime.execute import execute
from riverbed._runtime.identity import WORKER
from riverbed._runtime.lease import LEASE_SECONDS
from riverbed._runtime.observer import RunObserver
from riverbed._runtime.runner import Runner
from riverbed._store.protocol import Store, queue_topic

__all__ = ["Worker"]

logger = logging.getLogger("riverbed")

FIRST_POLL = 0.05
"""Seconds an idle worker first waits before it looks at the queue again (see
``Worker.run``)."""


class Worker:
    """Takes runs from ``store``'s queue and runs them, one at a time, on ``runner``.
    Public as ``riverbed.Worker``, which also takes a store URL and picks the defaults.

    ``queues``: the queues whose runs it claims (``RunRecord.queue``; the default queue
    unless given). ``poll``: the longest wait between claims when the queue is empty;
    ``idle_exit``: stop after the queue has been empty that long (None: never);
    ``max_runs``: stop after that many runs; ``checkpoint_interval``: seconds between the
    checkpoints of the runs it runs (by default, that of ``Flow.run``). SIGTERM and Ctrl-C
    stop it cleanly (see the module).
    """

    def __init__(
        self,
        store: Store,
        *,
        runner: Runner,
        load_flow: Callable[[str, Mapping[str, Any]], Flow],
        queues: Iterable[str] | str = (DEFAULT_QUEUE,),
        poll: float = 1.0,
        idle_exit: float | None = None,
        max_runs: int | None = None,
        checkpoint_interval: float | Default | None = DEFAULT,
    ) -> None:
        self.store = store
        self.runner = runner
        self.load_flow = load_flow
        """A run's flow from its recorded target (``module:attr``): given by the facade,
        which knows how targets are found; the runtime does not import user code itself."""
        self.name = WORKER
        self.queues = check_queues(queues)
        self.poll = poll
        self.idle_exit = idle_exit
        self.max_runs = max_runs
        self.checkpoint_interval = checkpoint_interval
        self.done: list[RunRecord] = []
        self.stopping = False
        """Set by SIGTERM or Ctrl-C: the worker takes no more runs."""

    def run(self) -> int:
        """Claim and run until ``max_runs``, ``idle_exit`` or a stop; return how many ran.
        An empty queue is looked at again as soon as the store says that a run was queued
        (``Store.run_changes``: on PostgreSQL by any process, on SQLite by this one);
        otherwise soon after a run (runs come in bursts: the next of a batch, a
        workflow's next step on this queue), then less and less often: the wait doubles
        from ``FIRST_POLL`` up to ``poll``."""
        idle_since = time.monotonic()
        wait = min(FIRST_POLL, self.poll)
        changes = self.store.run_changes()
        topics = [queue_topic(queue) for queue in self.queues]
        with self._signals():
            while not self.stopping and (self.max_runs is None or len(self.done) < self.max_runs):
                self._listen()  # again: a run's event loop resets the handlers when it ends
                seen = changes.mark(topics)  # before the claim: a run queued after wakes us
                record = self.run_one()
                if record is not None:
                    idle_since = time.monotonic()
                    wait = min(FIRST_POLL, self.poll)
                    self.stopping = self.stopping or record.status is RunStatus.SCHEDULED
                    continue
                if self.idle_exit is not None and time.monotonic() - idle_since >= self.idle_exit:
                    break
                self._sleep(wait, topics, seen)
                wait = min(wait * 2, self.poll)
        return len(self.done)

    def run_one(self) -> RunRecord | None:
        """Claim one run and run it to its end; None if the queue was empty. A run that
        this worker lost (cancelled, or taken over) is returned as the store has it."""
        claimed = self.store.claim(self.name, LEASE_SECONDS, self.queues)
        if claimed is None:
            return None
        if self.stopping:  # told to stop while claiming: the run goes straight back
            self.store.release(Lease.of(claimed))
            return self.store.get_run(claimed.run_id)
        logger.info(
            "worker %s: took run %s of flow %r (attempt %d)",
            self.name,
            claimed.run_id,
            claimed.flow,
            claimed.attempt,
        )
        started = time.monotonic()
        try:
            self._execute(claimed)
        except LeaseLostError as lost:  # no longer this worker's: the store knows the rest
            logger.warning("worker %s: %s", self.name, lost)
        # The user's module could not be imported or the flow not started, whatever it
        # raised: the run is marked FAILED with that error and the worker goes on.
        except Exception as error:  # noqa: BLE001
            self._fail(claimed, error)
        record = self.store.get_run(claimed.run_id)
        logger.info(
            "worker %s: run %s of flow %r %s (%.2fs)",
            self.name,
            record.run_id,
            record.flow,
            _ended(record, Lease.of(claimed)),
            time.monotonic() - started,
        )
        self.done.append(record)
        return record

    def _sleep(self, seconds: float, topics: list[str], seen: int) -> None:
        """Wait ``seconds``, or less if the worker is told to stop or a run is queued in
        one of its queues after ``seen`` (see ``RunChanges``)."""
        changes = self.store.run_changes()
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            if changes.wait(topics, seen, min(left, 0.1)) != seen:
                return

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """While the worker runs, SIGTERM and Ctrl-C stop it; the handlers it found are
        put back when it returns."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {number: signal.getsignal(number) for number in _STOPS}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _listen(self) -> None:
        """Between runs, SIGTERM and Ctrl-C stop the worker. (During a run the runner
        handles them: the run goes back to the queue, and the worker stops after it.)"""
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(number: int, frame: FrameType | None) -> None:
            self.stopping = True

        for number in _STOPS:
            signal.signal(number, stop)

    def _execute(self, claimed: RunRecord) -> None:
        if claimed.target is None:
            raise RiverbedError(
                f"run {claimed.run_id} has no target (module:attr) to load its flow from; "
                "runs started from Python can be resumed with flow.run(resume=...) only"
            )
        # The facade's loader checks a row's target first; a function target gets the
        # run's params as keywords.
        flow = self.load_flow(claimed.target, claimed.params)
        config = RunConfig(
            claimed=claimed.run_id,
            progress=False,
            raise_on_failure=False,
            params=claimed.params,
            target=claimed.target,
            observers=(_StopAfter(self),),
            checkpoint_interval=self.checkpoint_interval,
        )
        asyncio.run(execute(flow, config, self.store, self.runner, handle_signals=True))

    def _fail(self, claimed: RunRecord, error: Exception) -> None:
        logger.error("worker %s: run %s failed to start: %s", self.name, claimed.run_id, error)
        self.store.transition(
            claimed.run_id,
            RunStatus.FAILED,
            lease=Lease.of(claimed),
            ended_at=datetime.now(UTC),
            lease_until=None,
            error=StageError(
                stage=None,
                error_type=type(error).__qualname__,
                message=str(error),
                traceback="".join(traceback.format_exception(error)),
            ),
        )


_STOPS = (signal.SIGTERM, signal.SIGINT)
"""The signals that stop a worker cleanly."""


class _StopAfter(RunObserver):
    """Stops the worker after the run it observes, once that run was told to stop."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def stopping(self, reason: str) -> None:
        logger.warning("worker %s: %s: stopping after this run", self.worker.name, reason)
        self.worker.stopping = True


def _ended(record: RunRecord, lease: Lease) -> str:
    """How a run the worker took ended, in a few words for its log line."""
    if record.status is RunStatus.RUNNING and record.worker != lease.worker:
        return f"was taken over by {record.worker}"
    if record.status is RunStatus.SCHEDULED:
        return "went back to the queue (the worker stops)"
    if record.error is not None:
        return f"{record.status.value}: {record.error.error_type}: {record.error.message}"
    return f"{record.status.value}"
