"""The local engine's promises as properties (DESIGN.md §3), checked against plain Python.

Every flow here has one source. Order is compared exactly where the engine promises it
(along a chain, through async stages, per key, per input of a merge) and as a multiset
where paths meet.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import riverbed as rb
from riverbed.testing import Capture, TestClock

PROPERTY = settings(max_examples=120, deadline=None)

# -- a small library of pure functions on ints -------------------------------------------


def inc(x: int) -> int:
    return x + 1


def double(x: int) -> int:
    return x * 2


def neg(x: int) -> int:
    return -x


def mod7(x: int) -> int:
    return x % 7


def halve(x: int) -> int:
    return x // 2


def is_even(x: int) -> bool:
    return x % 2 == 0


def is_positive(x: int) -> bool:
    return x > 0


def not_div3(x: int) -> bool:
    return x % 3 != 0


def dup(x: int) -> list[int]:
    return [x, x]


def upto3(x: int) -> list[int]:
    return list(range(x % 4))


def pair_gen(x: int) -> Iterator[int]:
    yield x
    if x % 2:
        yield -x


def as_tuple(x: int) -> tuple[int, ...]:
    return (x, x + 10) if x % 5 else ()


MAPS = (inc, double, neg, mod7, halve)
FILTERS = (is_even, is_positive, not_div3)
FLAT_MAPS = (dup, upto3, pair_gen, as_tuple)


def _async_of(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An ``async def`` twin of ``fn`` that yields to the loop a value-dependent number of
    times, so that calls in flight finish out of input order."""

    async def call(x: Any) -> Any:
        for _ in range(hash(x) % 3):
            await asyncio.sleep(0)
        result = fn(x)
        # A generator must be consumed here: its body would otherwise run after the await.
        return list(result) if fn in FLAT_MAPS else result

    call.__name__ = f"async_{fn.__name__}"
    return call


ASYNC = {fn: _async_of(fn) for fn in (*MAPS, *FILTERS, *FLAT_MAPS)}


def plain(ops: list[tuple[str, Callable[[Any], Any]]], xs: list[int]) -> list[Any]:
    """The reference: the plain Python composition of ``ops``."""
    out: list[Any] = list(xs)
    for kind, fn in ops:
        if kind == "map":
            out = [fn(x) for x in out]
        elif kind == "filter":
            out = [x for x in out if fn(x)]
        else:
            out = [y for x in out for y in fn(x)]
    return out


ints = st.lists(st.integers(-1000, 1000), max_size=80)
batch_sizes = st.integers(1, 50)
op = st.one_of(
    st.tuples(st.just("map"), st.sampled_from(MAPS)),
    st.tuples(st.just("filter"), st.sampled_from(FILTERS)),
    st.tuples(st.just("flat_map"), st.sampled_from(FLAT_MAPS)),
)


def _run(flow: rb.Flow, **options: Any) -> rb.RunResult:
    options.setdefault("progress", False)
    options.setdefault("store", False)  # the promises under test do not involve the store
    return flow.run(**options)


# -- (a) chains equal the plain composition ----------------------------------------------


@PROPERTY
@given(ops=st.lists(op, max_size=6), xs=ints, batch_size=batch_sizes, capacity=st.integers(1, 4))
def test_fused_chain_equals_plain_composition(
    ops: list[tuple[str, Any]], xs: list[int], batch_size: int, capacity: int
) -> None:
    """Any fused map/filter/flat_map chain gives exactly the plain Python composition."""
    flow = rb.Flow("prop")
    stream = flow.source(xs, name="src")
    for index, (kind, fn) in enumerate(ops):
        stream = getattr(stream, kind)(fn, name=f"s{index}")
    seen = Capture()
    stream.sink(seen, name="out")
    result = _run(flow, batch_size=batch_size, channel_capacity=capacity)
    assert result.status is rb.RunStatus.SUCCEEDED
    assert seen.items == plain(ops, xs)
    assert result.stages["out"].events_in == len(seen.items)


