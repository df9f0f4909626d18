"""Where handled failures go: the run's error list, its dead letters, and the log.

An error never passes silently: each one is counted by its stage, kept here (up to a
limit; the counters count them all), and logged (the first few per stage in full, then a
note that more are only counted).
"""

from __future__ import annotations

import logging
import pickle
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riverbed._errors import StageFailedError
from riverbed._model.policy import OnError
from riverbed._records import DeadLetter, DeadLetterRecord, StageError
from riverbed._runtime.result import event_repr

logger = logging.getLogger("riverbed")

LOGGED_PER_STAGE = 5

_PACKAGE = str(Path(__file__).resolve().parents[2])
"""riverbed's own directory: frames from files under it are riverbed's, not the user's."""


def _own(filename: str) -> bool:
    return filename.startswith((_PACKAGE, "<riverbed chain"))


def user_traceback(error: BaseException) -> str:
    """``error``'s traceback from the first frame of the user's code on: the frames of
    riverbed's executor above it say nothing about the user's failure. (All of it when
    every frame is riverbed's: then the failure is riverbed's to explain.)"""
    tb = error.__traceback__
    while tb is not None and _own(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb or error.__traceback__))


def _error_message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception as failure:  # noqa: BLE001 - a user's exception whose __str__ raises
        return f"<unprintable {type(error).__name__}: {type(failure).__name__}>"


class FailureLog:
    """Collects the handled failures of one run."""

    def __init__(self, flow: str, *, run_id: str, max_errors: int) -> None:
        self.flow = flow
        self.run_id = run_id
        """The run whose failures these are: its dead letters' records carry it (kept
        up to date by whoever settles the run's id, e.g. on resume)."""
        self.max_errors = max_errors
        self.errors: list[StageError] = []
        self.dead_letters: list[DeadLetter] = []
        self.fatal: StageError | None = None
        self.on_dead_letter: Callable[[DeadLetter], None] | None = None
        """Told every dead letter as it is kept (a run's observers)."""
        self._logged: dict[str | None, int] = {}

    def record(
        self,
        stage: str,
        event: Any,
        error: BaseException,
        attempts: int,
        action: OnError,
        *,
        note: str | None = None,
    ) -> StageError:
        """Keep and log one failure of ``stage`` on ``event``; return its record. A
        ``note`` (what the stage was doing, e.g. at a checkpoint) prefixes its message."""
        message = _error_message(error)
        record = StageError(
            stage=stage,
            error_type=type(error).__qualname__,
            message=f"{note}: {message}" if note else message,
            traceback=user_traceback(error),
            attempts=attempts,
            action=action,
            event=event_repr(event),
        )
        if len(self.errors) < self.max_errors:
            self.errors.append(record)
        if action is OnError.STOP and self.fatal is None:
            self.fatal = record
        if action is OnError.DEAD_LETTER:
            self._dead_letter(DeadLetter(self._letter(record, event), event))
        self._log(record)
        return record

    def adopt(
        self, errors: list[StageError], letters: list[DeadLetter], fatal: StageError | None
    ) -> None:
        """Keep failures recorded (and logged) by another process of the same run: a
        distributed runner's workers send theirs to the driver."""
        room = self.max_errors - len(self.errors)
        self.errors.extend(errors[: max(room, 0)])
        for letter in letters:
            self._dead_letter(letter)
        if fatal is not None and self.fatal is None:
            self.fatal = fatal

    def forget_since(self, errors: int, letters: int) -> None:
        """Drop the failures kept after the first ``errors`` errors and ``letters`` dead
        letters: a run rolled back to a checkpoint meets their events again."""
        del self.errors[errors:]
        del self.dead_letters[letters:]
        self.fatal = None

    def _letter(self, error: StageError, event: Any) -> DeadLetterRecord:
        """The record of a dead letter: ``event`` pickled now (as the stage failed on it),
        empty when it cannot be (then it is kept by its repr only, and not replayable)."""
        assert error.stage is not None
        assert error.event is not None
        return DeadLetterRecord(
            id=None,
            run_id=self.run_id,
            flow=self.flow,
            stage=error.stage,
            event=_pickle_event(event),
            event_repr=error.event,
            error_type=error.error_type,
            message=error.message,
            traceback=error.traceback,
            attempts=error.attempts,
            at=datetime.now(UTC),
        )

    def _dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)
        if self.on_dead_letter is not None:
            self.on_dead_letter(letter)

    def stop(
        self,
        stage: str,
        error: BaseException,
        what: str,
        *,
        event: Any = None,
        attempts: int = 1,
        note: str | None = None,
    ) -> StageFailedError:
        """Record a failure that stops the run; return the error to raise, whose message
        is ``what`` followed by the ``note`` (kept in the record's message too), the
        error's type and message."""
        record = self.record(stage, event, error, attempts, OnError.STOP, note=note)
        detail = f"{note}: " if note else ""
        failure = StageFailedError(
            f"{what}: {detail}{record.error_type}: {_error_message(error)}",
            stage=stage,
            attempts=attempts,
            event=event,
        )
        failure.__cause__ = error
        return failure

    def _log(self, record: StageError) -> None:
        count = self._logged.get(record.stage, 0) + 1
        self._logged[record.stage] = count
        if count <= LOGGED_PER_STAGE:
            logger.warning(
                "flow %r, stage %r: %s: %s (event %s, %d attempt(s)) -> %s",
                self.flow,
                record.stage,
                record.error_type,
                record.message,
                record.event,
                record.attempts,
                record.action.value,
            )
        if count == LOGGED_PER_STAGE:
            logger.warning(
                "flow %r, stage %r: further errors are counted in the run result but not "
                "logged one by one",
                self.flow,
                record.stage,
            )


def _pickle_event(event: Any) -> bytes:
    try:
        return pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)
    # A user's object whose pickling raises anything: kept by repr only; replay is then
    # impossible, and says so.
    except Exception:  # noqa: BLE001
        return b""
