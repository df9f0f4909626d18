"""The live progress display of a run: one line of counters per stage, on a terminal.

It is an observer of the run (``ProgressObserver``), told the live counters about four
times a second and the end once; it builds a ``LiveProgress`` over the counters, calls its
``refresh()``, and ``stop()`` when the run ends (while the display shows, it holds
``sys.stdout`` and ``sys.stderr``).
Nothing shows until ``delay`` seconds have passed, so short runs print nothing. Rich is
imported only when the display starts, which keeps ``import riverbed`` light.

What user code prints while the display shows (a ``sink(print)``) is held and written above
the display, raw, at the next refresh. Rich's own redirection would redraw the display on
every printed line, about 4 ms each: a thousand times the cost of the print.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from riverbed._records import StageKind
from riverbed._runtime.observer import RunObserver
from riverbed._runtime.result import RunResult, StageCounters

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions
    from rich.live import Live
    from rich.segment import Segment
    from rich.text import Text

__all__ = ["LiveProgress", "ProgressObserver", "wants_progress"]

# A refresh that follows the previous sample sooner than this (the final one from ``stop``)
# keeps the events/s already shown rather than divide by a tiny interval.
_MIN_SAMPLE_SECONDS = 0.05
# Held writes past this many are written out at once, without waiting for the next refresh.
_MAX_HELD_WRITES = 10_000
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_NAME_WIDTH = (5, 32)  # narrowest and widest stage-name column
_STATUS_MARKS = {"succeeded": ("✔", "green"), "failed": ("✘", "red")}


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


class ProgressObserver(RunObserver):
    """Shows a run's live progress (``LiveProgress``) from the counters it is told."""

    counters_every = 0.25

    def __init__(self, flow_name: str) -> None:
        self.flow_name = flow_name
        self.display: LiveProgress | None = None

    def counters(self, stages: Mapping[str, StageCounters]) -> None:
        if self.display is None:
            self.display = LiveProgress(self.flow_name, list(stages.values()))
        self.display.refresh()

    def ended(self, result: RunResult) -> None:
        if self.display is not None:
            self.display.stop(result.status.value)


