"""Windows, joins and sampling across a failed run and its resume from a checkpoint: the
final results equal an uninterrupted run's, no event lost or counted twice."""

from __future__ import annotations

from typing import Any

import riverbed as rb
from riverbed.testing import Capture

FAIL_AT: set[int] = set()
"""Events that ``fragile`` fails on while they are in here."""


def fragile(value: int) -> int:
    """Fails on the values in FAIL_AT."""
    if value in FAIL_AT:
        raise RuntimeError(f"cannot take {value}")
    return value


def tens(value: int) -> int:
    """The key: the value's last digit."""
    return value % 10


def seconds(value: int) -> float:
    """Event time: the value itself, in seconds."""
    return float(value)


def _flow(windows: Capture, sampled: Capture) -> rb.Flow:
    flow = rb.Flow("resumable-operators")
    numbers = flow.source(list(range(1000)), name="numbers").map(fragile)
    numbers.key_by(tens).window(rb.Tumbling(50), rb.Collect(), event_time=seconds).sink(
        windows, name="windows"
    )
    numbers.sample(0.3, seed=11).reservoir(5, seed=3).sink(sampled, name="sampled")
    return flow


def _run(flow: rb.Flow, store: rb.Store, **options: Any) -> rb.RunResult:
    return flow.run(
        store=store,
        batch_size=25,
        progress=False,
        raise_on_failure=False,
        checkpoint_events=100,
        **options,
    )


def test_windows_and_samples_resume_exactly_once(store: rb.Store) -> None:
    """A run failing at event 777 and resumed after the fix ends with the same windows
    (the last result per key and window) and the same seeded sample as a run that never
    failed."""
    expected_windows, expected_sample = Capture(), Capture()
    assert _run(_flow(expected_windows, expected_sample), store).ok

    first_windows, first_sample = Capture(), Capture()
    FAIL_AT.add(777)
    try:
        failed = _run(_flow(first_windows, first_sample), store)
    finally:
        FAIL_AT.clear()
    assert failed.status is rb.RunStatus.FAILED
    windows, sample = Capture(), Capture()
    resumed = _run(_flow(windows, sample), store, resume=failed.run_id)
    assert resumed.ok

    def by_window(*captures: Capture) -> dict[Any, Any]:
        # Sinks are at-least-once: a window emitted before the failure but after the last
        # checkpoint comes again; the later result is the one that counts.
        return {(key, window): values for c in captures for key, (window, values) in c.items}

    assert by_window(first_windows, windows) == by_window(expected_windows)
    assert len(by_window(expected_windows)) == 10 * 20
    assert sample.items == expected_sample.items
