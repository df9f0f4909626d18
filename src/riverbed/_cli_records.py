"""Stored records as ``riverbed runs`` prints them: JSON-able dicts and text lines.

Nothing here unpickles: a run's input and output are shown by the repr made when they
were stored (``input_repr``, ``output_repr``), or by their size. The store is not trusted
with code execution by the people who merely look at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import riverbed as rb
from riverbed._stored import interruption

__all__ = [
    "history_lines",
    "run_list_lines",
    "run_to_dict",
    "stage_lines",
    "stage_to_dict",
    "transition_to_dict",
    "when",
]


def when(moment: datetime | None) -> str:
    """A time for people: UTC, to the second; "-" for none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def shown(data: bytes | None, readable: str | None) -> str | None:
    """A stored value for people: its repr made when it was stored, else its size."""
    if data is None:
        return readable
    return readable if readable is not None else f"<{len(data)} bytes, not shown>"


def _error_to_dict(error: rb.ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "stage": error.stage,
        "type": error.error_type,
        "message": error.message,
        "traceback": error.traceback,
    }


def run_to_dict(record: rb.RunRecord, now: datetime | None = None) -> dict[str, Any]:
    """A run record as JSON-able data (input and output by their stored repr or size);
    ``interrupted`` says why a RUNNING run runs no more (``lease_expired``,
    ``process_gone``), from its record alone."""
    why = interruption(record, now)
    return {
        "run_id": record.run_id,
        "flow": record.flow,
        "flow_version": record.flow_version,
        "status": record.status.value,
        "attempt": record.attempt,
        "params": record.params,
        "target": record.target,
        "created_at": record.created_at.isoformat(),
        "started_at": _iso(record.started_at),
        "ended_at": _iso(record.ended_at),
        "rerun_of": record.rerun_of,
        "worker": record.worker,
        "lease_until": _iso(record.lease_until),
        "lease_expired": why is not None and why != "process gone",
        "process_gone": why == "process gone",
        "interrupted": why,
        "error": _error_to_dict(record.error),
        "input": shown(record.input, record.input_repr),
        "output": shown(record.output, record.output_repr),
    }


def stage_to_dict(stage: rb.StageRun) -> dict[str, Any]:
    """A stage run as JSON-able data."""
    return {
        "stage": stage.stage,
        "kind": stage.kind,
        "status": stage.status.value,
        "attempt": stage.attempt,
        "events_in": stage.events_in,
        "events_out": stage.events_out,
        "errors": stage.errors,
        "retries": stage.retries,
        "skipped": stage.skipped,
        "dead_lettered": stage.dead_lettered,
        "dropped": stage.dropped,
        "seconds": stage.seconds,
    }


def transition_to_dict(transition: rb.RunTransition) -> dict[str, Any]:
    """One entry of a run's history as JSON-able data."""
    return {
        "status": transition.status.value,
        "attempt": transition.attempt,
        "at": transition.at.isoformat(),
        "worker": transition.worker,
        "error": _error_to_dict(transition.error),
    }


def run_list_lines(records: Sequence[rb.RunRecord]) -> list[str]:
    """``riverbed runs list`` as text: a RUNNING run whose lease expired or whose process
    is gone shows as ``running*``, with the reason, and a note on what to do."""
    now = datetime.now(UTC)
    lines = [
        f"{'RUN':<18} {'FLOW':<24} {'STATUS':<10} {'ATTEMPT':>7}  {'STARTED':<19}  "
        f"{'ENDED':<19}  NOTE"
    ]
    starred = False
    for r in records:
        why = interruption(r, now)
        status = r.status.value + ("*" if why else "")
        starred = starred or why is not None
        lines.append(
            f"{r.run_id:<18} {r.flow[:24]:<24} {status:<10} {r.attempt:>7}  "
            f"{when(r.started_at):<19}  {when(r.ended_at):<19}  {why or ''}".rstrip()
        )
    if starred:
        lines.append(
            "* no longer running (lease expired, or its process is gone): "
            "`riverbed runs recover` resumes it"
        )
    return lines


def stage_lines(stages: Sequence[rb.StageRun], indent: str = "  ") -> list[str]:
    """A table of stage runs: status and counters."""
    lines = [
        f"{indent}{'stage':<24} {'status':<10} {'in':>9} {'out':>9} {'errors':>7} "
        f"{'retries':>7} {'skipped':>7} {'dead':>5} {'dropped':>7}"
    ]
    for s in stages:
        lines.append(
            f"{indent}{s.stage[:24]:<24} {s.status.value:<10} {s.events_in:>9} "
            f"{s.events_out:>9} {s.errors:>7} {s.retries:>7} {s.skipped:>7} {s.dead_lettered:>5} "
            f"{s.dropped:>7}"
        )
    return lines


def history_lines(history: Sequence[rb.RunTransition], indent: str = "  ") -> list[str]:
    """A run's history: one line per status change (time, status, attempt, worker, and
    the error of a failure)."""
    lines = [f"{indent}{'at':<19}  {'status':<10} {'attempt':>7}  worker"]
    for t in history:
        line = f"{indent}{when(t.at):<19}  {t.status.value:<10} {t.attempt:>7}  {t.worker or '-'}"
        if t.error is not None:
            where = f" at stage {t.error.stage!r}" if t.error.stage else ""
            line += f"\n{indent}  {t.error.error_type}{where}: {t.error.message}"
        lines.append(line)
    return lines
