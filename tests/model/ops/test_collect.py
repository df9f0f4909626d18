"""Collecting, grouping and sampling against plain Python; checkpoints change nothing."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riverbed as rb
from riverbed.testing import Pause, drive

pytestmark = pytest.mark.usefixtures("on_runner")

PROPERTY = settings(max_examples=150, deadline=None)

ints = st.lists(st.integers(0, 100), max_size=60)
pairs = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 100)), max_size=60)


@PROPERTY
@given(ints, st.integers(1, 7), st.integers(0, 60))
def test_collect_by_size_is_chunks(xs: list[int], size: int, cut: int) -> None:
    """collect(max_size=n) emits the events in chunks of n, the rest at the end."""
    batches = rb.Flow("c").source([]).collect(max_size=size)
    expected = [xs[i : i + size] for i in range(0, len(xs), size)]
    assert drive(batches, xs) == expected
    assert drive(batches, xs, checkpoint_at=min(cut, len(xs))) == expected


@PROPERTY
@given(pairs, st.integers(1, 7), st.integers(0, 60))
def test_keyed_collect_is_chunks_per_key(events: Any, size: int, cut: int) -> None:
    """On a keyed stream, chunks are per key."""
    batches = rb.Flow("c").source([]).key_by(len).collect(max_size=size)
    got = drive(batches, events)
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, value in events:
        by_key[key].append(value)
    flat: dict[str, list[list[int]]] = defaultdict(list)
    for key, batch in got:
        flat[key].append(batch)
    assert flat == {k: [v[i : i + size] for i in range(0, len(v), size)] for k, v in by_key.items()}
    assert drive(batches, events, checkpoint_at=min(cut, len(events))) == got


def test_collect_by_time_flushes_on_ticks() -> None:
    """collect(max_wait=s) emits a batch once its first event waited s seconds."""
    batches = rb.Flow("t").source([]).collect(max_size=10, max_wait=2.0)
    assert drive(batches, [1, 2, Pause(1.0), 3, Pause(1.0), 4, Pause(5.0), 5]) == [
        [1, 2, 3],
        [4],
        [5],
    ]


@PROPERTY
@given(pairs, st.integers(0, 60))
def test_group_until_key_change_is_groupby(events: Any, cut: int) -> None:
    """group(until="key_change") emits runs of one key, like itertools.groupby."""
    groups = rb.Flow("g").source([]).key_by(len).group()
    expected = [
        (k, [v for _, v in run]) for k, run in itertools.groupby(events, key=lambda e: e[0])
    ]
    assert drive(groups, events) == expected
    assert drive(groups, events, checkpoint_at=min(cut, len(events))) == expected


@PROPERTY
@given(pairs)
def test_group_until_end_is_all_values_per_key(events: Any) -> None:
    """group(until="end") emits each key's values at the end, keys in first-seen order."""
    groups = rb.Flow("g").source([]).key_by(len).group(until="end")
    expected: dict[str, list[int]] = {}
    for key, value in events:
        expected.setdefault(key, []).append(value)
    assert drive(groups, events) == list(expected.items())


@PROPERTY
@given(ints, st.floats(0, 1), st.integers(0, 2**32), st.integers(0, 60))
def test_sample_is_bernoulli_with_a_seeded_random(
    xs: list[int], fraction: float, seed: int, cut: int
) -> None:
    """sample(p, seed) keeps the events a random.Random(seed) picks, across a resume."""
    sampled = rb.Flow("s").source([]).sample(fraction, seed=seed)
    rng = random.Random(seed)
    expected = [x for x in xs if rng.random() < fraction]
    assert drive(sampled, xs) == expected
    assert drive(sampled, xs, checkpoint_at=min(cut, len(xs))) == expected


@PROPERTY
@given(ints, st.integers(1, 10), st.integers(0, 50), st.integers(0, 60))
def test_reservoir_is_a_seeded_sample_of_fixed_size(
    xs: list[int], size: int, seed: int, cut: int
) -> None:
    """reservoir(n) emits min(n, len) of the events, the same for the same seed."""
    sample = rb.Flow("r").source([]).reservoir(size, seed=seed)
    (got,) = drive(sample, xs)
    assert len(got) == min(size, len(xs))
    assert sorted(got) == sorted(got)
    assert all(got.count(x) <= xs.count(x) for x in got)
    assert drive(sample, xs, checkpoint_at=min(cut, len(xs))) == [got]


def test_reservoir_is_roughly_uniform() -> None:
    """Over many seeds, each of 10 events is kept about size/10 of the time."""
    sample = rb.Flow("u").source([]).reservoir(3, seed=0)
    spec = sample.flow.stage("reservoir").fn
    counts = [0] * 10
    for seed in range(2000):
        (got,) = drive(type(spec)(size=3, seed=seed), list(range(10)))
        for x in got:
            counts[x] += 1
    assert all(450 < c < 750 for c in counts), counts


def test_keyed_reservoir_per_key() -> None:
    """On a keyed stream, one reservoir per key."""
    sample = rb.Flow("k").source([]).key_by(len).reservoir(5)
    assert drive(sample, [("a", 1), ("b", 2), ("a", 3)]) == [("a", [1, 3]), ("b", [2])]
