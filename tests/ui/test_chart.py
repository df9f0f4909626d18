"""The dashboard's throughput samples, rates and chart, and its graph's layout."""

from __future__ import annotations

import re

from riverbed._serve.ui import chart
from riverbed._serve.ui.graph import flow_graph_svg


def test_rates_over_the_window() -> None:
    """A stage's rate is its events over the samples of the last WINDOW seconds."""
    samples = [
        chart.Sample(100.0, 0, {"a": 0}),
        chart.Sample(101.0, 50, {"a": 50}),
        chart.Sample(104.0, 200, {"a": 200}),
    ]
    assert chart.rates(samples) == {"a": 50.0}
    later = [*samples, chart.Sample(110.0, 200, {"a": 200})]
    assert chart.rates(later) == {}  # nothing within the window before the last sample
    assert chart.rates(samples[:1]) == {}


def test_samples_keep_the_runs_watched_last() -> None:
    """Samples are kept for the RUNS runs watched most recently, KEEP samples each."""
    kept = chart.Samples()
    for n in range(chart.RUNS + 5):
        kept.add(f"run{n}", n, {})
    kept.add("run0", 1, {})  # gone, then back: a new history
    assert len(kept.of("run0")) == 1
    assert kept.of("run1") == []
    for _ in range(chart.KEEP + 10):
        kept.add("busy", 1, {})
    assert len(kept.of("busy")) == chart.KEEP


def test_chart_plots_one_point_per_sample_with_a_window() -> None:
    """The chart draws one point per sample that has an earlier one within the window,
    scaled to the highest rate, which it labels."""
    samples = [chart.Sample(float(t), t * 100, {}) for t in range(6)]
    svg = chart.throughput_svg(samples)
    points = re.search(r'points="([^"]+)"', svg)
    assert points is not None
    assert len(points.group(1).split()) == 5
    assert ">100<" in svg
    assert "No throughput" in chart.throughput_svg(samples[:1])


def test_graph_columns_follow_depth_and_names_are_escaped() -> None:
    """Each stage sits one column right of its deepest input; an edge per input; names
    are escaped."""
    stages = [
        {"name": "src", "kind": "source"},
        {"name": "<b>", "kind": "map", "inputs": [["src", "out"]]},
        {"name": "sink", "kind": "sink", "inputs": [["<b>", "out"], ["src", "out"]]},
    ]
    svg = flow_graph_svg(stages, {"src": (0, 3)})
    xs = [int(x) for x in re.findall(r'<rect x="(\d+)"', svg)]
    assert xs[0] < xs[1] < xs[2]
    assert svg.count('class="edge"') == 3
    assert "&lt;b&gt;" in svg
    assert "<b>" not in svg
    assert ">3</tspan>" in svg