@PROPERTY
@given(
    ops=st.lists(st.tuples(op, st.booleans(), st.integers(1, 8)), min_size=1, max_size=6),
    xs=ints,
    batch_size=batch_sizes,
    concurrency=st.integers(1, 20),
)
def test_chain_with_async_stages_equals_plain_composition(
    ops: list[tuple[tuple[str, Any], bool, int]],
    xs: list[int],
    batch_size: int,
    concurrency: int,
) -> None:
    """Mixing async stages (any concurrency) into a chain keeps the plain result and order."""
    flow = rb.Flow("prop")
    stream = flow.source(xs, name="src")
    for index, ((kind, fn), is_async, stage_concurrency) in enumerate(ops):
        if is_async:
            stream = getattr(stream, kind)(
                ASYNC[fn], name=f"s{index}", concurrency=stage_concurrency
            )
        else:
            stream = getattr(stream, kind)(fn, name=f"s{index}")
    seen = Capture()
    stream.sink(seen, name="out")
    result = _run(flow, batch_size=batch_size, concurrency=concurrency)
    assert seen.items == plain([o for o, _, _ in ops], xs)
    # Counters chain up: what a stage emits is what the next one takes in.
    names = [f"s{i}" for i in range(len(ops))]
    assert result.stages[names[0]].events_in == len(xs)
    for before, after in zip(names, [*names[1:], "out"], strict=True):
        assert result.stages[before].events_out == result.stages[after].events_in


# -- (b) per-key order -------------------------------------------------------------------


class Recorder:
    """Per-key state that appends each value; a read-modify-write across an await, so two
    events of one key running at once would lose one of them."""

    def __init__(self) -> None:
        self.seen: tuple[int, ...] = ()

    def add(self, value: int) -> tuple[int, ...]:
        self.seen = (*self.seen, value)
        return self.seen

    async def add_async(self, value: int) -> tuple[int, ...]:
        seen = self.seen
        for _ in range(value % 4):
            await asyncio.sleep(0)
        self.seen = (*seen, value)
        return self.seen


