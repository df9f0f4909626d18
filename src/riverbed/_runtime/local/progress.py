"""The live progress display of a local run: one line of counters per stage, on a terminal.

The engine owns the timing: it builds a ``LiveProgress`` over its ``StageCounters`` when a
run starts, calls ``refresh()`` about four times a second, and ``stop()`` once at the end.
Nothing shows until ``delay`` seconds have passed, so short runs print nothing. Rich is
imported only when the display starts, which keeps ``import riverbed`` light.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from riverbed._runtime.result import StageCounters

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = ["LiveProgress", "wants_progress"]

# Shortest interval worth a new events/s sample: a refresh that follows the previous one
# sooner than this (e.g. the final one from ``stop``) keeps the rate already shown.
_MIN_SAMPLE_SECONDS = 0.05

_STATUS_STYLES = {"succeeded": ("[green]✔[/]", "green"), "failed": ("[red]✘[/]", "red")}


def wants_progress(progress: bool | None, stream: TextIO | None = None) -> bool:
    """Whether to show live progress: ``True``/``False`` force it; ``None`` means auto,
    which is True only when ``stream`` (default ``sys.stdout``) is a terminal.

    >>> import io
    >>> wants_progress(None, io.StringIO()), wants_progress(True, io.StringIO())
    (False, True)
    """
    if progress is not None:
        if not isinstance(progress, bool):
            raise TypeError(
                f"progress takes True, False or None (show it on a terminal), got {progress!r}"
            )
        return progress
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):  # a closed or detached stream is no terminal
        return False


class LiveProgress:
    """A Rich live display of a run's stage counters, driven by the engine.

    ``counters`` are read, never written. Each line shows a stage's name, kind, events in,
    events out, errors and its input rate in events/s over the last refresh interval (a
    source's output rate: it has no input); the
    header shows a spinner, the flow's name and the time since this object was made. The
    final frame, drawn by ``stop``, shows the status and each stage's mean rate over the run.
    """

    def __init__(
        self,
        flow_name: str,
        counters: Sequence[StageCounters],
        *,
        delay: float = 1.0,
        console: Console | None = None,
    ) -> None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise ValueError(f"delay must be a number of seconds >= 0, got {delay!r}")
        self._flow_name = flow_name
        self._counters = tuple(counters)
        self._delay = float(delay)
        self._console = console
        self._live: Live | None = None
        self._stopped = False
        self._started_at = time.monotonic()
        self._sampled_at = self._started_at
        self._sampled_in = [c.events_in for c in self._counters]
        self._rates = [0.0] * len(self._counters)

    @property
    def showing(self) -> bool:
        """True once the display has started (after ``delay``), until ``stop``."""
        return self._live is not None and not self._stopped

    def refresh(self) -> None:
        """Sample the counters and redraw; starts the display once ``delay`` has passed."""
        if self._stopped:
            return
        now = time.monotonic()
        self._sample(now)
        if self._live is None:
            if now - self._started_at < self._delay:
                return
            self._live = self._start()
        self._live.update(self._render(now, status=None), refresh=True)

    def stop(self, status: str | None = None) -> None:
        """Draw the final frame (with ``status``, e.g. ``"succeeded"``, if given) and stop
        the display. Does nothing if the display never started; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._live is None:
            return
        now = time.monotonic()
        try:
            self._live.update(self._render(now, status=status or "stopped"), refresh=True)
        finally:
            self._live.stop()

    # -- internals ------------------------------------------------------------------------

    def _sample(self, now: float) -> None:
        interval = now - self._sampled_at
        if interval < _MIN_SAMPLE_SECONDS:
            return
        for index, counters in enumerate(self._counters):
            seen = _seen(counters)
            self._rates[index] = (seen - self._sampled_in[index]) / interval
            self._sampled_in[index] = seen
        self._sampled_at = now

    def _start(self) -> Live:
        from rich.live import Live

        # The engine drives refreshes, so no refresh thread; prints from user code (a
        # ``sink(print)``) are redirected above the display instead of tearing it.
        live = Live(console=self._console, auto_refresh=False, transient=False)
        live.start()
        return live

    def _render(self, now: float, *, status: str | None) -> RenderableType:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        elapsed = now - self._started_at
        if status is None:
            header: RenderableType = Spinner(
                "dots",
                Text.from_markup(
                    f"flow [bold]{_escape(self._flow_name)}[/] running "
                    f"[dim]{_clock(elapsed)}[/]"
                ),
                style="cyan",
            )
        else:
            mark, style = _STATUS_STYLES.get(status.lower(), ("[yellow]■[/]", "yellow"))
            header = Text.from_markup(
                f"{mark} flow [bold]{_escape(self._flow_name)}[/] "
                f"[{style}]{_escape(status.lower())}[/] in {elapsed:.2f}s"
            )
        table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 2), header_style="dim")
        table.add_column("stage", no_wrap=True, overflow="ellipsis", max_width=40)
        table.add_column("kind", no_wrap=True)
        for title in ("in", "out", "errors", "events/s"):
            table.add_column(title, justify="right", no_wrap=True)
        for index, counters in enumerate(self._counters):
            rate = _seen(counters) / elapsed if status and elapsed > 0 else self._rates[index]
            errors = f"[red]{counters.errors:,}[/]" if counters.errors else "0"
            table.add_row(
                Text(counters.name),
                Text(counters.kind),
                f"{counters.events_in:,}",
                f"{counters.events_out:,}",
                errors,
                f"{rate:,.0f}",
            )
        return Group(header, table)


def _seen(counters: StageCounters) -> int:
    """The events a stage's rate counts: its input, or for a source (which has none) what
    it read."""
    return counters.events_out if counters.kind == "source" else counters.events_in


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
