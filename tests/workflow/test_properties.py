"""Property: a workflow that fails at any step and is resumed gives what the plain Python
composition gives, and every step's function succeeds exactly once."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

import riverbed as rb
from tests.store.conftest import WITH_STORE

OPERATIONS = [
    ("add", lambda x: x + 3),
    ("mul", lambda x: x * 2),
    ("neg", lambda x: -x),
    ("sq", lambda x: x * x % 1009),
]


@WITH_STORE
@given(
    picks=st.lists(st.integers(0, len(OPERATIONS) - 1), min_size=1, max_size=8),
    failing=st.integers(0, 7),
    start=st.integers(-100, 100),
)
def test_fail_anywhere_then_resume_equals_the_composition(
    store: rb.Store, picks: list[int], failing: int, start: int
) -> None:
    """Steps before the failure are never called again; the output is the composition."""
    failing %= len(picks)
    succeeded: Counter[int] = Counter()
    broken = {failing}

    def step(index: int, operation: object) -> object:
        def call(x: int) -> int:
            if index in broken:
                raise RuntimeError(f"step {index} is broken")
            succeeded[index] += 1
            return operation(x)  # type: ignore[operator, no-any-return]

        return call

    flow = rb.Flow("property")
    stream = flow.input()
    expected = start
    for index, pick in enumerate(picks):
        name, operation = OPERATIONS[pick]
        stream = stream.map(step(index, operation), name=f"{name}{index}")
        expected = operation(expected)  # type: ignore[operator]
    stream.output()
    failed = rb.run(flow, start, store=store)
    assert failed.status is rb.RunStatus.FAILED
    assert len(failed.steps) == failing
    broken.clear()
    resumed = rb.run(flow, store=store, resume=failed.run_id)
    assert resumed.ok
    assert resumed.output == expected
    assert succeeded == Counter(range(len(picks)))
    assert len(resumed.replayed) == failing