def append_state(state: tuple[int, ...], value: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    new = (*state, value)
    return new, new


async def append_state_async(
    state: tuple[int, ...], value: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    for _ in range(value % 4):
        await asyncio.sleep(0)
    new = (*state, value)
    return new, new


def per_key_prefixes(xs: list[int], keys: int) -> list[tuple[int, tuple[int, ...]]]:
    """The reference: for every event, its key and that key's values so far, in order."""
    so_far: dict[int, tuple[int, ...]] = {}
    out = []
    for x in xs:
        key = x % keys
        so_far[key] = (*so_far.get(key, ()), x)
        out.append((key, so_far[key]))
    return out


@PROPERTY
@given(
    xs=st.lists(st.integers(0, 1000), max_size=80),
    keys=st.integers(1, 5),
    batch_size=batch_sizes,
    concurrency=st.integers(1, 20),
    form=st.sampled_from(["class", "class-async", "function", "function-async"]),
    async_before=st.booleans(),
)
def test_per_key_order_holds(
    xs: list[int],
    keys: int,
    batch_size: int,
    concurrency: int,
    form: str,
    async_before: bool,
) -> None:
    """Every key's state sees that key's events in input order, on every executor path."""
    flow = rb.Flow("keys")
    stream = flow.source(xs, name="src")
    if async_before:  # a channel and an async stage before the keyed one
        stream = stream.map(ASYNC[inc], name="shift").map(lambda x: x - 1, name="unshift")
    keyed = stream.key_by(lambda x: x % keys, name="key")
    if form == "class":
        out = keyed.stateful(Recorder, Recorder.add, name="state")
    elif form == "class-async":
        out = keyed.stateful(Recorder, Recorder.add_async, name="state", concurrency=concurrency)
    elif form == "function":
        out = keyed.stateful(append_state, initial=tuple, name="state")
    else:
        out = keyed.stateful(
            append_state_async, initial=tuple, name="state", concurrency=concurrency
        )
    seen = Capture()
    out.sink(seen, name="out")
    result = _run(flow, batch_size=batch_size)
    assert result.ok
    assert seen.items == per_key_prefixes(xs, keys)


# -- (c) nothing lost or doubled across branch, route, merge ---------------------------


def tag(label: str) -> Callable[[int], tuple[str, int]]:
    def tagged(x: int) -> tuple[str, int]:
        return (label, x)

    tagged.__name__ = f"tag_{label}"
    return tagged


def _subsequence(items: list[tuple[str, int]], label: str) -> list[int]:
    return [x for t, x in items if t == label]


@PROPERTY
@given(
    xs=ints,
    batch_size=batch_sizes,
    capacity=st.integers(1, 3),
    async_side=st.sampled_from([None, "true", "false"]),
)
def test_branch_then_merge_keeps_every_event_once(
    xs: list[int], batch_size: int, capacity: int, async_side: str | None
) -> None:
    """branch + merge: the output multiset is the input's; each side keeps its order."""
    flow = rb.Flow("diamond")
    sides = flow.source(xs, name="src").branch(is_even, name="split")
    trues = sides.trues.map(ASYNC[double] if async_side == "true" else double, name="t_double").map(
        tag("t"), name="t_tag"
    )
    falses = sides.falses.map(ASYNC[neg] if async_side == "false" else neg, name="f_neg").map(
        tag("f"), name="f_tag"
    )
    seen = Capture()
    rb.merge(trues, falses, name="both").sink(seen, name="out")
    result = _run(flow, batch_size=batch_size, channel_capacity=capacity)
    expected = [("t", x * 2) if x % 2 == 0 else ("f", -x) for x in xs]
    assert Counter(seen.items) == Counter(expected)
    assert _subsequence(seen.items, "t") == _subsequence(expected, "t")
    assert _subsequence(seen.items, "f") == _subsequence(expected, "f")
    assert result.stages["both"].events_in == len(xs)


def route_of(x: int) -> str:
    return ("a", "b", "c")[x % 3]


@PROPERTY
@given(xs=ints, batch_size=batch_sizes, capacity=st.integers(1, 3))
def test_route_into_several_outputs_then_merge_keeps_every_event_once(
    xs: list[int], batch_size: int, capacity: int
) -> None:
    """route to three outputs + merge: the multiset is kept, and each route keeps order."""
    flow = rb.Flow("routes")
    routes = flow.source(xs, name="src").route(route_of, ["a", "b", "c"], name="router")
    tagged = [routes[label].map(tag(label), name=f"tag_{label}") for label in "abc"]
    seen = Capture()
    rb.merge(*tagged, name="all").sink(seen, name="out")
    result = _run(flow, batch_size=batch_size, channel_capacity=capacity)
    expected = [(route_of(x), x) for x in xs]
    assert Counter(seen.items) == Counter(expected)
    for label in "abc":
        assert _subsequence(seen.items, label) == _subsequence(expected, label)
    assert sum(result.stages[f"tag_{label}"].events_in for label in "abc") == len(xs)


@PROPERTY
@given(xs=ints, batch_size=batch_sizes, capacity=st.integers(1, 3), use_async=st.booleans())
def test_diamond_reads_each_event_once_per_path(
    xs: list[int], batch_size: int, capacity: int, use_async: bool
) -> None:
    """One stream read by two maps and merged again: every event arrives once per path."""
    flow = rb.Flow("diamond")
    shared = flow.source(xs, name="src").map(inc, name="shared")
    left = shared.map(ASYNC[double] if use_async else double, name="left").map(
        tag("l"), name="l_tag"
    )
    right = shared.map(neg, name="right").map(tag("r"), name="r_tag")
    seen = Capture()
    left.merge(right, name="joined").sink(seen, name="out")
    result = _run(flow, batch_size=batch_size, channel_capacity=capacity)
    expected_left = [(x + 1) * 2 for x in xs]
    expected_right = [-(x + 1) for x in xs]
    assert _subsequence(seen.items, "l") == expected_left
    assert _subsequence(seen.items, "r") == expected_right
    assert len(seen.items) == 2 * len(xs)
    assert result.stages["shared"].events_in == len(xs)
    assert result.stages["shared"].events_out == len(xs)


# -- (d) failure policies ----------------------------------------------------------------

POLICIES = (rb.OnError.SKIP, rb.OnError.CONTINUE, rb.OnError.DEAD_LETTER)


def expand(x: int) -> list[int]:
    return [3 * x, 3 * x + 1, 3 * x + 2]


def expand2(y: int) -> list[int]:
    return [2 * y, 2 * y + 1]


def shift(z: int) -> int:
    return z + 100_000_000


EXPANDERS = {"expand": expand, "expand2": expand2}


@PROPERTY
@given(
    data=st.data(),
    xs=st.lists(st.integers(0, 10_000), unique=True, max_size=30),
    expanders=st.lists(st.sampled_from(sorted(EXPANDERS)), max_size=2),
    policy=st.sampled_from(POLICIES),
    batch_size=batch_sizes,
    flaky_async=st.booleans(),
)
def test_failure_policies_inside_flat_map_expansion(
    data: st.DataObject,
    xs: list[int],
    expanders: list[str],
    policy: rb.OnError,
    batch_size: int,
    flaky_async: bool,
) -> None:
    """A stage failing on some items, before, between or after flat_maps: SKIP drops them,
    CONTINUE passes them, DEAD_LETTER keeps exactly them; no item is lost or doubled, and
    every user function runs exactly once per event it is given."""
    position = data.draw(st.integers(0, len(expanders)), label="flaky position")
    names = [*expanders[:position], "flaky", *expanders[position:]]
    before = xs
    for name in expanders[:position]:
        before = [y for x in before for y in EXPANDERS[name](x)]
    bad = data.draw(st.sets(st.sampled_from(before)) if before else st.just(set()), label="bad")
    calls: Counter[tuple[str, int]] = Counter()

    def counting(name: str, fn: Callable[[int], Any]) -> Callable[[int], Any]:
        def call(x: int) -> Any:
            calls[name, x] += 1
            return fn(x)

        return call

    def flaky(y: int) -> int:
        calls[f"flaky{position}", y] += 1
        if y in bad:
            raise ValueError(f"bad item {y}")
        return shift(y)

    async def flaky_coro(y: int) -> int:
        await asyncio.sleep(0)
        return flaky(y)

    # The reference, counting what each stage should be given.
    given_to: dict[str, list[int]] = {}
    items: list[int] = list(xs)
    for index, name in enumerate(names):
        given_to[f"{name}{index}"] = items
        if name == "flaky":
            if policy is rb.OnError.CONTINUE:
                items = [y if y in bad else shift(y) for y in items]
            else:
                items = [shift(y) for y in items if y not in bad]
        else:
            items = [z for y in items for z in EXPANDERS[name](y)]

    flow = rb.Flow("failures")
    stream = flow.source(xs, name="src")
    for index, name in enumerate(names):
        if name == "flaky":
            stream = stream.map(flaky_coro if flaky_async else flaky, name="flaky", on_error=policy)
        else:
            stream = stream.flat_map(
                counting(f"{name}{index}", EXPANDERS[name]), name=f"{name}{index}"
            )
    seen = Capture()
    stream.map(counting("after", inc), name="after").sink(seen, name="out")
    result = _run(flow, batch_size=batch_size)

    assert result.ok
    assert seen.items == [z + 1 for z in items]
    # Every user function ran exactly once per event it was given (no retries here).
    for stage, values in given_to.items():
        expected_calls = Counter((stage, v) for v in values)
        assert Counter({k: n for k, n in calls.items() if k[0] == stage}) == expected_calls
    assert Counter({k: n for k, n in calls.items() if k[0] == "after"}) == Counter(
        ("after", z) for z in items
    )
    # Dead letters are exactly the failing items, in order, with their error.
    failing_in_order = [y for y in given_to[f"flaky{position}"] if y in bad]
    if policy is rb.OnError.DEAD_LETTER:
        assert [d.event for d in result.dead_letters] == failing_in_order
        assert all(d.stage == "flaky" and d.attempts == 1 for d in result.dead_letters)
        assert all(d.error_type == "ValueError" for d in result.dead_letters)
    else:
        assert result.dead_letters == ()
    assert [int(e.event) for e in result.errors] == failing_in_order
    assert {e.action for e in result.errors} <= {policy}
    # Counters add up, stage by stage.
    for index, name in enumerate(names):
        stage = "flaky" if name == "flaky" else f"{name}{index}"
        assert result.stages[stage].events_in == len(given_to[f"{name}{index}"])
    stats = result.stages["flaky"]
    taken = len(given_to[f"flaky{position}"])
    assert stats.errors == len(bad)
    assert stats.retries == 0
    assert stats.skipped == (len(bad) if policy is rb.OnError.SKIP else 0)
    assert stats.dead_lettered == (len(bad) if policy is rb.OnError.DEAD_LETTER else 0)
    dropped = 0 if policy is rb.OnError.CONTINUE else len(bad)
    assert stats.events_out == taken - dropped
    assert result.stages["after"].events_in == len(items)
    assert result.stages["after"].events_out == len(items)
    assert result.stages["out"].events_in == len(items)


@PROPERTY
@given(
    data=st.data(),
    xs=st.lists(st.integers(0, 10_000), unique=True, max_size=40),
    policy=st.sampled_from(POLICIES),
    batch_size=batch_sizes,
)
def test_failing_flat_map_drops_or_passes_whole_event(
    data: st.DataObject, xs: list[int], policy: rb.OnError, batch_size: int
) -> None:
    """A flat_map failing on some events: none of their items appear (SKIP, DEAD_LETTER),
    or the event passes unchanged as one item (CONTINUE); the rest are untouched."""
    bad = data.draw(st.sets(st.sampled_from(xs)) if xs else st.just(set()), label="bad")
    calls: Counter[int] = Counter()

    def explode(x: int) -> Iterator[int]:
        calls[x] += 1
        yield x * 10
        if x in bad:  # fails half way through its items
            raise KeyError(x)
        yield x * 10 + 1

    flow = rb.Flow("flat")
    seen = Capture()
    flow.source(xs, name="src").flat_map(explode, name="explode", on_error=policy).map(
        inc, name="inc"
    ).sink(seen, name="out")
    result = _run(flow, batch_size=batch_size)
    expected: list[int] = []
    for x in xs:
        if x not in bad:
            expected += [x * 10 + 1, x * 10 + 2]
        elif policy is rb.OnError.CONTINUE:
            expected.append(x + 1)
    assert seen.items == expected
    assert all(calls[x] == 1 for x in xs)
    stats = result.stages["explode"]
    assert stats.events_in == len(xs)
    assert stats.errors == len(bad)
    assert stats.events_out == len(expected)
    assert stats.skipped + stats.dead_lettered == (0 if policy is rb.OnError.CONTINUE else len(bad))
    assert result.stages["inc"].events_in == len(expected)


@PROPERTY
@given(
    data=st.data(),
    xs=st.lists(st.integers(0, 1000), unique=True, max_size=60),
    keys=st.integers(1, 4),
    policy=st.sampled_from((rb.OnError.SKIP, rb.OnError.DEAD_LETTER)),
    batch_size=batch_sizes,
    use_async=st.booleans(),
)
def test_failed_events_leave_per_key_state_untouched(
    data: st.DataObject,
    xs: list[int],
    keys: int,
    policy: rb.OnError,
    batch_size: int,
    use_async: bool,
) -> None:
    """A stateful function failing on some events: the key's state goes on as if those
    events never came, and the others keep their per-key order."""
    bad = data.draw(st.sets(st.sampled_from(xs)) if xs else st.just(set()), label="bad")

    def append_or_fail(state: tuple[int, ...], value: int) -> tuple[Any, Any]:
        if value in bad:
            raise RuntimeError(value)
        return append_state(state, value)

    async def append_or_fail_async(state: tuple[int, ...], value: int) -> tuple[Any, Any]:
        await asyncio.sleep(0)
        return append_or_fail(state, value)

    flow = rb.Flow("stateful")
    seen = Capture()
    flow.source(xs, name="src").key_by(lambda x: x % keys, name="key").stateful(
        append_or_fail_async if use_async else append_or_fail,
        initial=tuple,
        name="state",
        on_error=policy,
    ).sink(seen, name="out")
    result = _run(flow, batch_size=batch_size)
    assert seen.items == per_key_prefixes([x for x in xs if x not in bad], keys)
    stats = result.stages["state"]
    assert stats.events_in == len(xs)
    assert stats.errors == len(bad)
    assert stats.skipped + stats.dead_lettered == len(bad)
    assert stats.events_out == len(xs) - len(bad)


@PROPERTY
@given(
    data=st.data(),
    xs=st.lists(st.integers(-300, 300), max_size=50),
    splitter=st.sampled_from(["branch", "route"]),
    paths=st.lists(st.lists(st.tuples(op, st.booleans()), max_size=3), min_size=3, max_size=3),
    policy=st.sampled_from(POLICIES),
    modulus=st.integers(2, 5),
    flaky_async=st.booleans(),
    batch_size=batch_sizes,
)
def test_split_paths_with_failures_then_merge(
    data: st.DataObject,
    xs: list[int],
    splitter: str,
    paths: list[list[tuple[tuple[str, Any], bool]]],
    policy: rb.OnError,
    modulus: int,
    flaky_async: bool,
    batch_size: int,
) -> None:
    """branch or route into paths of random (sync or async) stages, one failing on some
    values under a policy, merged again: every event comes out once per its path's result,
    each path in order, and the failing stage ran once per event it was given."""
    labels = ["true", "false"] if splitter == "branch" else ["a", "b", "c"]
    flaky_path = data.draw(st.sampled_from(labels), label="flaky path")
    where = data.draw(st.integers(0, len(paths[labels.index(flaky_path)])), label="flaky position")
    calls: Counter[int] = Counter()

    def flaky(v: int) -> int:
        calls[v] += 1
        if v % modulus == 0:
            raise ArithmeticError(v)
        return v * 3

    async def flaky_coro(v: int) -> int:
        await asyncio.sleep(0)
        return flaky(v)

    def label_of(x: int) -> str:
        if splitter == "branch":
            return "true" if is_even(x) else "false"
        return route_of(x)

    # The reference, per path.
    expected: list[tuple[str, int]] = []
    reaching_flaky: list[int] = []
    for x in xs:
        label = label_of(x)
        ops = [o for o, _ in paths[labels.index(label)]]
        values = [x]
        if label == flaky_path:
            values = plain(ops[:where], values)
            reaching_flaky += values
            if policy is rb.OnError.CONTINUE:
                values = [v if v % modulus == 0 else v * 3 for v in values]
            else:
                values = [v * 3 for v in values if v % modulus]
            values = plain(ops[where:], values)
        else:
            values = plain(ops, values)
        expected += [(label, v) for v in values]

    flow = rb.Flow("tree")
    source = flow.source(xs, name="src")
    if splitter == "branch":
        sides = source.branch(is_even, name="split")
        heads = {"true": sides.trues, "false": sides.falses}
    else:
        routes = source.route(route_of, ["a", "b", "c"], name="split")
        heads = {label: routes[label] for label in labels}
    tails = []
    for label in labels:
        stream = heads[label]
        for index, ((kind, fn), is_async) in enumerate(paths[labels.index(label)]):
            if label == flaky_path and index == where:
                stream = stream.map(
                    flaky_coro if flaky_async else flaky, name="flaky", on_error=policy
                )
            stream = getattr(stream, kind)(ASYNC[fn] if is_async else fn, name=f"{label}{index}")
        if label == flaky_path and where == len(paths[labels.index(label)]):
            stream = stream.map(flaky_coro if flaky_async else flaky, name="flaky", on_error=policy)
        tails.append(stream.map(tag(label), name=f"tag_{label}"))
    seen = Capture()
    rb.merge(*tails, name="joined").sink(seen, name="out")
    result = _run(flow, batch_size=batch_size)

    assert result.ok
    assert Counter(seen.items) == Counter(expected)
    for label in labels:
        assert _subsequence(seen.items, label) == _subsequence(expected, label)
    assert calls == Counter(reaching_flaky)
    failing = [v for v in reaching_flaky if v % modulus == 0]
    stats = result.stages["flaky"]
    assert stats.events_in == len(reaching_flaky)
    assert stats.errors == len(failing)
    assert stats.skipped == (len(failing) if policy is rb.OnError.SKIP else 0)
    assert stats.dead_lettered == (len(failing) if policy is rb.OnError.DEAD_LETTER else 0)
    assert [d.event for d in result.dead_letters] == (
        failing if policy is rb.OnError.DEAD_LETTER else []
    )
    assert result.stages["split"].events_in == len(xs)
    assert result.stages["split"].events_out == len(xs)
    assert result.stages["joined"].events_in == len(expected)
    assert result.stages["joined"].events_out == len(expected)
    assert result.stages["out"].events_in == len(expected)


@PROPERTY
@given(
    data=st.data(),
    xs=st.lists(st.integers(0, 10_000), unique=True, max_size=40),
    attempts=st.integers(1, 4),
    batch_size=batch_sizes,
    flaky_async=st.booleans(),
    with_flat_map=st.booleans(),
)
def test_retries_call_once_per_attempt_and_recover(
    data: st.DataObject,
    xs: list[int],
    attempts: int,
    batch_size: int,
    flaky_async: bool,
    with_flat_map: bool,
) -> None:
    """An event failing its first k calls is called k + 1 times and passes when k is
    below the retry budget; otherwise it is dead-lettered after exactly that many calls.
    Either way the other events are untouched and counters and backoff sleeps add up."""
    items = [y for x in xs for y in ((x, -x - 1) if with_flat_map else (x,))]
    failures = {y: data.draw(st.integers(0, attempts + 1), label=f"failures of {y}") for y in items}
    calls: Counter[int] = Counter()

    def flaky(y: int) -> int:
        calls[y] += 1
        if calls[y] <= failures[y]:
            raise ConnectionError(y)
        return y * 7

    async def flaky_coro(y: int) -> int:
        await asyncio.sleep(0)
        return flaky(y)

    flow = rb.Flow("retries")
    stream = flow.source(xs, name="src")
    if with_flat_map:
        stream = stream.flat_map(lambda x: (x, -x - 1), name="pair")
    seen = Capture()
    stream.map(
        flaky_coro if flaky_async else flaky,
        name="flaky",
        retry=rb.Retry(attempts=attempts, backoff=1.0, jitter=False),
        on_error=rb.OnError.DEAD_LETTER,
    ).map(inc, name="after").sink(seen, name="out")
    clock = TestClock()
    result = _run(flow, batch_size=batch_size, clock=clock)

    recovered = [y for y in items if failures[y] < attempts]
    given_up = [y for y in items if failures[y] >= attempts]
    assert seen.items == [y * 7 + 1 for y in recovered]
    assert [d.event for d in result.dead_letters] == given_up
    assert all(d.attempts == attempts for d in result.dead_letters)
    assert calls == Counter({y: min(failures[y], attempts - 1) + 1 for y in items})
    stats = result.stages["flaky"]
    retried = sum(min(failures[y], attempts - 1) for y in items)
    assert stats.retries == retried
    assert stats.errors == sum(min(failures[y], attempts) for y in items)
    assert stats.events_in == len(items)
    assert stats.events_out == len(recovered)
    assert len(clock.sleeps) == retried
