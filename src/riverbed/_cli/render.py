"""How ``riverbed`` commands print what they found or did: the one renderer. Records are
printed as text for people, or as JSON through the records' own ``to_dict()`` (one JSON
form per record kind, the one an HTTP service would serve); run results through
``RunResult.to_dict()`` and ``summary()``.

Nothing here unpickles: a run's input and output are shown by the readable copy stored
with them, or by their size. The store is not trusted with code execution by the people
who merely look at it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import typer

import riverbed as rb
from riverbed._cli.failure import failure_lines

__all__ = [
    "RunDetails",
    "details_json",
    "details_lines",
    "emit_json",
    "history_lines",
    "json_stdout",
    "letter_line",
    "recovery_json",
    "recovery_summary",
    "result_json",
    "result_text",
    "run_json",
    "run_list_lines",
    "stage_lines",
    "when",
]


def when(moment: datetime | None) -> str:
    """A time for people: UTC, to the second; "-" for none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def emit_json(data: Any, *, indent: int | None = 2) -> None:
    """Print ``data`` as JSON on stdout, indented (``indent=None``: on one line); what is
    not JSON-able, by its repr."""
    typer.echo(json.dumps(data, indent=indent, default=repr))


@contextlib.contextmanager
def json_stdout(as_json: bool) -> Iterator[None]:
    """With ``--json``, stdout is the JSON's alone: what a flow prints while it runs (a
    sink of ``print``) goes to stderr instead, so that ``riverbed run app:flow --json |
    jq`` reads JSON only."""
    if not as_json:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


# -- runs -------------------------------------------------------------------------------


