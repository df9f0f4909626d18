"""The queue page: runs scheduled for a worker, oldest (next) first, each with its place in
its named queue, and the workers holding runs, with their leases."""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import quote

import riverbed as rb
from riverbed._serve.ui.html import Html, badge, h, table, when

__all__ = ["queue_body"]

SHOWN = 500
"""Runs shown at most in each part."""


def _run_link(run: rb.RunRecord, base: str) -> Html:
    return f"<a href='{h(base)}/runs/{quote(run.run_id)}'><code>{h(run.run_id)}</code></a>"


def queue_body(store: rb.Store, base: str) -> Html:
    """The queue page's body."""
    queued = store.list_runs(status=rb.RunStatus.SCHEDULED, limit=SHOWN)[::-1]
    places: dict[str, int] = defaultdict(int)  # a run's place is in its own named queue
    waiting = []
    for run in queued:
        places[run.queue] += 1
        waiting.append(
            [
                h(run.queue),
                h(places[run.queue]),
                _run_link(run, base),
                h(run.flow),
                h(run.attempt),
                h(when(run.created_at)),
            ]
        )
    workers: dict[str, list[rb.RunRecord]] = defaultdict(list)
    for run in store.list_runs(status=rb.RunStatus.RUNNING, limit=SHOWN):
        workers[run.worker or "-"].append(run)
    held = []
    for name in sorted(workers):
        for run in workers[name]:
            why = rb.interruption(run)
            state = f"<span class='warn'>{h(why)}</span>" if why else badge("running")
            held.append(
                [h(name), _run_link(run, base), h(run.flow), h(when(run.lease_until)), state]
            )
    return (
        f"<h1>Queue</h1><h2>Scheduled ({len(queued)}{'+' if len(queued) == SHOWN else ''})</h2>"
        + table(
            ["queue", "#", "run", "flow", "attempt", "scheduled (UTC)"],
            waiting,
            empty="The queue is empty.",
        )
        + f"<h2>Workers ({len(workers)})</h2>"
        + table(
            ["worker", "run", "flow", "lease until (UTC)", "state"],
            held,
            empty="No worker holds a run.",
        )
    )
