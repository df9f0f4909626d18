"""Sources: which shapes become sources, and how their readers batch, end and resume."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import riverbed as rb
from riverbed._model.sources import FunctionSource, IterableSource, as_source, is_source
from tests.model import flowlib


def read_all(source: rb.Source, max_events: int = 2, position: Any = None) -> list[list[Any]]:
    """Every batch a sync source's only partition gives, until it ends."""
    reader = source.open(source.partitions()[0], position)
    batches = []
    while (batch := reader.read(max_events)) is not None:
        batches.append(batch)
    reader.close()
    return batches


async def aread_all(
    source: rb.Source, max_events: int = 2, position: Any = None
) -> tuple[list[list[Any]], Any]:
    """Every batch an async source's only partition gives, and the final position."""
    reader = source.open(source.partitions()[0], position)
    batches = []
    try:
        while (batch := await reader.read(max_events)) is not None:  # type: ignore[misc]
            batches.append(batch)
        return batches, reader.position()
    finally:
        await reader.close()  # type: ignore[misc]


async def aread_batches(reader: Any) -> list[list[Any]]:
    """Read ``reader`` to its end, in batches of ten."""
    batches = []
    while (batch := await reader.read(10)) is not None:
        batches.append(batch)
    return batches


class Feed:
    """A source object keeping the protocol."""

    def partitions(self) -> list[str]:
        return ["a", "b"]

    def open(self, partition: str, position: Any) -> Any:
        raise NotImplementedError


async def agen(count: int) -> AsyncIterator[int]:
    for number in range(count):
        yield number


class Countdown:
    """An async iterable object (not a generator)."""

    def __aiter__(self) -> AsyncIterator[int]:
        return agen(3)


# -- which shapes are sources ------------------------------------------------------------


def test_source_objects_are_used_as_they_are() -> None:
    """An object with ``partitions`` and ``open`` is itself the source."""
    feed = Feed()
    assert is_source(feed)
    assert as_source(feed) is feed
    assert isinstance(feed, rb.Source)


@pytest.mark.parametrize("items", [[1, 2, 3], (1, 2, 3), range(1, 4), {1: "a", 2: "b", 3: "c"}])
def test_collections_become_iterable_sources(items: Any) -> None:
    """Lists, tuples, ranges and other iterables become one-partition sources."""
    source = as_source(items)
    assert isinstance(source, IterableSource)
    assert source.partitions() == ["0"]
    assert read_all(source, 10) == [[1, 2, 3]]


def test_functions_become_function_sources() -> None:
    """A zero-argument function (a generator function here) becomes a FunctionSource."""
    source = as_source(flowlib.numbers)
    assert isinstance(source, FunctionSource)
    assert isinstance(source, rb.Source)
    assert repr(source) == "FunctionSource(tests.model.flowlib.numbers (flowlib.py, line 16))"


@pytest.mark.parametrize("text", ["abc", b"abc"])
def test_strings_are_not_sources(text: Any) -> None:
    """A str or bytes would yield characters: TypeError saying to wrap it in a list."""
    with pytest.raises(TypeError, match="wrap it in a list"):
        as_source(text)


def test_other_values_are_not_sources() -> None:
    """A number is not a source: TypeError listing what is."""
    with pytest.raises(TypeError, match="cannot read events from int: give a list"):
        as_source(3)


def test_coroutine_functions_are_not_sources() -> None:
    """An ``async def`` without ``yield`` is refused, pointing at async generators."""

    async def fetch() -> list[int]:
        return [1]

    with pytest.raises(TypeError, match="make it an async generator"):
        as_source(fetch)


def test_functions_of_one_argument_are_producers() -> None:
    """A plain or async function of ``limit`` is a Producer; one of two arguments (state,
    limit) is refused, pointing at ``rb.Producer(fn, state=...)``."""

    def produce(limit: int) -> list[int]:
        return [limit]

    async def fetch(limit: int) -> list[int]:
        return [limit]

    def with_state(state: object, limit: int) -> list[int]:
        return []

    assert isinstance(as_source(produce), rb.Producer)
    assert isinstance(as_source(fetch), rb.Producer)
    with pytest.raises(TypeError, match=r"rb.Producer\(fn, state=Factory\)"):
        as_source(with_state)


# -- sync readers ------------------------------------------------------------------------


def test_batches_are_at_most_max_events() -> None:
    """A reader returns batches of up to ``max_events``, then None at the end."""
    assert read_all(as_source([1, 2, 3, 4, 5]), 2) == [[1, 2], [3, 4], [5]]


def test_empty_source_ends_at_once() -> None:
    """An empty list's reader returns None on the first read."""
    assert read_all(as_source([])) == []


def test_reader_keeps_the_reader_protocol() -> None:
    """Readers are PartitionReaders; their position counts the events read."""
    source = as_source(["a", "b", "c"])
    reader = source.open("0", None)
    assert isinstance(reader, rb.PartitionReader)
    assert reader.position() == 0
    reader.read(2)
    assert reader.position() == 2
    reader.read(2)
    assert reader.position() == 3
    assert reader.read(2) is None
    reader.close()