class LiveProgress:
    """A Rich live display of a run's stage counters, driven by the engine.

    ``counters`` are read, never written. Each line shows a stage's name, kind, events in,
    events out, errors, and its rate in events/s over the last refresh interval (events in;
    for a source, which has no input, events out). The header shows a spinner, the flow's
    name and the time since this object was made. The final frame, drawn by ``stop``,
    shows the status and each stage's mean rate over the whole run.
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
        self._shown: tuple[Live, _HeldOutput] | None = None  # once the display started
        self._stopped = False
        self._started_at = time.monotonic()
        self._sampled_at = self._started_at
        self._sampled = [_seen(c) for c in self._counters]
        self._rates = [0.0] * len(self._counters)

    @property
    def showing(self) -> bool:
        """True from the moment the display starts (after ``delay``) until ``stop``."""
        return self._shown is not None and not self._stopped

    def refresh(self) -> None:
        """Sample the counters and redraw; starts the display once ``delay`` has passed."""
        if self._stopped:
            return
        now = time.monotonic()
        self._sample(now)
        if self._shown is None:
            if now - self._started_at < self._delay:
                return
            self._shown = self._start()
        live, held = self._shown
        held.write_out()
        live.update(self._frame(now, status=None), refresh=True)

    def stop(self, status: str | None = None) -> None:
        """Draw the final frame (with ``status``, e.g. ``"succeeded"``, if given), stop the
        display and give back ``sys.stdout``/``sys.stderr``. Does nothing if the display
        never started; safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        if self._shown is None:
            return
        atexit.unregister(self.stop)
        live, held = self._shown
        try:
            held.release()
            live.update(self._frame(time.monotonic(), status=status or "stopped"))
        finally:
            live.stop()  # draws the final frame

    # -- internals ------------------------------------------------------------------------

    def _start(self) -> tuple[Live, _HeldOutput]:
        from rich.live import Live

        # No refresh thread (the engine drives refreshes) and no Rich redirection of
        # stdout/stderr (see the module docstring): ``_HeldOutput`` does that cheaply.
        live = Live(
            console=self._console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        live.start()
        # A runner that never calls stop() must not keep the streams, and what they hold,
        # past the end of the process.
        atexit.register(self.stop)
        return live, _HeldOutput(live.console)

    def _sample(self, now: float) -> None:
        interval = now - self._sampled_at
        if interval < _MIN_SAMPLE_SECONDS:
            return
        for index, counters in enumerate(self._counters):
            seen = _seen(counters)
            self._rates[index] = (seen - self._sampled[index]) / interval
            self._sampled[index] = seen
        self._sampled_at = now

    def _frame(self, now: float, *, status: str | None) -> Text:
        """The display as one ``Text``: a frame of plain lines renders in well under a
        millisecond, where a Rich ``Table`` of a few stages takes several."""
        from rich.text import Text

        elapsed = now - self._started_at
        frame = Text()
        if status is None:
            frame.append(_SPINNER[int(elapsed * 10) % len(_SPINNER)], style="cyan")
            frame.append(" flow ").append(self._flow_name, style="bold").append(" running ")
            frame.append(_clock(elapsed), style="dim")
        else:
            mark, style = _STATUS_MARKS.get(status.lower(), ("■", "yellow"))
            frame.append(mark, style=style).append(" flow ")
            frame.append(self._flow_name, style="bold").append(" ")
            frame.append(status.lower(), style=style).append(f" in {elapsed:.2f}s")
        longest = max((len(c.name) for c in self._counters), default=0)
        width = min(max(longest, _NAME_WIDTH[0]), _NAME_WIDTH[1])
        frame.append(
            f"\n  {'stage':<{width}}  {'kind':<8} {'in':>13} {'out':>13} {'errors':>8} "
            f"{'events/s':>11}",
            style="dim",
        )
        for index, counters in enumerate(self._counters):
            if status is not None:
                rate = _seen(counters) / elapsed if elapsed > 0 else 0.0
            else:
                rate = self._rates[index]
            name = counters.name
            if len(name) > width:
                name = name[: width - 1] + "…"
            frame.append(
                f"\n  {name:<{width}}  {counters.kind.value:<8} {counters.events_in:>13,} "
                f"{counters.events_out:>13,} "
            )
            frame.append(f"{counters.errors:>8,}", style="red" if counters.errors else None)
            frame.append(f" {rate:>11,.0f}")
        return frame


class _HeldOutput:
    """While the display shows on a terminal, ``sys.stdout`` and ``sys.stderr`` are
    stand-ins that queue what is written to them (in order, from any thread); ``write_out``
    writes it above the display in one piece. Elsewhere (a file, a pipe) the display draws
    only its final frame, so the streams are left alone."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._writes: deque[str] = deque()
        self._partial = ""  # an unfinished last line waits for its newline
        self._stdout = _HeldStream(sys.stdout, self)
        self._stderr = _HeldStream(sys.stderr, self)
        if console.is_terminal:
            sys.stdout, sys.stderr = self._stdout, self._stderr

    def hold(self, text: str) -> None:
        self._writes.append(text)
        if len(self._writes) > _MAX_HELD_WRITES:
            self.write_out()

    def write_out(self, *, everything: bool = False) -> None:
        """Write the complete lines held so far above the display (all of it, if told)."""
        parts = [self._partial]
        for _ in range(len(self._writes)):  # popleft is safe against writers in threads
            parts.append(self._writes.popleft())
        text = "".join(parts)
        cut = len(text) if everything else text.rfind("\n") + 1
        self._partial = text[cut:]
        if not cut:
            return
        if not text.endswith("\n", 0, cut):
            text = text[:cut] + "\n"  # the display must start on a line of its own
            cut += 1
        # soft_wrap: the text goes out as it is; Rich would otherwise split and measure it
        # line by line, in quadratic time.
        self._console.print(_Raw(text[:cut]), end="", soft_wrap=True)

    def release(self) -> None:
        """Give the real streams back (unless someone replaced ours since) and write out
        what is left, a last unfinished line included."""
        if sys.stdout is self._stdout:
            sys.stdout = self._stdout.stream
        if sys.stderr is self._stderr:
            sys.stderr = self._stderr.stream
        self.write_out(everything=True)


class _HeldStream:
    """The stand-in for one stream; everything but writing goes to the real one."""

    def __init__(self, stream: TextIO, held: _HeldOutput) -> None:
        self.stream = stream
        self._held = held

    @property
    def rich_proxied_file(self) -> TextIO:
        """The real stream: Rich consoles bound to ``sys.stdout`` write there, not here."""
        return self.stream

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._held.hold(text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Held text goes out at the next refresh; writing it now would redraw per line."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # isatty, encoding, fileno...


class _Raw:
    """Text for Rich to write as it is: user output may hold its own ANSI codes."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        from rich.segment import Segment

        yield Segment(self.text)


def _seen(counters: StageCounters) -> int:
    """The count a stage's rate is of: its input, or what a source (no input) read."""
    return counters.events_out if counters.kind is StageKind.SOURCE else counters.events_in


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
