"""Clickstream: visits per user (session windows) and page views per ten minutes.

    python examples/clickstream.py                      # 2,000 synthetic clicks, seed 7
    python examples/clickstream.py --clicks 50000 --seed 1
    riverbed run examples.clickstream:flow              # the same, from the CLI

Clicks carry their own time (``t``, seconds), and arrive up to a minute out of order. Keyed
by user, a session window closes a visit after 30 minutes without a click and emits the
pages of the visit; keyed by page, tumbling windows of ten minutes count the views. Both
wait one minute for stragglers (``max_delay``); a click later than that comes out as
``rb.Late`` beside the results, and the sink counts it.
"""

from __future__ import annotations

import argparse
import functools
import random
from collections.abc import Iterator
from typing import Any

CLICKS = 2_000
SEED = 7
USERS = ("ann", "bob", "cid", "dee", "eve")
PAGES = ("home", "search", "item", "cart", "help")
GAP = 30 * 60.0
"""A visit ends after 30 minutes without a click."""
TEN_MINUTES = 600.0
STRAGGLE = 60.0
"""Clicks come up to a minute out of order."""

Click = dict[str, Any]


# -- the plain Python that does the work ----------------------------------------------------


def clicks(n: int = CLICKS, seed: int = SEED) -> Iterator[Click]:
    """``n`` synthetic clicks, the same for the same seed: mostly a few seconds to minutes
    apart, now and then an hour's pause, each delivered up to a minute late (and one in
    two hundred, five minutes late: too late to count)."""
    rng = random.Random(seed)
    now = 0.0
    for _ in range(n):
        now += rng.expovariate(1 / 30) if rng.random() > 0.01 else 3600.0
        user = rng.choice(USERS)
        late = rng.uniform(0, STRAGGLE) if rng.random() > 0.005 else 300.0
        yield {"user": user, "page": rng.choice(PAGES), "t": now - late}


def user_of(click: Click) -> str:
    """Sessions are per user."""
    return click["user"]


def page_of(click: Click) -> str:
    """Views are per page."""
    return click["page"]


def time_of(click: Click) -> float:
    """Event time: when the click happened, in seconds."""
    return click["t"]


class Report:
    """A sink: counts visits, views and late clicks, and prints them when closed."""

    def __init__(self) -> None:
        self.visits: list[tuple[str, float, int]] = []
        self.views: dict[str, int] = {}
        self.late = 0

    def reset(self) -> None:
        """Forget everything (a new run starts afresh)."""
        self.visits, self.views, self.late = [], {}, 0

    def write_batch(self, items: list[Any]) -> None:
        for item in items:
            kind, payload = item
            if kind == "visit":
                self.visits.append(payload)
            elif kind == "views":
                page, count = payload
                self.views[page] = self.views.get(page, 0) + count
            else:
                self.late += 1

    def close(self) -> None:
        """Print the totals, then forget them so that the next run starts afresh."""
        longest = max(self.visits, key=lambda visit: visit[1], default=None)
        print(f"{len(self.visits)} visits; the longest: {longest}")
        print("views per page:", dict(sorted(self.views.items())))
        print(f"{self.late} clicks came too late to count")
        self.reset()


def as_visit(item: Any) -> tuple[str, Any]:
    """A session result, ``(user, (window, pages))``, as ``("visit", (user, minutes,
    clicks))``; a late click (not a pair: an ``rb.Late``) as ``("late", click)``."""
    user, result = item
    if not isinstance(result, tuple):
        return ("late", result.value)
    window, pages = result
    return ("visit", (user, round((window.end - window.start - GAP) / 60, 1), len(pages)))


def as_views(item: Any) -> tuple[str, Any]:
    """A window count, ``(page, (window, count))``, as ``("views", (page, count))``; a
    late click as ``("late", click)``."""
    page, result = item
    if not isinstance(result, tuple):
        return ("late", result.value)
    return ("views", (page, result[1]))


# -- the wiring -----------------------------------------------------------------------------

import riverbed as rb  # noqa: E402 - kept apart on purpose: nothing above needs riverbed


def build(n: int = CLICKS, seed: int = SEED) -> rb.Flow:
    """Visits and page views of ``n`` synthetic clicks."""
    flow = rb.Flow("clickstream")
    events = flow.source(functools.partial(clicks, n, seed), name="clicks")
    late = rb.LatePolicy.SIDE
    visits = events.key_by(user_of, name="by_user").window(
        rb.Session(GAP),
        rb.Collect(),
        event_time=time_of,
        max_delay=STRAGGLE,
        late=late,
        name="visits",
    )
    views = events.key_by(page_of, name="by_page").window(
        rb.Tumbling(TEN_MINUTES),
        rb.Count(),
        event_time=time_of,
        max_delay=STRAGGLE,
        late=late,
        name="views",
    )
    rb.merge(visits.map(as_visit), views.map(as_views)).sink(Report(), name="report")
    return flow


flow = build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=CLICKS, help="how many clicks")
    parser.add_argument("--seed", type=int, default=SEED, help="the random seed")
    args = parser.parse_args()
    result = build(args.clicks, args.seed).run()
    print()
    print(result.summary())


if __name__ == "__main__":
    main()