@given(st.lists(st.integers(), max_size=30), st.integers(1, 7), st.data())
def test_resuming_at_a_position_continues_right_after_it(
    items: list[int], max_events: int, data: st.DataObject
) -> None:
    """Opening at the position a reader reported gives exactly the events after it."""
    source = as_source(items)
    reader = source.open("0", None)
    stops = data.draw(st.integers(0, len(items) // max_events + 1))
    read: list[int] = []
    for _ in range(stops):
        batch = reader.read(max_events)
        if batch is None:
            break
        read.extend(batch)
    position = reader.position()
    reader.close()
    rest = [event for batch in read_all(source, max_events, position) for event in batch]
    assert read + rest == items


def test_lists_can_be_read_by_many_runs() -> None:
    """A list source opens again and again, from the start each time."""
    source = as_source([1, 2])
    assert read_all(source) == read_all(source) == [[1, 2]]


def test_generator_objects_are_one_shot() -> None:
    """A generator object can be read once; opening it again is a SourceError."""
    source = as_source(flowlib.numbers())
    assert read_all(source, 100) == [list(range(10))]
    with pytest.raises(rb.SourceError, match=r"one-shot iterator.*generator function"):
        source.open("0", None)


def test_generator_functions_start_afresh_each_open() -> None:
    """A generator function is called anew on every open."""
    source = as_source(flowlib.numbers)
    assert read_all(source, 100) == read_all(source, 100) == [list(range(10))]


def test_function_source_resumes_from_a_position() -> None:
    """A function source skips what was read before the position."""
    assert read_all(as_source(flowlib.numbers), 100, position=7) == [[7, 8, 9]]


def test_closing_a_reader_closes_its_generator() -> None:
    """``close`` finalizes the generator behind the reader (its ``finally`` runs)."""
    closed = []

    def events() -> Iterator[int]:
        try:
            yield from range(10)
        finally:
            closed.append(True)

    reader = as_source(events).open("0", None)
    assert reader.read(2) == [0, 1]
    reader.close()
    assert closed == [True]


def test_function_returning_a_non_iterable() -> None:
    """A source function that returns a non-iterable is a SourceError naming it."""
    source = as_source(lambda: 5)
    with pytest.raises(rb.SourceError, match="returned int, not an iterable"):
        source.open("0", None)


def test_function_returning_a_coroutine_is_closed() -> None:
    """A coroutine returned by a source function is closed before the SourceError."""

    async def fetch() -> list[int]:
        return [1]

    source = FunctionSource(lambda: fetch())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(rb.SourceError, match="coroutine function"):
            source.open("0", None)
        gc.collect()
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []


# -- async readers -----------------------------------------------------------------------


def test_async_generator_function_source() -> None:
    """An async generator function is read to the end, its position counting events."""
    source = as_source(flowlib.anumbers)
    batches, position = asyncio.run(aread_all(source, 10))
    assert [event for batch in batches for event in batch] == [0, 1, 2]
    assert position == 3


def test_async_iterable_object_source() -> None:
    """An object with ``__aiter__`` is a source, read in batches of at most max_events."""
    batches, _ = asyncio.run(aread_all(as_source(Countdown()), 2))
    assert all(1 <= len(batch) <= 2 for batch in batches)
    assert [event for batch in batches for event in batch] == [0, 1, 2]


def test_async_source_resumes_from_a_position() -> None:
    """An async source opened at a position skips the events before it."""
    batches, position = asyncio.run(aread_all(as_source(lambda: agen(6)), 4, position=4))
    assert [event for batch in batches for event in batch] == [4, 5]
    assert position == 6


def test_async_source_errors_reach_the_reader() -> None:
    """An async iterator's error is raised by ``read``; the position stays behind it."""

    async def broken() -> AsyncIterator[int]:
        yield 1
        raise OSError("feed went away")

    async def main() -> None:
        reader = as_source(broken).open("0", None)
        try:
            with pytest.raises(OSError, match="feed went away"):
                await aread_batches(reader)
            assert reader.position() == 0
        finally:
            await reader.close()  # type: ignore[misc]

    asyncio.run(main())


def test_async_reader_closed_before_reading() -> None:
    """Closing an async reader that never read does not warn or hang."""

    async def main() -> None:
        reader = as_source(flowlib.anumbers).open("0", None)
        await reader.close()  # type: ignore[misc]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert caught == []


def test_async_reader_closed_midway() -> None:
    """Closing an async reader while its pump waits stops the pump."""

    async def main() -> None:
        reader = as_source(lambda: agen(100)).open("0", None)
        batch = await reader.read(3)  # type: ignore[misc]
        assert batch is not None
        assert 1 <= len(batch) <= 3
        await reader.close()  # type: ignore[misc]
        await asyncio.sleep(0)

    asyncio.run(main())
