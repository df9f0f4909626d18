"""What operators drop by their own rules (late events of a window, rendezvous orphans
evicted) is counted where people look: the stage's counters in the result, the stored
stage record, and `riverbed runs show` (before, it was only inside checkpoint state)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import riverbed as rb
from riverbed.testing import Capture
from tests import runners

pytestmark = pytest.mark.usefixtures("on_runner")

ROOT = Path(__file__).resolve().parents[2]


def time_of(event: tuple[str, float]) -> float:
    return event[1]


def sensor(event: tuple[str, float]) -> str:
    return event[0]


def test_late_events_dropped_by_a_window_are_counted(tmp_path: Path) -> None:
    """Two events arrive after their window closed (late=DROP): the window stage counts
    2 dropped, in the result, in the store, and in `runs show`."""
    events = [("a", 0.5), ("a", 1.5), ("a", 5.0), ("a", 0.7), ("a", 1.2), ("a", 6.0)]
    flow = rb.Flow("late-counts")
    flow.source(events, name="readings").key_by(sensor).window(
        rb.Tumbling(1.0), rb.Count(), event_time=time_of, name="per_second"
    ).sink(Capture(), name="out")
    url = f"sqlite:///{tmp_path}/runs.db"
    result = flow.run(store=url, progress=False)
    assert result.stages["per_second"].dropped == 2
    assert "dropped" in result.summary()
    with rb.open_store(url) as store:
        [stage] = [s for s in store.stage_runs(result.run_id) if s.stage == "per_second"]
    assert stage.dropped == 2
    shown = subprocess.run(
        [sys.executable, "-m", "riverbed", "runs", "show", result.run_id, "--store", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [line] = [line for line in shown.splitlines() if line.strip().startswith("per_second")]
    assert line.split()[-1] == "2"


@runners.source_order
def test_orphans_evicted_by_a_rendezvous_are_counted() -> None:
    """MaxPending(1): each head that waits while a newer key arrives is evicted; the
    rendezvous counts them as dropped."""
    flow = rb.Flow("orphans")
    heads = flow.source([1, 2, 3, 3], name="heads").key_by(lambda x: x, name="head_key")
    tails = flow.source([3], name="tails").key_by(lambda x: x, name="tail_key")
    heads.rendezvous(tails, orphans=rb.MaxPending(1), name="meet").sink(Capture(), name="out")
    result = flow.run(store=False, progress=False)
    assert result.stages["meet"].dropped >= 2
    assert result.stages["out"].events_in >= 1
