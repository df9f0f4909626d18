"""The live progress display of the local runner (riverbed._runtime.progress)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import types

import pytest
from rich.console import Console

from riverbed._runtime import progress
from riverbed._runtime.progress import LiveProgress, wants_progress
from riverbed._runtime.result import StageCounters

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeClock:
    """Stands in for ``time`` in the progress module: time moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


@pytest.fixture
def screen() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=120), buffer


def make_counters() -> list[StageCounters]:
    source, double, sink = (
        StageCounters("numbers", "source"),
        StageCounters("double", "map"),
        StageCounters("collect", "sink"),
    )
    return [source, double, sink]


def plain(buffer: io.StringIO) -> str:
    return _ANSI.sub("", buffer.getvalue())


def test_auto_is_off_for_a_stream_that_is_not_a_terminal() -> None:
    """progress=None shows nothing when the stream is not a TTY (a file, a pipe)."""
    assert wants_progress(None, io.StringIO()) is False


def test_auto_is_on_for_a_terminal() -> None:
    """progress=None shows the display when the stream is a TTY."""
    assert wants_progress(None, FakeTerminal()) is True


def test_auto_defaults_to_sys_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a stream, auto mode asks sys.stdout whether it is a terminal."""
    monkeypatch.setattr(sys, "stdout", FakeTerminal())
    assert wants_progress(None) is True
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert wants_progress(None) is False


def test_true_and_false_force_the_choice() -> None:
    """progress=True/False win over what the stream is."""
    assert wants_progress(True, io.StringIO()) is True
    assert wants_progress(False, FakeTerminal()) is False


def test_a_closed_stream_is_not_a_terminal() -> None:
    """A closed stdout (isatty raises ValueError) means no display rather than a crash."""
    stream = io.StringIO()
    stream.close()
    assert wants_progress(None, stream) is False


def test_progress_must_be_a_bool_or_none() -> None:
    """A value like "yes" is a TypeError naming the accepted values, not silently truthy."""
    with pytest.raises(TypeError, match="True, False or None"):
        wants_progress("yes", io.StringIO())  # type: ignore[arg-type]


def test_nothing_shows_before_the_delay(
    clock: FakeClock, screen: tuple[Console, io.StringIO]
) -> None:
    """Refreshes within `delay` seconds print nothing, and a run that stops then never shows."""
    console, buffer = screen
    counters = make_counters()
    display = LiveProgress("doubles", counters, delay=1.0, console=console)
    for _ in range(3):
        clock.now += 0.25
        counters[0].events_out += 10
        display.refresh()
    display.stop("succeeded")
    assert buffer.getvalue() == ""
    assert not display.showing


def test_stage_lines_show_after_the_delay(
    clock: FakeClock, screen: tuple[Console, io.StringIO]
) -> None:
    """After `delay`, a refresh draws the flow name and one line per stage with its counters."""
    console, buffer = screen
    counters = make_counters()
    display = LiveProgress("doubles", counters, delay=1.0, console=console)
    clock.now += 1.5
    counters[0].events_out = 1200
    counters[1].events_in, counters[1].events_out, counters[1].errors = 1200, 1190, 10
    display.refresh()
    try:
        assert display.showing
        text = plain(buffer)
        assert "flow doubles running 0:00:01" in text
        assert re.search(r"stage\s+kind\s+in\s+out\s+errors\s+events/s", text)
        assert re.search(r"numbers\s+source\s+0\s+1,200\s+0\s+800\b", text)
        assert re.search(r"double\s+map\s+1,200\s+1,190\s+10\s+800\b", text)
        assert re.search(r"collect\s+sink\s+0\s+0\s+0\s+0", text)
    finally:
        display.stop()


def test_rate_is_over_the_last_refresh_interval(
    clock: FakeClock, screen: tuple[Console, io.StringIO]
) -> None:
    """events/s is the events in since the previous refresh over the seconds between them."""
    console, buffer = screen
    counters = [StageCounters("double", "map")]
    display = LiveProgress("doubles", counters, delay=0.0, console=console)
    clock.now += 1.0
    counters[0].events_in = 100
    display.refresh()
    clock.now += 0.5
    counters[0].events_in = 400
    display.refresh()
    try:
        last_frame = plain(buffer).rsplit("running", 1)[1]
        assert re.search(r"double\s+map\s+400\s+0\s+0\s+600\b", last_frame)
    finally:
        display.stop()


def test_stop_draws_a_final_frame_with_the_status_and_mean_rate(
    clock: FakeClock, screen: tuple[Console, io.StringIO]
) -> None:
    """stop(status) shows the status, the run time and each stage's mean rate over the run."""
    console, buffer = screen
    counters = [StageCounters("double", "map")]
    display = LiveProgress("doubles", counters, delay=0.0, console=console)
    clock.now += 1.0
    counters[0].events_in = 1000
    display.refresh()
    clock.now += 3.0
    counters[0].events_in = 2000
    display.stop("succeeded")
    final = plain(buffer).rsplit("✔", 1)[1]
    assert "flow doubles succeeded in 4.00s" in final
    assert re.search(r"double\s+map\s+2,000\s+0\s+0\s+500\b", final)
    assert not display.showing


