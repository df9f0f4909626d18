"""The examples: run as scripts (as ``make demo`` does) and as flows under ``run_flow``."""

from __future__ import annotations

import ast
import collections
import importlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import riverbed as rb
from riverbed.testing import run_flow

Example = Callable[[str], ModuleType]
"""Imports ``examples.NAME`` and returns it."""

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONIOENCODING": "utf-8"}

ALERT = re.compile(
    r"^(?P<machine>machine-\d+)\s+#(?P<seq>\d+)\s+(?P<celsius>-?\d+\.\d) °C\s+"
    r"(?:starts (?P<first>[A-Z]+)|(?P<before>[A-Z]+) -> (?P<after>[A-Z]+))$"
)
RANK = re.compile(r"^\s*(?P<rank>\d+)\. (?P<word>\S+)\s+(?P<count>\d+)$")


def _script(name: str, *args: str) -> list[str]:
    """Run ``examples/NAME.py`` as ``make demo`` does; return its stdout lines."""
    done = subprocess.run(
        [sys.executable, f"examples/{name}.py", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Example:
    """Imports ``examples.NAME`` from the repository root, as the CLI does for ``NAME:flow``."""
    monkeypatch.syspath_prepend(str(ROOT))
    return lambda name: importlib.import_module(f"examples.{name}")


# -- temperature monitor --------------------------------------------------------------------


def _expected_alerts(module: ModuleType) -> list[tuple[str, int, str | None, str]]:
    """The status changes of the default readings, by a plain loop over the same functions."""
    last: dict[str, str] = {}
    changes = []
    for reading in module.machine_readings():
        status = module.categorise(reading).status.value
        if last.get(reading.machine) != status:
            changes.append((reading.machine, reading.seq, last.get(reading.machine), status))
        last[reading.machine] = status
    return changes


def test_temperature_monitor_script_prints_only_status_changes(example: Example) -> None:
    """The demo prints one alert per status change of each machine, and nothing else per event."""
    module = example("temperature_monitor")
    lines = _script("temperature_monitor")
    alerts = [match for line in lines if (match := ALERT.match(line))]
    assert len(alerts) >= 10
    last: dict[str, str] = {}
    for alert in alerts:
        machine = alert["machine"]
        status = alert["first"] or alert["after"]
        if machine in last:
            assert alert["first"] is None, f"{machine} started twice"
            assert alert["before"] == last[machine] != status
        else:
            assert alert["first"] is not None, f"{machine}'s first alert is no start"
        celsius = float(alert["celsius"])
        if status == "HOT":
            assert celsius > module.HOT_ABOVE
        elif status == "COLD":
            assert celsius < module.COLD_BELOW
        else:
            assert module.COLD_BELOW <= celsius <= module.HOT_ABOVE
        last[machine] = status
    assert len(last) == module.MACHINES
    assert {"HOT", "COLD"} <= {a["after"] for a in alerts}
    printed = [(a["machine"], int(a["seq"]), a["before"], a["first"] or a["after"]) for a in alerts]
    assert printed == _expected_alerts(module)


def test_temperature_monitor_script_output_is_short_and_ends_with_summary() -> None:
    """The demo's output fits a screen and ends with a SUCCEEDED run summary."""
    lines = _script("temperature_monitor")
    assert len(lines) <= 50
    summary = next(n for n, line in enumerate(lines) if line.startswith("run "))
    assert "'temperature-monitor': SUCCEEDED" in lines[summary]
    alert_lines = [n for n, line in enumerate(lines) if ALERT.match(line)]
    assert max(alert_lines) < summary
    alerts = len(alert_lines)
    sink_row = next(line for line in lines if line.split()[:1] == ["print_alert"])
    assert int(sink_row.split()[1]) == alerts


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
def test_temperature_monitor_forever_stops_cleanly_on_ctrl_c() -> None:
    """``--forever`` streams until SIGINT, then drains and prints a CANCELLED summary."""
    process = subprocess.Popen(
        [sys.executable, "examples/temperature_monitor.py", "--forever", "--rate", "500"],
        cwd=ROOT,
        env={**ENV, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )
    try:
        assert process.stdout is not None
        seen = []
        deadline = time.monotonic() + 30
        while len(seen) < 6 and time.monotonic() < deadline:  # the run is going
            line = process.stdout.readline()
            if ALERT.match(line.rstrip("\n")):
                seen.append(line)
        assert len(seen) == 6
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "'temperature-monitor': CANCELLED" in out
    assert "stopped with sources at readings[0]=" in out


def test_change_detector_emits_only_on_changes(example: Example) -> None:
    """Under run_flow, the flow emits each machine's first status, then only its changes."""
    module = example("temperature_monitor")
    reading = module.Reading
    readings = [
        reading("a", 1, 70.0),
        reading("b", 1, 60.0),
        reading("a", 2, 71.0),
        reading("b", 2, 61.0),
        reading("a", 3, 80.0),
        reading("b", 3, 62.0),
        reading("a", 4, 81.0),
        reading("b", 4, 70.0),
        reading("a", 5, 70.0),
        reading("a", 6, 60.0),
        reading("a", 7, 60.5),
    ]
    alerts = run_flow(module.flow, readings)["print_alert"]
    got = [
        (a.reading.machine, a.reading.seq, a.before and a.before.name, a.after.name) for a in alerts
    ]
    assert got == [
        ("a", 1, None, "NOMINAL"),
        ("b", 1, None, "COLD"),
        ("a", 3, "NOMINAL", "HOT"),
        ("b", 4, "COLD", "NOMINAL"),
        ("a", 5, "HOT", "NOMINAL"),
        ("a", 6, "NOMINAL", "COLD"),
    ]


def test_change_detector_is_a_plain_class(example: Example) -> None:
    """Called directly, the detector returns an alert on a change and None while it holds."""
    module = example("temperature_monitor")
    detector = module.ChangeDetector()
    hot = module.Observation(module.Reading("m", 1, 90.0), module.Status.HOT)
    assert detector.update(hot).after is module.Status.HOT
    assert detector.update(hot) is None


def test_temperature_monitor_flow_round_trips_through_json(example: Example) -> None:
    """The demo flow is all module-level functions: it serializes and builds back unchanged."""
    flow = example("temperature_monitor").flow
    again = rb.Flow.from_json(flow.to_json())
    assert again.version == flow.version
    assert [s.name for s in again.stages] == [s.name for s in flow.stages]


# -- word count -----------------------------------------------------------------------------


def _counter(path: Path) -> collections.Counter[str]:
    with open(path, encoding="utf-8") as file:
        return collections.Counter(re.findall(r"[a-z']+", file.read().lower()))


def _ranked(counts: collections.Counter[str], n: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:n]


def _printed_ranking(lines: list[str]) -> list[tuple[str, int]]:
    matches = [m for line in lines if (m := RANK.match(line))]
    assert [int(m["rank"]) for m in matches] == list(range(1, len(matches) + 1))
    return [(m["word"], int(m["count"])) for m in matches]


def test_word_count_script_prints_the_top_ten_of_the_sample() -> None:
    """The default run prints the sample's ten most frequent words, as a Counter counts them."""
    counts = _counter(EXAMPLES / "data" / "sample.txt")
    lines = _script("word_count")
    assert _printed_ranking(lines) == _ranked(counts, 10)
    assert f"{counts.total()} words, {len(counts)} different; the top 10:" in lines
    assert any("'word-count': SUCCEEDED" in line for line in lines)


def test_word_count_script_takes_a_path_and_top(tmp_path: Path) -> None:
    """A path argument and ``--top`` choose the file and how many words are printed."""
    text = tmp_path / "text.txt"
    text.write_text("Zebra apple zebra. Apple, APPLE; mango!\nit's it's mango apple\n", "utf-8")
    lines = _script("word_count", str(text), "--top", "3")
    assert _printed_ranking(lines) == [("apple", 4), ("it's", 2), ("mango", 2)]
    assert _printed_ranking(lines) == _ranked(_counter(text), 3)


def test_word_count_flow_counts_every_word(example: Example) -> None:
    """Under run_flow, the fold emits one (word, total) pair per distinct word at the end."""
    module = example("word_count")
    pairs = run_flow(module.flow, ["The cat saw the dog.\n", "THE DOG ran\n"])["top_words"]
    assert sorted(pairs) == [("cat", 1), ("dog", 2), ("ran", 1), ("saw", 1), ("the", 3)]


def test_word_count_build_reads_the_given_file(example: Example, tmp_path: Path) -> None:
    """``build(path)`` makes a flow over that file; its counts equal a Counter's."""
    module = example("word_count")
    sample = EXAMPLES / "data" / "sample.txt"
    text = tmp_path / "copy.txt"
    text.write_text(sample.read_text("utf-8") * 3, "utf-8")
    pairs = run_flow(module.build(text))["top_words"]
    assert dict(pairs) == _counter(text)
    assert len(pairs) == len(dict(pairs))


# -- clickstream ----------------------------------------------------------------------------


def test_clickstream_script_prints_visits_views_and_late_clicks() -> None:
    """The script prints the visits, the views per page and the late clicks, then the run."""
    lines = _script("clickstream", "--clicks", "3000", "--seed", "3")
    assert re.fullmatch(r"\d+ visits; the longest: \('\w+', [\d.]+, \d+\)", lines[0])
    assert lines[1].startswith("views per page: {'cart': ")
    assert re.fullmatch(r"\d+ clicks came too late to count", lines[2])
    assert any("SUCCEEDED" in line for line in lines)


def test_clickstream_counts_every_click_once_per_window_kind(example: Example) -> None:
    """Every click is in one visit and one page-view window, or comes out late: nothing is
    lost or counted twice, and the same seed gives the same output."""
    module = example("clickstream")
    out = run_flow(module.build(5000, seed=11))["report"]
    kinds = collections.Counter(kind for kind, _ in out)
    clicks_in_visits = sum(payload[2] for kind, payload in out if kind == "visit")
    views = sum(payload[1] for kind, payload in out if kind == "views")
    assert clicks_in_visits + views + kinds["late"] == 2 * 5000
    assert kinds["late"] > 0
    assert run_flow(module.build(5000, seed=11))["report"] == out


def test_clickstream_visits_are_the_sessions_of_each_user(example: Example) -> None:
    """With clicks in time order (nothing late), the visits equal each user's clicks split
    where two are 30 minutes or more apart."""
    module = example("clickstream")
    ordered = sorted(module.clicks(3000, 5), key=module.time_of)
    flow = module.build()
    out = run_flow(flow, {"clicks": ordered})["report"]
    visits = sorted((p[0], p[2]) for kind, p in out if kind == "visit")
    expected = []
    for user in module.USERS:
        times = [c["t"] for c in ordered if c["user"] == user]
        run = 1
        for before, after in itertools.pairwise(times):
            if after - before >= module.GAP:
                expected.append((user, run))
                run = 0
            run += 1
        if times:
            expected.append((user, run))
    assert visits == sorted(expected)


# -- order workflow ---------------------------------------------------------------------------


def test_order_workflow_script_fails_then_resumes() -> None:
    """The script's run stops FAILED at the payment step with two steps recorded; the
    resume replays those two and runs only the last two."""
    lines = _script("order_workflow")
    assert lines[0] == (
        "order 17: FAILED at charge_payment: ConnectionError: payment service unavailable"
    )
    assert lines[1] == "  recorded steps: validate, reserve_stock"
    assert [line.split()[1:] for line in lines[3:7]] == [
        ["validate", "replayed", "from", "the", "store"],
        ["reserve_stock", "replayed", "from", "the", "store"],
        ["charge_payment", "ran"],
        ["ship", "ran"],
    ]
    assert lines[7] == (
        "order 17: SUCCEEDED, total 37.75, PAY-17-37.75, shipped as TRK-17 (attempt 2)"
    )


def test_order_workflow_resume_calls_only_the_steps_left(example: Example, tmp_path: Path) -> None:
    """Under rb.run on a SQLite store: a failed charge, then a resume that calls charge
    and ship once each and never validate or reserve again."""
    module = example("order_workflow")
    order = {"id": "9", "lines": [("grinder", 1)]}
    with rb.open_store(f"sqlite:///{tmp_path}/orders.db") as store:
        module.PAYMENTS.up = False
        failed = rb.run(module.flow, order, store=store)
        assert failed.status is rb.RunStatus.FAILED
        module.PAYMENTS.up = True
        module.CALLS.clear()
        done = rb.run(module.flow, store=store, resume=failed.run_id)
    assert module.CALLS == ["charge_payment", "ship"]
    assert done.output["tracking"] == "TRK-9"
    assert done.output["total"] == 89.0


def test_order_workflow_refuses_unknown_items(example: Example) -> None:
    """A validation error fails the run at its first step, without a store."""
    module = example("order_workflow")
    result = rb.run(module.flow, {"id": "1", "lines": [("tea", 1)]}, store=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert result.error.stage == "validate"
    assert "unknown items ['tea']" in result.error.message


# -- all ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["temperature_monitor", "word_count", "clickstream", "order_workflow"]
)
def test_example_user_code_does_not_import_riverbed(name: str) -> None:
    """Only the wiring at the bottom of an example uses riverbed; its functions are plain."""
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text("utf-8"))
    imports = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            (alias.name if isinstance(node, ast.Import) else node.module or "").startswith(
                "riverbed"
            )
            for alias in node.names
        )
    ]
    assert len(imports) == 1
    wiring = {"build", "main"}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name not in wiring:
            assert node.lineno < imports[0], f"{node.name} is defined after riverbed's import"
