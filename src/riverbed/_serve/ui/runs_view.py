"""The runs list: newest first, filtered by flow, status and age, a page at a time.

Pages are seeks (``Store.list_runs(before=RUN)``): the "older" link carries the id of the
last run shown, so that the 2,000th page costs what the first does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import riverbed as rb
from riverbed._serve.ui.html import Html, badge, h, table, when

__all__ = ["PAGE", "SINCE", "RunFilters", "runs_body"]

PAGE = 50
"""Runs per page."""

SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
"""The ages the list can be cut to, by the name the filter sends."""


@dataclass(frozen=True)
class RunFilters:
    """What the runs list shows: its filters, and where its page starts."""

    flow: str | None = None
    status: rb.RunStatus | None = None
    since: str | None = None
    """A key of ``SINCE``."""
    before: str | None = None
    """The id of the last run of the previous page."""

    @classmethod
    def parse(
        cls, flow: str | None, status: str | None, since: str | None, before: str | None
    ) -> RunFilters:
        """Filters from a query string's values; ``ValueError`` saying what is accepted
        for a status or an age it does not know. Empty values mean "any"."""
        wanted = None
        if status:
            try:
                wanted = rb.RunStatus(status.lower())
            except ValueError:
                names = ", ".join(s.value for s in rb.RunStatus)
                raise ValueError(f"no run status {status!r}; the statuses are {names}") from None
        if since and since not in SINCE:
            raise ValueError(f"since must be one of {', '.join(SINCE)}, got {since!r}")
        return cls(flow or None, wanted, since or None, before or None)

    def runs(self, store: rb.Store) -> tuple[list[rb.RunRecord], bool]:
        """This page's runs, and whether older ones follow."""
        since = datetime.now(UTC) - SINCE[self.since] if self.since else None
        found = store.list_runs(
            flow=self.flow, status=self.status, since=since, before=self.before, limit=PAGE + 1
        )
        return found[:PAGE], len(found) > PAGE

    def query(self, **changed: str | None) -> str:
        """The query string of these filters with ``changed`` ones replaced."""
        values = {
            "flow": self.flow,
            "status": self.status.value if self.status else None,
            "since": self.since,
            "before": self.before,
            **changed,
        }
        return urlencode({name: value for name, value in values.items() if value})


def _form(filters: RunFilters, base: str) -> Html:
    statuses = "".join(
        f"<option value='{s.value}'{' selected' if s is filters.status else ''}>{s.value}</option>"
        for s in rb.RunStatus
    )
    ages = "".join(
        f"<option value='{name}'{' selected' if name == filters.since else ''}>last {name}</option>"
        for name in SINCE
    )
    return (
        f"<form class='filters' method='get' action='{h(base)}/'>"
        f"<label>flow <input name='flow' value='{h(filters.flow or '')}' "
        "placeholder='any flow'></label>"
        f"<label>status <select name='status'><option value=''>any</option>{statuses}"
        "</select></label>"
        f"<label>created <select name='since'><option value=''>any time</option>{ages}"
        "</select></label><button type='submit'>Filter</button></form>"
    )


def _duration(run: rb.RunRecord) -> str:
    if run.started_at is None:
        return "-"
    end = run.ended_at or datetime.now(UTC)
    seconds = (end - run.started_at).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _row(run: rb.RunRecord, base: str) -> list[Html]:
    why = rb.interruption(run) if run.status is rb.RunStatus.RUNNING else None
    status = badge(run.status.value) + (f" <span class='warn'>{h(why)}</span>" if why else "")
    return [
        f"<a href='{h(base)}/runs/{quote(run.run_id)}'><code>{h(run.run_id)}</code></a>",
        h(run.flow),
        status,
        h(run.attempt),
        h(when(run.created_at)),
        h(_duration(run)),
        h(run.worker or "-"),
        h(run.error.error_type if run.error else ""),
    ]


def runs_body(store: rb.Store, filters: RunFilters, base: str) -> Html:
    """The runs list page's body."""
    runs, more = filters.runs(store)
    rows = [_row(run, base) for run in runs]
    headers = ["run", "flow", "status", "attempt", "created (UTC)", "took", "worker", "error"]
    links = []
    if filters.before:
        links.append(f"<a href='{h(base)}/?{h(filters.query(before=None))}'>« newest</a>")
    if more:
        older = filters.query(before=runs[-1].run_id)
        links.append(f"<a class='older' href='{h(base)}/?{h(older)}'>older runs »</a>")
    return (
        f"<h1>Runs</h1>{_form(filters, base)}"
        f"{table(headers, rows, empty='No runs match.')}"
        f"<p class='paging'>{' '.join(links)}</p>"
    )