def test_stop_is_idempotent_and_ends_refreshes(
    clock: FakeClock, screen: tuple[Console, io.StringIO]
) -> None:
    """A second stop() and any later refresh() print nothing more."""
    console, buffer = screen
    display = LiveProgress("doubles", make_counters(), delay=0.0, console=console)
    display.refresh()
    display.stop("failed")
    shown = buffer.getvalue()
    display.stop("succeeded")
    clock.now += 1.0
    display.refresh()
    assert buffer.getvalue() == shown
    assert "flow doubles failed" in plain(buffer)


def test_prints_go_above_the_display_and_streams_come_back(
    clock: FakeClock, screen: tuple[Console, io.StringIO]
) -> None:
    """What user code prints while the display shows comes out above the next frame, in
    order, and sys.stdout/sys.stderr are the original streams again after stop()."""
    console, buffer = screen
    stdout, stderr = sys.stdout, sys.stderr
    display = LiveProgress("doubles", make_counters(), delay=0.0, console=console)
    display.refresh()
    try:
        assert sys.stdout is not stdout
        print("event 1")
        print("event 2", file=sys.stderr)
        print("unfinished", end="")
        assert "event 1" not in buffer.getvalue()  # held until the next refresh
        clock.now += 0.25
        display.refresh()
        text = plain(buffer)
        assert text.index("event 1\nevent 2\n") < text.rindex("flow doubles running")
        assert "unfinished" not in text  # a partial line waits for its newline
    finally:
        display.stop("succeeded")
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    text = plain(buffer)
    assert text.index("unfinished\n") < text.rindex("flow doubles succeeded")


def test_display_off_a_terminal_leaves_streams_alone(clock: FakeClock) -> None:
    """Forced progress on a non-terminal console draws only the final frame, no redirect."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=120)
    stdout = sys.stdout
    display = LiveProgress("doubles", make_counters(), delay=0.0, console=console)
    display.refresh()
    assert sys.stdout is stdout
    display.stop("succeeded")
    assert plain(buffer).count("flow doubles") == 1


def test_long_stage_names_are_cut_to_keep_one_line_each(
    clock: FakeClock, screen: tuple[Console, io.StringIO]
) -> None:
    """A stage name past 32 characters is shortened with an ellipsis, so lines never wrap."""
    console, buffer = screen
    counters = [StageCounters("a" * 50, "map")]
    display = LiveProgress("doubles", counters, delay=0.0, console=console)
    display.refresh()
    display.stop("succeeded")
    assert "a" * 31 + "…" in plain(buffer)
    assert "a" * 32 not in plain(buffer)


def test_delay_must_be_non_negative() -> None:
    """A negative delay is a ValueError naming the value."""
    with pytest.raises(ValueError, match="-1"):
        LiveProgress("doubles", [], delay=-1)


def test_importing_progress_does_not_import_rich() -> None:
    """rich is imported only when a display starts, keeping `import riverbed` light."""
    code = "import sys, riverbed, riverbed._runtime.progress; print('rich' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_a_display_never_stopped_gives_the_streams_back_at_exit() -> None:
    """If a runner never calls stop(), the process's exit does: held prints come out and
    the final frame is drawn instead of being lost."""
    code = (
        "import sys\n"
        "from rich.console import Console\n"
        "from riverbed._runtime.progress import LiveProgress\n"
        "from riverbed._runtime.result import StageCounters\n"
        "console = Console(file=sys.stderr, force_terminal=True, width=100)\n"
        "display = LiveProgress('orphan', [StageCounters('s', 'map')], delay=0, console=console)\n"
        "display.refresh()\n"
        "print('held line')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    shown = _ANSI.sub("", done.stderr)
    assert shown.index("held line") < shown.index("flow orphan stopped")
