"""Reactive builders (``rb.Builder``, ``Flow.resolve``): the dependency graph from a target,
``*name`` expansion, combinations, clear errors, and ``persist=True`` replaying from the
store without calling the builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed.testing import run_flow
from tests import runners

CALLS: list[Any] = []


def numbers() -> Any:
    CALLS.append("numbers")
    yield from [1, 2, 2, 3]  # a duplicate: built once


def double(x: int) -> Any:
    CALLS.append(("double", x))
    yield x * 2


def pairs() -> Any:
    yield from [(1, "a"), (2, "b")]


def label(n: int, letter: str) -> Any:
    yield f"{letter}{n}"


def add(a: int, b: int) -> Any:
    yield a + b


def builders(persist: bool = False) -> list[rb.Builder]:
    return [
        rb.Builder("numbers", numbers),
        rb.Builder("doubles", double, requires=["numbers"], persist=persist),
        rb.Builder("pairs", pairs),
        rb.Builder("labels", label, requires=["*pairs"]),
        rb.Builder("sums", add, requires=["numbers", "doubles"]),
    ]


def test_resolve_builds_the_target_from_its_dependencies(on_runner: str) -> None:
    """Each needed builder becomes one stage, dependencies first; artifacts stream on."""
    flow = rb.Flow("reactive")
    streams = flow.resolve("doubles", builders())
    assert set(streams) == {"numbers", "doubles"}
    streams["doubles"].sink(print, name="out")
    assert "pairs" not in [stage.name for stage in flow.stages]  # not needed, not built
    assert run_flow(flow)["out"] == [2, 4, 6]


def test_star_requirements_spread_tuples_and_several_combine(on_runner: str) -> None:
    """``*pairs`` spreads each tuple artifact into arguments; two requirements give every
    combination of their artifacts; a target resolved twice is built once."""
    flow = rb.Flow("combinations")
    flow.resolve("labels", builders())["labels"].sink(print, name="labels_out")
    flow.resolve("sums", builders())["sums"].sink(print, name="sums_out")
    assert [s.name for s in flow.stages].count("numbers") == 1
    out = run_flow(flow)
    assert out["labels_out"] == ["a1", "b2"]
    assert sorted(out["sums_out"]) == sorted(n + 2 * m for n in (1, 2, 3) for m in (1, 2, 3))


def test_missing_providers_and_cycles_are_clear_errors() -> None:
    """A target no builder provides names who required it; a cycle is drawn."""
    flow = rb.Flow("broken")
    with pytest.raises(rb.FlowDefinitionError, match=r"no builder provides 'numbers'.*'doubles'"):
        flow.resolve("doubles", [rb.Builder("doubles", double, requires=["numbers"])])
    cycle = [
        rb.Builder("a", double, requires=["b"]),
        rb.Builder("b", double, requires=["a"]),
    ]
    with pytest.raises(rb.CycleError, match="a -> b -> a"):
        flow.resolve("a", cycle)
    with pytest.raises(rb.FlowDefinitionError, match="two builders provide"):
        flow.resolve("a", [rb.Builder("a", numbers), rb.Builder("a", pairs)])
    with pytest.raises(rb.FlowDefinitionError, match="list of target names"):
        rb.Builder("a", double, requires="numbers")  # type: ignore[arg-type]


@runners.shared_objects
def test_persisted_artifacts_replay_without_calling_the_builder(
    on_runner: str, tmp_path: Path
) -> None:
    """With persist=True and a store, a later run replays the builder's artifacts from the
    store: the builder is not called again, and the outputs are the same."""
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")
    flow = rb.Flow("persisted")
    flow.resolve("doubles", builders(persist=True))["doubles"].sink(print, name="out")
    CALLS.clear()
    first = run_flow(flow, store=store)["out"]
    assert [c for c in CALLS if c != "numbers"] == [("double", 1), ("double", 2), ("double", 3)]
    CALLS.clear()
    again = run_flow(flow, store=store)["out"]
    assert CALLS == ["numbers"]  # numbers is not persisted; doubles came from the store
    assert again == first == [2, 4, 6]


def test_apply_must_return_a_stream() -> None:
    """A builder's apply= that returns something else than a stream is named."""
    flow = rb.Flow("apply")
    bad = rb.Builder("bad", apply=lambda s: [1], requires=["numbers"])
    with pytest.raises(rb.FlowDefinitionError, match="apply= must return the stream"):
        flow.resolve("bad", [rb.Builder("numbers", numbers), bad])