def run_json(record: rb.RunRecord, now: datetime | None = None) -> dict[str, Any]:
    """A run record as JSON (``RunRecord.to_dict``), with whether a RUNNING run still
    runs: ``interrupted`` (why not: ``rb.interruption``), ``lease_expired``,
    ``process_gone``."""
    why = rb.interruption(record, now)
    return {
        **record.to_dict(),
        "lease_expired": why is not None and why != "process gone",
        "process_gone": why == "process gone",
        "interrupted": why,
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
        why = rb.interruption(r, now)
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


@dataclass(frozen=True)
class RunDetails:
    """What ``riverbed runs show`` prints of one run."""

    record: rb.RunRecord
    stages: list[rb.StageRun]
    """The latest record of each stage."""
    attempts: dict[int, list[rb.StageRun]]
    """Each attempt's stage records, for the attempts that have some."""
    history: list[rb.RunTransition]
    checkpoint: rb.Checkpoint | None
    letters: int
    """How many dead letters the run has."""


def details_json(shown: RunDetails) -> dict[str, Any]:
    """``runs show --json``: the run's record, its stages (latest, and per attempt), its
    history, its last checkpoint and how many dead letters it has."""
    return {
        **run_json(shown.record),
        "stages": [stage.to_dict() for stage in shown.stages],
        "attempts": [
            {"attempt": n, "stages": [stage.to_dict() for stage in stages]}
            for n, stages in shown.attempts.items()
        ],
        "history": [transition.to_dict() for transition in shown.history],
        "checkpoint": shown.checkpoint.to_dict() if shown.checkpoint is not None else None,
        "dead_letters": shown.letters,
    }


def details_lines(shown: RunDetails) -> list[str]:
    """``runs show`` as text: the record, the error with its traceback, the history, the
    stages (per attempt when there were several), the last checkpoint, the dead letters."""
    record = shown.record
    lines = _record_lines(record)
    if shown.history:
        lines += ["  history:", *history_lines(shown.history, "    ")]
    if len(shown.attempts) > 1:
        for n, stages in shown.attempts.items():
            lines += [f"  attempt {n}:", *stage_lines(stages, "    ")]
    elif shown.stages:
        lines += stage_lines(shown.stages)
    if shown.checkpoint is not None:
        lines.append(
            f"  last checkpoint #{shown.checkpoint.checkpoint_id} at "
            f"{when(shown.checkpoint.created_at)}: sources at "
            f"{json.dumps(shown.checkpoint.positions)}"
        )
    if shown.letters:
        lines.append(
            f"  {shown.letters} dead letter(s): riverbed dead-letters list --run {record.run_id}"
        )
    return lines


def _record_lines(record: rb.RunRecord) -> list[str]:
    """The head of ``runs show``: status, version, times, what it ran on, its error."""
    data = record.to_dict()
    lines = [
        f"run {record.run_id} of flow {record.flow!r}: {record.status.value.upper()}",
        f"  version {record.flow_version}, attempt {record.attempt}",
        f"  started {when(record.started_at)}, ended {when(record.ended_at)}",
    ]
    for label, value in (
        ("target", record.target),
        ("params", json.dumps(record.params) if record.params else None),
        ("re-run of", record.rerun_of),
        ("runner", record.runner),
        ("queue", record.queue if record.queue != "default" else None),
        ("step", f"{record.step} of run {record.parent}" if record.step else None),
        ("input", data["input"]),
        ("output", data["output"]),
    ):
        if value is not None:
            lines.append(f"  {label} {value}")
    why = rb.interruption(record)
    if record.worker and record.status is rb.RunStatus.RUNNING:
        note = f": {why} (`riverbed runs recover` resumes it)" if why else ""
        lines.append(f"  running in {record.worker}, lease until {when(record.lease_until)}{note}")
    if record.error is not None:
        where = f"stage {record.error.stage!r}: " if record.error.stage else ""
        lines.append(f"  error: {where}{record.error.error_type}: {record.error.message}")
        lines += [f"    {line}" for line in record.error.traceback.rstrip().splitlines()]
    return lines


# -- results of runs a command ran ----------------------------------------------------------


def result_json(result: rb.RunResult) -> dict[str, Any]:
    """A run's result as JSON (``RunResult.to_dict``); a workflow's ``output`` as JSON
    too (its parts that are not JSON-able by their repr), not as the repr of all of it."""
    data = result.to_dict()
    if result.steps:
        with contextlib.suppress(ValueError):  # a circular output: its repr stays
            data["output"] = json.loads(json.dumps(result.output, default=repr))
    return data


def result_text(result: rb.RunResult) -> str:
    """A run's result for people: its summary (per-stage counters); a workflow's output
    and replayed steps; for a failure, where in the user's code it failed and where the
    full traceback is."""
    lines = [result.summary()]
    if result.steps:
        lines.append(f"  output {result.to_dict()['output']}")
        if result.replayed:
            lines.append(f"  replayed: {', '.join(result.replayed)}")
    if result.error is not None:
        lines += failure_lines(result.run_id, result.error.traceback)
    return "\n".join(lines)


# -- recoveries (runs recover) -------------------------------------------------------------


def recovery_json(
    run: rb.RunRecord, action: str, message: str, result: rb.RunResult | None
) -> dict[str, Any]:
    """What ``runs recover`` did with one run, as JSON: the action, its message, and the
    result of a run it resumed (as ``runs resume --json`` prints it)."""
    return {
        "run_id": run.run_id,
        "flow": run.flow,
        "action": action,
        "status": result.status.value if result else None,
        "message": message or None,
        "result": result_json(result) if result else None,
    }


def recovery_summary(actions: Sequence[str]) -> str:
    """The last line of ``runs recover``: how many runs it resumed, queued, left..."""
    if not actions:
        return "No interrupted runs."
    counts = Counter(actions)
    return "recovered: " + ", ".join(f"{n} {action}" for action, n in counts.items())


# -- dead letters ---------------------------------------------------------------------------


def letter_line(letter: rb.DeadLetterRecord) -> str:
    """One dead letter for people: run, stage, error, event (cut), attempts."""
    return (
        f"#{letter.id} run {letter.run_id} stage {letter.stage!r}: {letter.error_type}: "
        f"{letter.message} (event {letter.event_repr[:80]}, {letter.attempts} attempt(s))"
        + ("" if letter.replayable else " [cannot be replayed: not picklable]")
    )
