"""The step cache: ``cache=True`` stages in workflows and streams; event digests."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter

import pytest

import riverbed as rb
from riverbed._model.serialize import stage_version
from riverbed._runtime.cache import event_digest
from riverbed.testing import Capture

pytestmark = pytest.mark.usefixtures("on_runner")

CALLS: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    """Each test counts its own calls."""
    CALLS.clear()


def price_v1(order: dict[str, int]) -> int:
    """The first version of a priced step."""
    CALLS["price"] += 1
    return order["qty"] * 10


def price_v2(order: dict[str, int]) -> int:
    """Another body for the same stage name: a new stage version."""
    CALLS["price"] += 1
    return order["qty"] * 12


def tax(amount: int) -> int:
    """A cached step whose entries must outlive a change of ``price``."""
    CALLS["tax"] += 1
    return amount + amount // 10


def priced(price: object) -> rb.Flow:
    """input -> price (cached) -> tax (cached) -> output."""
    flow = rb.Flow("priced")
    flow.input().map(price, name="price", cache=True).map(tax, cache=True).output()
    return flow


def test_a_second_run_does_not_call_a_cached_step(store: rb.Store) -> None:
    """Another run on an equal input takes the cached outputs, without calling."""
    first = rb.run(priced(price_v1), {"qty": 3}, store=store)
    second = rb.run(priced(price_v1), {"qty": 3}, store=store)
    assert first.output == second.output == 33
    assert Counter({"price": 1, "tax": 1}) == CALLS
    assert len(second.steps) == 2  # cached steps are still steps of the run


def test_a_different_input_is_computed(store: rb.Store) -> None:
    """The cache is keyed by the input: another input calls the function."""
    rb.run(priced(price_v1), {"qty": 3}, store=store)
    assert rb.run(priced(price_v1), {"qty": 4}, store=store).output == 44
    assert Counter({"price": 2, "tax": 2}) == CALLS


def test_a_changed_body_recomputes_its_stage_only(store: rb.Store) -> None:
    """A new function body is a new stage version: that stage recomputes; the next stage
    keeps its entries for the inputs it has seen, and the old version's entries stay."""
    rb.run(priced(price_v1), {"qty": 10}, store=store)  # price 100, tax 110
    old = stage_version(priced(price_v1).stage("price"))
    new = stage_version(priced(price_v2).stage("price"))
    assert old != new
    assert rb.run(priced(price_v2), {"qty": 10}, store=store).output == 132
    assert Counter({"price": 2, "tax": 2}) == CALLS  # tax(120) is a new input
    digest = event_digest({"qty": 10})
    assert digest is not None
    assert store.cache_get("price", old, digest) is not None
    assert store.cache_get("price", new, digest) is not None
    CALLS.clear()
    assert rb.run(priced(price_v1), {"qty": 10}, store=store).output == 110
    assert not CALLS


def test_cache_true_changes_the_stage_version_only_when_set() -> None:
    """cache=True is part of the stage's version; a stage without it keeps its version."""
    plain = rb.Flow("a")
    plain.input().map(tax).output()
    cached = rb.Flow("b")
    cached.input().map(tax, cache=True).output()
    assert stage_version(plain.stage("tax")) != stage_version(cached.stage("tax"))
    assert '"cache":' not in rb.Flow.from_json(plain.to_json()).to_json()


def test_cache_applies_to_pure_operators_only() -> None:
    """cache=True on a sink (or inspect, stateful...) is refused, naming the operators."""
    flow = rb.Flow("bad-cache")
    with pytest.raises(rb.FlowDefinitionError, match=r"cache=True.*map"):
        flow.input().sink(print, cache=True)
    with pytest.raises(TypeError, match="True or False"):
        flow.input(name="in2").map(tax, cache="yes")


def test_a_streaming_run_uses_the_cache(store_url: str) -> None:
    """In a streaming run with a store, a cached stage is looked up per event: a second
    run over the same events calls nothing, and gives the same outputs."""

    def build() -> tuple[rb.Flow, Capture]:
        seen = Capture()
        flow = rb.Flow("stream-cache")
        flow.source([1, 2, 3, 2]).map(tax, cache=True).sink(seen)
        return flow, seen

    with rb.open_store(store_url) as store:
        flow, seen = build()
        flow.run(store=store, progress=False)
        assert seen.items == [1, 2, 3, 2]
        assert CALLS["tax"] in (3, 4)  # the second 2 may run before the first is stored
        CALLS.clear()
        flow, seen = build()
        result = flow.run(store=store, progress=False)
        assert seen.items == [1, 2, 3, 2]
        assert not CALLS
        assert result.stages["tax"].fused_with == ()  # a cached stage is never fused


# -- digests ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Order:
    """A non-JSON event."""

    id: int
    items: tuple[str, ...]


def test_json_digests_ignore_key_order() -> None:
    """Equal JSON data has one digest, whatever the dicts' insertion order."""
    assert event_digest({"a": 1, "b": [1, {"c": None}]}) == event_digest(
        {"b": [1, {"c": None}], "a": 1}
    )
    assert event_digest({"a": 1}) != event_digest({"a": 2})


def test_json_digests_keep_types_apart() -> None:
    """1, 1.0, True and "1" differ; a tuple is not its list; int keys are not str keys."""
    digests = {event_digest(value) for value in (1, 1.0, True, "1")}
    assert len(digests) == 4
    assert event_digest((1, 2)) != event_digest([1, 2])
    assert event_digest({1: "x"}) != event_digest({"1": "x"})


def test_non_json_events_digest_by_pickle() -> None:
    """A dataclass event has a stable digest (equal values, equal digests), and NaN goes
    through pickle rather than failing."""
    assert event_digest(Order(1, ("a",))) == event_digest(Order(1, ("a",)))
    assert event_digest(Order(1, ("a",))) != event_digest(Order(2, ("a",)))
    assert event_digest(math.nan) is not None
    assert event_digest(Order(1, ())).startswith("p")
    assert event_digest({"a": [1]}).startswith("j")  # type: ignore[union-attr]


def test_an_unpicklable_event_is_not_cached(store: rb.Store) -> None:
    """An event that cannot be pickled has no digest: the cached step is simply called."""
    assert event_digest(threading.Lock()) is None

    def describe(event: object) -> str:
        CALLS["describe"] += 1
        return type(event).__name__

    flow = rb.Flow("unpicklable")
    flow.input().map(describe, cache=True).output()
    lock = threading.Lock()
    assert rb.run(flow, lock, store=False).output == "lock"
    assert CALLS["describe"] == 1
