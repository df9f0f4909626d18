"""A run's page: its record and buttons, its error with the traceback, its flow's graph,
each stage's counters and rate, its throughput, its last checkpoint, a workflow's steps,
its status history; and ``live``, the JSON the page polls while the run goes on."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import riverbed as rb
from riverbed._records import COUNTS
from riverbed._records.json import shown
from riverbed._serve.ui.chart import Samples, rates, throughput_svg
from riverbed._serve.ui.flows import FlowGraphs
from riverbed._serve.ui.graph import flow_graph_svg
from riverbed._serve.ui.html import Html, badge, button, code_json, h, table, when

__all__ = ["LIVE", "live", "run_body"]

S = rb.RunStatus
LIVE = (S.SCHEDULED, S.RUNNING)
"""The statuses in which a run's page follows it live."""
_COUNTED = [name for name in COUNTS if name != "seconds"]


def _sample(samples: Samples, run: rb.RunRecord, stages: list[rb.StageRun]) -> dict[str, float]:
    """Record a reading of the run's counters; each stage's rate (events through it per
    second: a source's out, another stage's in)."""
    read = sum(stage.events_out for stage in stages if stage.kind is rb.StageKind.SOURCE)
    if not any(stage.kind is rb.StageKind.SOURCE for stage in stages):
        read = sum(stage.events_in for stage in stages)  # a workflow: its steps' inputs
    return rates(samples.add(run.run_id, read, {s.stage: _through(s) for s in stages}))


def _through(stage: rb.StageRun) -> int:
    """The events that went through a stage: those it took in, or a source's out."""
    return stage.events_out if stage.kind is rb.StageKind.SOURCE else stage.events_in


def _rate_text(run: rb.RunRecord, stage: rb.StageRun, rate: float | None) -> str:
    """A stage's rate while its run goes on, else its average over the run."""
    if rate is not None and run.status in LIVE:
        return f"{rate:,.1f}/s"
    if run.started_at is None or run.ended_at is None:
        return "-"
    seconds = (run.ended_at - run.started_at).total_seconds()
    return f"{_through(stage) / seconds:,.1f}/s avg" if seconds > 0 else "-"


def live(
    store: rb.Store, samples: Samples, run_id: str, *, starting: bool = False
) -> dict[str, Any]:
    """What a run page updates: ``fields`` (``data-field`` name to text), the ``chart``
    (SVG), ``done`` once the run left SCHEDULED and RUNNING (and is not ``starting``: a
    button's thread about to claim it), and the run's JSON form."""
    run = store.get_run(run_id)
    stages = store.stage_runs(run.run_id)
    stage_rates = _sample(samples, run, stages)
    fields = {"run/status": run.status.value, "run/ended_at": when(run.ended_at)}
    checkpoint = store.latest_checkpoint(run.run_id, states=False)
    if checkpoint is not None:
        fields["checkpoint/at"] = _checkpoint_line(checkpoint)
        fields["checkpoint/positions"] = json.dumps(checkpoint.positions, indent=2, default=repr)
    for stage in stages:
        for name in _COUNTED:
            fields[f"stage/{stage.stage}/{name}"] = f"{getattr(stage, name):,}"
        fields[f"stage/{stage.stage}/status"] = stage.status.value
        fields[f"stage/{stage.stage}/rate"] = _rate_text(run, stage, stage_rates.get(stage.stage))
    return {
        "run": run.to_dict(),
        "stages": [stage.to_dict() for stage in stages],
        "fields": fields,
        "chart": throughput_svg(samples.of(run.run_id)),
        "done": run.status not in LIVE and not starting,
    }


