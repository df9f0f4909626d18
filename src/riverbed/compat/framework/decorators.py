"""framework's decorators for ``process`` methods: caching, retry, timing."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from riverbed.compat.framework.processors import Context

_log = logging.getLogger(__name__)

# -- decorators -----------------------------------------------------------------------------


def caching(process: Callable[..., Any]) -> Callable[..., Any]:
    """Cache what ``process(self, context, event)`` submits by the event's ``repr``: an
    equal event later is answered by submitting the cached events again, without a call.
    (For artifacts kept in the store across runs, use ``ReactiveBuilder(persist=True)``.)"""
    cache: dict[tuple[int, str], list[Any]] = {}

    @functools.wraps(process)
    def cached(self: Any, context: Context, event: Any) -> None:
        digest = (id(self), f"{type(event).__qualname__}:{event!r}")
        if digest not in cache:
            inner = Context()
            process(self, inner, event)
            cache[digest] = inner.submitted
        for out in cache[digest]:
            context.submit(out)

    return cached


def retry(attempts: int = 3, delay: float = 0.0) -> Callable[[Callable[..., Any]], Any]:
    """Call the decorated function again on an exception, up to ``attempts`` times in all,
    ``delay`` seconds apart. (riverbed's own form is a stage's ``retry=rb.Retry(...)``.)"""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def again(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except Exception:  # any failure is retried, then raised
                    if attempt == attempts:
                        raise
                    time.sleep(delay)
            return None

        return again

    return decorate


def timeit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Log how long each call of ``fn`` takes (logger ``riverbed.compat.framework``)."""

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _log.info("%s took %.6f s", fn.__qualname__, time.perf_counter() - start)

    return timed
