"""Records to rows and back: the one place where enums become strings, times become the
dialect's time, and JSON-able values become JSON."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from riverbed._records import (
    Checkpoint,
    DeadLetterRecord,
    OnError,
    RunRecord,
    RunStatus,
    RunTransition,
    StageError,
    StageKind,
    StageRun,
    StageStatus,
    StepRecord,
)
from riverbed._store.schema import Dialect

__all__ = ["RUN_COLUMNS", "Codec"]

RUN_COLUMNS = tuple(f.name for f in dataclasses.fields(RunRecord))
STAGE_RUN_COLUMNS = tuple(f.name for f in dataclasses.fields(StageRun))
DEAD_LETTER_COLUMNS = tuple(f.name for f in dataclasses.fields(DeadLetterRecord))
STEP_COLUMNS = tuple(f.name for f in dataclasses.fields(StepRecord))
CHECKPOINT_COLUMNS = ("run_id", "checkpoint_id", "flow_version", "positions", "created_at")

META_STAGE = "riverbed:meta"
"""The row of ``riverbed_checkpoint_states`` that holds a checkpoint's own data as JSON (see
``Codec.checkpoint_meta_in``). A stage name cannot contain ':', so it never collides."""
HISTORY_COLUMNS = tuple(f.name for f in dataclasses.fields(RunTransition))

_RUN_TIMES = frozenset({"created_at", "started_at", "ended_at", "lease_until"})
_UPDATABLE = frozenset(RUN_COLUMNS) - {"run_id", "status"}


class Codec:
    """Converts values between records and one dialect's columns."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    # -- scalars ---------------------------------------------------------------------------

    def time_in(self, value: datetime | None, what: str) -> Any:
        """A tz-aware datetime as the dialect stores it; naive ones are refused, since the
        store could only guess their zone."""
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(
                f"{what} must be a timezone-aware datetime (e.g. datetime.now(UTC)), got {value!r}"
            )
        value = value.astimezone(UTC)
        if self.dialect is Dialect.SQLITE:
            # Fixed width (microseconds always written) so that text order is time order.
            return value.isoformat(timespec="microseconds")
        return value

    def time_out(self, value: Any) -> datetime | None:
        """A stored time as a tz-aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        moment: datetime = value
        return moment.astimezone(UTC)

    def json_in(self, value: Any, what: str) -> str:
        """JSON text (PostgreSQL casts it to JSON); NaN and non-JSON values are refused."""
        try:
            return json.dumps(value, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{what} must be JSON-able (dicts, lists, str, numbers): {exc}"
            ) from None

    def json_out(self, value: Any) -> Any:
        """A stored JSON value (psycopg already parses JSON; SQLite gives text)."""
        if isinstance(value, str):
            return json.loads(value)
        return value

    # -- runs --------------------------------------------------------------------------------

    def run_field_in(self, name: str, value: Any) -> Any:
        """One RunRecord field as its column value."""
        if name in _RUN_TIMES:
            return self.time_in(value, name)
        if name == "status":
            if not isinstance(value, RunStatus):
                raise TypeError(f"status must be a RunStatus, got {value!r}")
            return value.value
        if name == "params":
            return self.json_in(value, "params")
        if name == "error":
            return self.error_in(value)
        return value

    def check_fields(self, fields: dict[str, Any], method: str) -> None:
        """Refuse fields that are not RunRecord's, and the two no update may set."""
        wrong = sorted(set(fields) - _UPDATABLE)
        if wrong:
            raise TypeError(
                f"{method}() cannot set {', '.join(wrong)}: it sets any RunRecord field "
                "except run_id and status (use transition() to change a status)"
            )

    def run_in(self, run: RunRecord) -> tuple[Any, ...]:
        """A run's column values, in ``RUN_COLUMNS`` order."""
        return tuple(self.run_field_in(name, getattr(run, name)) for name in RUN_COLUMNS)

    def run_out(self, row: tuple[Any, ...]) -> RunRecord:
        """A row of ``RUN_COLUMNS`` as a RunRecord."""
        values = dict(zip(RUN_COLUMNS, row, strict=True))
        for name in _RUN_TIMES:
            values[name] = self.time_out(values[name])
        values["status"] = RunStatus(values["status"])
        values["params"] = self.json_out(values["params"])
        values["error"] = self.error_out(values["error"])
        values["input"] = _bytes(values["input"])
        values["output"] = _bytes(values["output"])
        return RunRecord(**values)

    # -- the other records -------------------------------------------------------------------

    def stage_run_in(self, stage_run: StageRun) -> tuple[Any, ...]:
        """A stage run's column values, in ``STAGE_RUN_COLUMNS`` order (its counts first,
        as ``StageCounts`` declares them, then its own fields)."""
        # Attribute by attribute: dataclasses.astuple deep-copies, and this is on the hot
        # path of record_step.
        return (
            stage_run.events_in,
            stage_run.events_out,
            stage_run.errors,
            stage_run.retries,
            stage_run.skipped,
            stage_run.dead_lettered,
            stage_run.dropped,
            stage_run.seconds,
            stage_run.run_id,
            stage_run.stage,
            stage_run.kind.value,
            stage_run.status.value,
            self.time_in(stage_run.started_at, "StageRun.started_at"),
            self.time_in(stage_run.ended_at, "StageRun.ended_at"),
            stage_run.attempt,
        )

    def stage_run_out(self, row: tuple[Any, ...]) -> StageRun:
        """A row of ``STAGE_RUN_COLUMNS`` as a StageRun."""
        values = dict(zip(STAGE_RUN_COLUMNS, row, strict=True))
        values["kind"] = StageKind(values["kind"])
        values["status"] = StageStatus(values["status"])
        values["seconds"] = float(values["seconds"])
        values["started_at"] = self.time_out(values["started_at"])
        values["ended_at"] = self.time_out(values["ended_at"])
        return StageRun(**values)

    def error_in(self, error: StageError | None) -> str | None:
        """A run's error as its JSON column: its action by its value, its texts made
        storable."""
        if error is None:
            return None
        if not isinstance(error, StageError):
            raise TypeError(f"error must be a StageError (ErrorInfo) or None, got {error!r}")
        fields = {
            "stage": error.stage,
            "error_type": _text(error.error_type),
            "message": _text(error.message),
            "traceback": _text(error.traceback),
            "attempts": error.attempts,
            "action": error.action.value,
            "event": _text(error.event),
        }
        return self.json_in(fields, "error")

    def error_out(self, value: Any) -> StageError | None:
        """A run's JSON error column as a StageError (an error stored before it kept its
        attempts, action and event reads with their defaults)."""
        fields = self.json_out(value)
        if fields is None:
            return None
        if "action" in fields:
            fields["action"] = OnError(fields["action"])
        return StageError(**fields)

    def history_out(self, row: tuple[Any, ...]) -> RunTransition:
        """A row of ``HISTORY_COLUMNS`` as a RunTransition."""
        values = dict(zip(HISTORY_COLUMNS, row, strict=True))
        values["status"] = RunStatus(values["status"])
        values["at"] = self.time_out(values["at"])
        values["error"] = self.error_out(values["error"])
        return RunTransition(**values)

    def dead_letter_in(self, letter: DeadLetterRecord) -> tuple[Any, ...]:
        """A dead letter's column values, ``id`` left out (the store assigns it)."""
        return (
            letter.run_id,
            letter.flow,
            letter.stage,
            letter.event,
            _text(letter.event_repr),
            letter.error_type,
            _text(letter.message),
            _text(letter.traceback),
            letter.attempts,
            self.time_in(letter.at, "DeadLetterRecord.at"),
            letter.replayed_by,
        )

    def dead_letter_out(self, row: tuple[Any, ...]) -> DeadLetterRecord:
        """A row of ``DEAD_LETTER_COLUMNS`` as a DeadLetterRecord."""
        values = dict(zip(DEAD_LETTER_COLUMNS, row, strict=True))
        values["event"] = _bytes(values["event"])
        values["at"] = self.time_out(values["at"])
        return DeadLetterRecord(**values)

    def step_in(self, step: StepRecord) -> tuple[Any, ...]:
        """A step's column values, in ``STEP_COLUMNS`` order."""
        return (step.run_id, step.seq, step.stage, step.output, self.time_in(step.at, "at"))

    def step_out(self, row: tuple[Any, ...]) -> StepRecord:
        """A row of ``STEP_COLUMNS`` as a StepRecord."""
        at = self.time_out(row[4])
        return StepRecord(row[0], row[1], row[2], _bytes(row[3]), at)  # type: ignore[arg-type]

    def checkpoint_in(self, checkpoint: Checkpoint) -> tuple[Any, ...]:
        """A checkpoint's column values, in ``CHECKPOINT_COLUMNS`` order (states apart)."""
        return (
            checkpoint.run_id,
            checkpoint.checkpoint_id,
            checkpoint.flow_version,
            self.json_in(checkpoint.positions, "Checkpoint.positions"),
            self.time_in(checkpoint.created_at, "Checkpoint.created_at"),
        )

    def checkpoint_meta_in(self, checkpoint: Checkpoint) -> bytes:
        """The checkpoint's own data (counters, finished chains, stage versions, whether
        the run had drained) as the state of the ``META_STAGE`` row."""
        meta = {
            "counters": checkpoint.counters,
            "finished": sorted(checkpoint.finished),
            "stage_versions": checkpoint.stage_versions,
            "ended": checkpoint.ended,
        }
        return json.dumps(meta).encode()

    def checkpoint_out(self, row: tuple[Any, ...], states: list[tuple[Any, ...]]) -> Checkpoint:
        """A row of ``CHECKPOINT_COLUMNS`` and its (stage, state) rows as a Checkpoint, the
        ``META_STAGE`` row read into its fields."""
        whole = {stage: _bytes(state) for stage, state in states}
        meta_row = whole.pop(META_STAGE, None)
        meta = json.loads(meta_row) if meta_row is not None else {}
        return Checkpoint(
            row[0],
            row[1],
            row[2],
            self.json_out(row[3]),
            whole,
            self.time_out(row[4]),  # type: ignore[arg-type]
            counters=meta.get("counters", {}),
            finished=tuple(meta.get("finished", ())),
            stage_versions=meta.get("stage_versions", {}),
            ended=bool(meta.get("ended", False)),
        )


def _text(value: Any) -> Any:
    """Diagnostic text (a repr, a message, a traceback) made storable: lone surrogates, as
    ``os.fsdecode`` leaves for undecodable file names, cannot be encoded as UTF-8 and would
    lose the whole record, so they are written as ``\\udcff`` escapes instead."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _bytes(value: Any) -> Any:
    """Drivers may hand back memoryview for binary columns; records hold bytes."""
    if isinstance(value, memoryview):
        return value.tobytes()
    return value
