"""HTML for the dashboard's pages: escaping, the page frame, and the small pieces every
page uses (times, statuses, tables, action buttons).

Every text that comes from a store (names, reprs, tracebacks, messages, params) goes
through ``h`` (``html.escape``, quotes included) before it reaches a page: pieces of HTML
are built only here and in the page modules, from escaped text and fixed markup.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Html",
    "badge",
    "button",
    "code_json",
    "h",
    "page",
    "table",
    "when",
]

Html = str
"""A piece of HTML whose user-supplied parts are escaped already."""


def h(text: object) -> Html:
    """``text`` (any value, by ``str``) escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def when(moment: datetime | None) -> str:
    """A time for people: UTC, to the second; "-" for none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def badge(status: str, field: str | None = None) -> Html:
    """A run's or a stage's status as a coloured label; with ``field``, updated live."""
    live = f' data-field="{h(field)}"' if field else ""
    return f'<span class="badge st-{h(status)}"{live}>{h(status)}</span>'


def code_json(value: Any) -> Html:
    """A JSON-able value shown as indented JSON, escaped."""
    return f"<pre class='json'>{h(json.dumps(value, indent=2, default=repr))}</pre>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Html]], *, empty: str) -> Html:
    """A table of rows whose cells are HTML already (escape them first); ``empty`` when
    there are no rows."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f"<p class='empty'>{h(empty)}</p>"
    head = "".join(f"<th>{h(name)}</th>" for name in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def button(action: str, label: str, question: str, *, danger: bool = False) -> Html:
    """A form posting to ``action`` (a path), asking ``question`` before it goes (the
    script asks in the browser; without it, the server asks on a page of its own)."""
    kind = "danger" if danger else "primary"
    return (
        f'<form method="post" action="{h(action)}" data-confirm="{h(question)}" class="inline">'
        '<input type="hidden" name="confirmed" value="">'
        f'<button type="submit" class="{kind}">{h(label)}</button></form>'
    )


def page(title: str, body: Html, *, links: dict[str, str], notice: str | None = None) -> Html:
    """A whole page: the frame (navigation to ``links``' runs, dead letters, queue), then
    ``body``; ``notice`` (plain text) shown on top."""
    nav = "".join(
        f'<a href="{h(links[name])}">{h(label)}</a>'
        for name, label in (("runs", "Runs"), ("letters", "Dead letters"), ("queue", "Queue"))
    )
    shown = f"<p class='notice'>{h(notice)}</p>" if notice else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{h(title)} · riverbed</title>"
        f"<link rel='stylesheet' href='{h(links['css'])}'>"
        f"<script defer src='{h(links['js'])}'></script></head><body>"
        f"<header><a class='brand' href='{h(links['runs'])}'>riverbed</a><nav>{nav}</nav>"
        f"<span class='store'>{h(links['store'])}</span></header>"
        f"<main>{shown}{body}</main></body></html>"
    )
