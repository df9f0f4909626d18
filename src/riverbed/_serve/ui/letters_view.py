"""The dead letters page: events that failed every retry, with their error and
traceback, and buttons to replay or discard those pending."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import riverbed as rb
from riverbed._serve.ui.html import Html, button, h, when

__all__ = ["LetterFilters", "letters_body"]

SHOWN = 200
"""Dead letters shown at most on one page."""


@dataclass(frozen=True)
class LetterFilters:
    """Which dead letters the page shows."""

    run: str | None = None
    stage: str | None = None
    replayed: bool = False


def _letter(letter: rb.DeadLetterRecord, base: str) -> Html:
    path = f"{base}/letters/{letter.id}"
    actions = ""
    if letter.replayed_by is None:
        if letter.replayable:
            actions += button(
                f"{path}/replay",
                "Replay",
                f"Replay dead letter #{letter.id} into stage {letter.stage} as a new run?",
            )
        actions += button(
            f"{path}/discard", "Discard", f"Discard dead letter #{letter.id}?", danger=True
        )
    else:
        actions = (
            f"replayed by <a href='{h(base)}/runs/{quote(letter.replayed_by)}'>"
            f"{h(letter.replayed_by)}</a>"
        )
    return (
        f"<article class='letter' id='letter-{letter.id}'><header><strong>#{letter.id}</strong>"
        f" run <a href='{h(base)}/runs/{quote(letter.run_id)}'><code>{h(letter.run_id)}</code>"
        f"</a> · flow {h(letter.flow)} · stage <strong>{h(letter.stage)}</strong> · "
        f"{h(when(letter.at))} UTC · {h(letter.attempts)} attempt(s)"
        f"<span class='actions'>{actions}</span></header>"
        f"<p>event: <code class='event'>{h(letter.event_repr)}</code>"
        f"{'' if letter.replayable else ' <span class=warn>(not picklable: not replayable)</span>'}"
        f"</p><p><strong>{h(letter.error_type)}</strong>: {h(letter.message)}</p>"
        f"<details><summary>traceback</summary><pre class='traceback'>{h(letter.traceback)}"
        "</pre></details></article>"
    )


def letters_body(store: rb.Store, filters: LetterFilters, base: str) -> Html:
    """The dead letters page's body."""
    run_id = store.get_run(filters.run).run_id if filters.run else None
    letters = store.dead_letters(
        run_id=run_id, stage=filters.stage, replayed=filters.replayed, limit=SHOWN
    )
    which = "replayed" if filters.replayed else "pending"
    other = "pending" if filters.replayed else "replayed"
    query = f"?replayed={'0' if filters.replayed else '1'}"
    if run_id:
        query += f"&run={quote(run_id)}"
    title = f"Dead letters ({which})" + (f" of run {run_id}" if run_id else "")
    shown = "".join(_letter(letter, base) for letter in letters)
    more = f"<p class='dim'>The first {SHOWN} shown.</p>" if len(letters) == SHOWN else ""
    return (
        f"<h1>{h(title)}</h1><p><a href='{h(base)}/letters{h(query)}'>show {other}</a></p>"
        f"{shown or '<p class=empty>No dead letters.</p>'}{more}"
    )
