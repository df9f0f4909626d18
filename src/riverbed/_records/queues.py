"""Named run queues: a scheduled run waits in one, and a worker claims only the runs of
the queues it serves (as Temporal's task queues, or Prefect's work pools)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

__all__ = ["DEFAULT_QUEUE", "check_queue", "check_queues"]

DEFAULT_QUEUE = "default"
"""The queue of a run scheduled without one, and the one a worker serves unless told."""


def check_queue(name: object) -> str:
    """``name`` if it can name a queue (a non-empty string without spaces), else
    ``ValueError`` saying what was wrong."""
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(
            f"a queue name is a non-empty string without spaces, got {name!r:.80} "
            f"(the default queue is {DEFAULT_QUEUE!r})"
        )
    return name


def check_queues(names: Iterable[str] | str) -> tuple[str, ...]:
    """The queues a worker serves, checked and without repeats: at least one."""
    given = (names,) if isinstance(names, str) else tuple(names)
    try:
        return _checked(given)  # every claim checks them: once per set of names
    except TypeError:  # unhashable: not names, said by the check itself
        return _checked.__wrapped__(given)


@functools.lru_cache(maxsize=64)
def _checked(names: tuple[str, ...]) -> tuple[str, ...]:
    checked = tuple(dict.fromkeys(check_queue(name) for name in names))
    if not checked:
        raise ValueError(
            f"a worker serves at least one queue; give queues=[{DEFAULT_QUEUE!r}] for the "
            "default one"
        )
    return checked
