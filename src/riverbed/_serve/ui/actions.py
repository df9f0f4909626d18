"""What the dashboard's buttons do, by the paths the CLI takes: resume and re-run as
``riverbed runs resume | rerun`` (``riverbed._cli.again``), cancel as ``riverbed runs
cancel``, replay and discard as ``riverbed dead-letters replay | discard``.

A resumed, re-run or replayed run runs in this process, in a thread of its own, so that
the button's request answers at once (with the run's page, which follows it live). Its
flow is loaded from the run's stored TARGET, as a worker loads it: start the dashboard
where the flows' code can be imported. What went wrong in a thread is kept by run id and
shown on that run's page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import riverbed as rb
from riverbed._cli.again import again, new_run_id
from riverbed._cli.letters import replay

__all__ = ["Actions", "NotPendingError"]

_log = logging.getLogger("riverbed.ui")


class NotPendingError(LookupError):
    """The dead letter a button names is not pending (replayed, discarded, or never
    stored)."""


class Actions:
    """The buttons' actions on one store, and the runs they started."""

    def __init__(self, store: rb.Store) -> None:
        """Actions on ``store``."""
        self.store = store
        self.starting: set[str] = set()
        """Runs started by a button whose record the store may not hold yet."""
        self.failures: dict[str, str] = {}
        """Run id to why its button's action failed."""
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _start(self, run_id: str, work: Callable[[], object]) -> None:
        """Run ``work`` (which runs ``run_id``) in a thread of its own."""

        def body() -> None:
            try:
                work()
            except Exception as error:  # noqa: BLE001 - shown on the run's page, whatever it is
                _log.warning("dashboard: run %s: %s", run_id, error)
                with self._lock:
                    self.failures[run_id] = f"{type(error).__name__}: {error}"
            finally:
                with self._lock:
                    self.starting.discard(run_id)

        with self._lock:
            self.starting.add(run_id)
            self.failures.pop(run_id, None)
        thread = threading.Thread(target=body, name=f"riverbed-ui-{run_id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def resume(self, run_id: str) -> str:
        """Resume the run (same id) from its last checkpoint or step; its id."""
        record = self.store.get_run(run_id)
        self._start(record.run_id, lambda: again(self.store, record, None))
        return record.run_id

    def rerun(self, run_id: str) -> str:
        """Run the run's flow again as a new run, from its last checkpoint; the new id."""
        record = self.store.get_run(run_id)
        new_id = new_run_id()
        self._start(
            new_id,
            lambda: again(self.store, record, None, new_id=new_id, rerun_of=record.run_id),
        )
        return new_id

    def cancel(self, run_id: str) -> str:
        """Cancel a scheduled or running run (a running one stops at its next heartbeat);
        ``InvalidTransitionError`` for a run that already ended."""
        record = self.store.get_run(run_id)
        self.store.transition(record.run_id, rb.RunStatus.CANCELLED, ended_at=datetime.now(UTC))
        return record.run_id

    def _pending(self, letter_id: int, run_id: str | None = None) -> rb.DeadLetterRecord:
        for letter in self.store.dead_letters(run_id=run_id, replayed=False, limit=1_000_000):
            if letter.id == letter_id:
                return letter
        raise NotPendingError(
            f"dead letter #{letter_id} is not pending (replayed or discarded already, or "
            "never stored)"
        )

    def replay(self, letter_id: int) -> str:
        """Replay one pending dead letter into its stage as a new run; the new run's id."""
        letter = self._pending(letter_id)
        if not letter.replayable:
            raise NotPendingError(
                f"dead letter #{letter_id}'s event could not be pickled when it was stored: "
                "only its repr is kept, it cannot be replayed"
            )
        new_id = new_run_id()
        self._start(
            new_id, lambda: replay(self.store, letter.run_id, letter.stage, [letter], None, new_id)
        )
        return new_id

    def discard(self, letter_id: int) -> int:
        """Discard one pending dead letter; ``NotPendingError`` if it is not pending."""
        if self.store.discard_dead_letters([letter_id]) == 0:
            raise NotPendingError(
                f"dead letter #{letter_id} is not pending (replayed or discarded already, or "
                "never stored)"
            )
        return letter_id

    def join(self, timeout: float | None = None) -> None:
        """Wait for the runs started here to end (tests, and a clean shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)