def _buttons(run: rb.RunRecord, base: str) -> Html:
    path = f"{base}/runs/{quote(run.run_id)}"
    parts = []
    gone = run.status is S.RUNNING and rb.interruption(run) is not None
    if run.status in (S.FAILED, S.CRASHED, S.CANCELLED) or gone:
        parts.append(
            button(f"{path}/resume", "Resume", f"Resume run {run.run_id} from its last checkpoint?")
        )
    if run.status not in LIVE:
        parts.append(
            button(
                f"{path}/rerun",
                "Re-run",
                f"Run flow {run.flow} again as a new run, from run {run.run_id}'s last checkpoint?",
            )
        )
    if run.status in LIVE:
        parts.append(button(f"{path}/cancel", "Cancel", f"Cancel run {run.run_id}?", danger=True))
    return f"<div class='actions'>{''.join(parts)}</div>"


def _facts(run: rb.RunRecord, letters: int, base: str) -> Html:
    rows = [
        ("flow", f"{h(run.flow)} <span class='dim'>version {h(run.flow_version)}</span>"),
        ("status", badge(run.status.value, "run/status")),
        ("attempt", h(run.attempt)),
        ("created", h(when(run.created_at))),
        ("started", h(when(run.started_at))),
        ("ended", f"<span data-field='run/ended_at'>{h(when(run.ended_at))}</span>"),
        ("worker", h(f"{run.worker or '-'} (lease until {when(run.lease_until)})")),
        ("runner", h(run.runner or "-")),
        ("target", f"<code>{h(run.target or '-')}</code>"),
        ("params", code_json(run.params) if run.params else "-"),
        ("input", f"<code>{h(shown(run.input, run.input_repr) or '-')}</code>"),
        ("output", f"<code>{h(shown(run.output, run.output_repr) or '-')}</code>"),
    ]
    if run.rerun_of:
        rows.append(
            ("re-run of", f"<a href='{h(base)}/runs/{quote(run.rerun_of)}'>{h(run.rerun_of)}</a>")
        )
    why = rb.interruption(run) if run.status is S.RUNNING else None
    if why:
        rows.append(("note", f"<span class='warn'>{h(why)}: resume it</span>"))
    if letters:
        rows.append(
            (
                "dead letters",
                f"<a href='{h(base)}/letters?run={quote(run.run_id)}'>{letters} pending</a>",
            )
        )
    cells = "".join(f"<tr><th>{h(name)}</th><td>{value}</td></tr>" for name, value in rows)
    return f"<table class='facts'>{cells}</table>"


def _error(error: rb.StageError | None) -> Html:
    if error is None:
        return ""
    event = f"<p>event: <code>{h(error.event)}</code></p>" if error.event else ""
    return (
        f"<section class='error'><h2>Error</h2><p><strong>{h(error.error_type)}</strong>: "
        f"{h(error.message)} <span class='dim'>(stage {h(error.stage or '-')}, "
        f"{h(error.attempts)} attempt(s), {h(error.action.value)})</span></p>{event}"
        f"<pre class='traceback'>{h(error.traceback)}</pre></section>"
    )


def _stage_row(run: rb.RunRecord, stage: rb.StageRun, rate: float | None) -> list[Html]:
    field = f"stage/{stage.stage}"
    cells = [h(stage.stage), h(stage.kind.value), badge(stage.status.value, f"{field}/status")]
    cells += [
        f"<span data-field='{h(field)}/{name}'>{getattr(stage, name):,}</span>" for name in _COUNTED
    ]
    cells.append(f"<span data-field='{h(field)}/rate'>{h(_rate_text(run, stage, rate))}</span>")
    return cells


def _waiting_row(stage: dict[str, Any]) -> list[Html]:
    """A stage of the flow that saved no counters yet: its cells wait for the live ones."""
    field = f"stage/{stage['name']}"
    cells = [h(stage["name"]), h(stage["kind"]), badge("pending", f"{field}/status")]
    cells += [f"<span data-field='{h(field)}/{name}'>-</span>" for name in (*_COUNTED, "rate")]
    return cells


def _stages(
    run: rb.RunRecord,
    stages: list[rb.StageRun],
    stage_rates: dict[str, float],
    graph: list[dict[str, Any]],
) -> Html:
    rows = [_stage_row(run, stage, stage_rates.get(stage.stage)) for stage in stages]
    saved = {stage.stage for stage in stages}
    if run.status in LIVE:  # counters are saved at checkpoints: show where they will go
        rows += [_waiting_row(stage) for stage in graph if stage["name"] not in saved]
    headers = ["stage", "kind", "status", *[n.replace("_", " ") for n in _COUNTED], "rate"]
    return table(
        headers,
        rows,
        empty="No stage saved its counters (they are saved with each checkpoint and at the end).",
    )


def _checkpoint(checkpoint: rb.Checkpoint | None) -> Html:
    if checkpoint is None:
        return "<p class='empty' data-field='checkpoint/at'>No checkpoint.</p>"
    positions = json.dumps(checkpoint.positions, indent=2, default=repr)
    return (
        f"<p data-field='checkpoint/at'>{h(_checkpoint_line(checkpoint))}</p>"
        f"<pre class='json' data-field='checkpoint/positions'>{h(positions)}</pre>"
    )


def _checkpoint_line(checkpoint: rb.Checkpoint) -> str:
    end = " (the end)" if checkpoint.ended else ""
    return (
        f"#{checkpoint.checkpoint_id} at {when(checkpoint.created_at)} UTC{end}: source positions"
    )


def _steps(store: rb.Store, run: rb.RunRecord, stages: list[rb.StageRun]) -> Html:
    steps = store.steps(run.run_id)
    if not steps:
        return ""
    status = {stage.stage: stage.status.value for stage in stages}
    rows = [
        [h(step.seq), h(step.stage), badge(status.get(step.stage, "succeeded")), h(when(step.at))]
        for step in steps
    ]
    return "<h2>Workflow steps</h2>" + table(
        ["#", "step", "status", "done at (UTC)"], rows, empty=""
    )


def _history(store: rb.Store, run: rb.RunRecord) -> Html:
    rows = [
        [
            badge(t.status.value),
            h(t.attempt),
            h(when(t.at)),
            h(t.worker or "-"),
            h(f"{t.error.error_type}: {t.error.message}" if t.error else ""),
        ]
        for t in store.history(run.run_id)
    ]
    return table(["status", "attempt", "at (UTC)", "worker", "error"], rows, empty="")


def run_body(
    store: rb.Store,
    graphs: FlowGraphs,
    samples: Samples,
    run_id: str,
    base: str,
    *,
    starting: bool = False,
) -> Html:
    """The run page's body (``RunNotFoundError`` if there is no such run); it follows the
    run while it is SCHEDULED or RUNNING, or ``starting`` (a button's thread is about to
    claim it: a resumed run is still FAILED until then)."""
    run = store.get_run(run_id)
    stages = store.stage_runs(run.run_id)
    stage_rates = _sample(samples, run, stages)
    graph, note = graphs.of(store, run)
    counts = {stage.stage: (stage.events_in, stage.events_out) for stage in stages}
    letters = len(store.dead_letters(run_id=run.run_id, replayed=False))
    following = run.status in LIVE or starting
    follow = f" data-live='{h(base)}/api/runs/{quote(run.run_id)}/live'" if following else ""
    return (
        f"<div{follow}><h1>Run <code>{h(run.run_id)}</code> {badge(run.status.value)}</h1>"
        f"{_buttons(run, base)}{_facts(run, letters, base)}{_error(run.error)}"
        f"<h2>Flow</h2><div class='graph-box'>{flow_graph_svg(graph, counts)}</div>"
        f"{f'<p class=dim>{h(note)}</p>' if note else ''}"
        f"<h2>Stages</h2>{_stages(run, stages, stage_rates, graph)}"
        f"<h2>Throughput</h2><div id='chart'>{throughput_svg(samples.of(run.run_id))}</div>"
        f"<h2>Last checkpoint</h2>{_checkpoint(store.latest_checkpoint(run.run_id, states=False))}"
        f"{_steps(store, run, stages)}<h2>History</h2>{_history(store, run)}</div>"
    )
