"""Producer functions as sources: ``fn(limit)`` or ``fn(state, limit)`` returns up to
``limit`` events, ``[]`` for "nothing now", and raises ``rb.EndOfStream`` at the end.

A producer keeps its place in its state (an object made by a factory once per partition), so
its position is that state, pickled: a checkpoint holds it, and a resumed run goes on from
it instead of making a new one. A producer that keeps saying "nothing now" is asked again
after a wait that doubles up to ``max_wait``, so an idle source costs little.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import pickle
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from riverbed._errors import EndOfStream, SourceError
from riverbed._model import callables

__all__ = ["Producer", "is_producer_function", "plain_function"]

logger = logging.getLogger("riverbed")

FIRST_WAIT = 0.01
"""Seconds added before the second read in a row after "nothing now"; it doubles from there."""

_NOT_MADE: Any = object()
"""A partition's state before its factory ran."""

_ENDED: Any = object()
"""What ``_call`` gives once the function raised EndOfStream."""


class Producer:
    """A source made of a producer function, called for each batch.

    ``function(limit)`` (or ``function(state, limit)`` when ``state`` is given) returns a
    list of at most ``limit`` events, ``[]`` when it has nothing now (it is asked again
    later, with a backoff that grows up to ``max_wait`` seconds while it stays idle), and
    raises ``rb.EndOfStream`` when its stream has ended. Either may be ``async def``.

    ``state`` is a factory (a class, or a function; it may be ``async def``) called once per
    partition when a run starts; its object is the producer's memory (a simulator, a
    cursor). The state is the source's position: each checkpoint holds it pickled, and a
    resumed run continues from it instead of calling the factory. A state that cannot be
    pickled (an open connection) is not checkpointed: a resumed run makes a new one, and the
    system it reads from must know where it stopped. ``partitions`` runs that many producers
    side by side, each with its own state.

    >>> import riverbed as rb
    >>> class Countdown:
    ...     def __init__(self): self.left = 5
    ...     def next(self, limit):
    ...         if not self.left: raise rb.EndOfStream
    ...         batch = list(range(self.left, max(self.left - limit, 0), -1))
    ...         self.left -= len(batch)
    ...         return batch
    >>> source = rb.Producer(Countdown.next, state=Countdown)
    """

    __module__ = "riverbed"

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        state: Callable[[], Any] | None = None,
        partitions: int = 1,
        max_wait: float = 0.1,
    ) -> None:
        if not callable(function):
            raise TypeError(f"Producer takes a function, got {type(function).__name__}")
        if state is not None and not callable(state):
            raise TypeError(
                f"Producer's state= takes a factory (a class or a function making the state), "
                f"got {type(state).__name__}; wrap a ready value: state=lambda: value"
            )
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ValueError(f"Producer's partitions= must be an int >= 1, got {partitions!r}")
        if (
            isinstance(max_wait, bool)
            or not isinstance(max_wait, int | float)
            or not 0 < max_wait < float("inf")
        ):
            raise ValueError(f"Producer's max_wait= must be seconds > 0, got {max_wait!r}")
        _check_parameters(function, 1 if state is None else 2)
        self.function = function
        self.state = state
        self.max_wait = max_wait
        self._partitions = [str(n) for n in range(partitions)]
        self.__name__ = callables.short_name(function)  # the stage's name by default

    def partitions(self) -> Sequence[str]:
        """``"0"``, ``"1"``... one per producer."""
        return self._partitions

    def open(self, partition: str, position: Any | None) -> _ProducerReader:
        """A reader of one partition, from the state its ``position`` holds (or a new one)."""
        return _ProducerReader(self, position)

    def __repr__(self) -> str:
        state = "" if self.state is None else f", state={callables.short_name(self.state)}"
        return f"Producer({callables.describe(self.function)}{state})"


class _ProducerReader:
    """One partition of a ``Producer``: its state, how many events it produced, how long it
    has been idle."""

    def __init__(self, producer: Producer, position: Any | None) -> None:
        self.producer = producer
        self.stateful = producer.state is not None
        self.state: Any = _NOT_MADE
        self.kept: str | None = None
        """The pickled state of the position this reader started from, until it is used."""
        self.produced = 0
        if isinstance(position, dict):
            self.produced = int(position.get("produced", 0))
            self.kept = position.get("state")
        elif position is not None:
            self.produced = int(position)
        self.idle = 0
        self.ended = False
        self.unpicklable = False

    def read(self, limit: int) -> list[Any] | Awaitable[list[Any] | None] | None:
        """The next batch (see ``Producer``); awaited when it must wait, make its state or
        call an async function."""
        if self.ended:
            return None
        if self.idle or (self.state is _NOT_MADE and self.stateful):
            return self._read_later(limit)
        produced = self._call(limit)
        if produced is _ENDED:
            return None
        if inspect.isawaitable(produced):
            return self._finish(produced, limit)
        return self._taken(produced, limit)

    async def _read_later(self, limit: int) -> list[Any] | None:
        if self.idle:  # "nothing now" again and again: wait longer each time, up to a bound
            wait = FIRST_WAIT * 2 ** min(self.idle - 1, 30)
            await asyncio.sleep(min(wait, self.producer.max_wait))
        if self.state is _NOT_MADE and self.stateful:
            self.state = await self._made_state()
        produced = self._call(limit)
        if produced is _ENDED:
            return None
        if inspect.isawaitable(produced):
            return await self._finish(produced, limit)
        return self._taken(produced, limit)

    async def _finish(self, pending: Awaitable[Any], limit: int) -> list[Any] | None:
        try:
            produced = await pending
        except EndOfStream:
            self.ended = True
            return None
        return self._taken(produced, limit)

    def _call(self, limit: int) -> Any:
        """What the function returns (or an awaitable of it); ``_ENDED`` once it raised
        EndOfStream."""
        try:
            if self.stateful:
                return self.producer.function(self.state, limit)
            return self.producer.function(limit)
        except EndOfStream:
            self.ended = True
            return _ENDED

    async def _made_state(self) -> Any:
        if self.kept is not None:
            return pickle.loads(base64.b64decode(self.kept))
        assert self.producer.state is not None
        made = self.producer.state()
        return await made if inspect.isawaitable(made) else made

    def _taken(self, produced: Any, limit: int) -> list[Any]:
        if type(produced) is not list or len(produced) > limit:
            what = type(produced).__name__
            if type(produced) is list:
                what = f"{len(produced)} events, more than the limit of {limit}"
            raise SourceError(
                f"producer {callables.describe(self.producer.function)} returned {what}; it "
                f"must return a list of at most limit ({limit}) events, [] when it has nothing "
                "now, and raise rb.EndOfStream at the end"
            )
        self.idle = 0 if produced else self.idle + 1
        self.produced += len(produced)
        return produced

    def position(self) -> Any:
        """How many events it produced; with the state pickled, for a stateful producer."""
        if not self.stateful:
            return self.produced
        position: dict[str, Any] = {"produced": self.produced}
        if self.state is _NOT_MADE:
            if self.kept is not None:
                position["state"] = self.kept
            return position
        if not self.unpicklable:
            try:
                pickled = pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as error:  # noqa: BLE001 - any pickling failure of a user's object
                self.unpicklable = True
                logger.warning(
                    "producer %s: its state cannot be pickled (%s), so checkpoints do not hold "
                    "it; a resumed run starts from a new state",
                    callables.describe(self.producer.function),
                    error,
                )
            else:
                position["state"] = base64.b64encode(pickled).decode("ascii")
        return position

    def close(self) -> None:
        """Nothing to release: the state belongs to the user's code."""


def plain_function(producer: Producer) -> Callable[..., Any] | None:
    """The function of a producer that ``flow.source(function)`` makes as it is (no state,
    one partition, the default wait), or None: such a producer is stored as its function."""
    if producer.state is None and len(producer.partitions()) == 1 and producer.max_wait == 0.1:
        return producer.function
    return None


def _check_parameters(function: Callable[..., Any], count: int) -> None:
    """A TypeError unless ``function`` takes ``count`` positional arguments."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin without a signature: Python cannot tell
    try:
        signature.bind(*range(count))
    except TypeError:
        params = ", ".join(signature.parameters) or "no parameters"
        wanted = "(limit)" if count == 1 else "(state, limit)"
        hint = "" if count == 2 else "; a function of (state, limit) needs state= (its factory)"
        raise TypeError(
            f"producer {callables.describe(function)} takes ({params}), but riverbed calls it "
            f"as {wanted}{hint}"
        ) from None


def is_producer_function(obj: Any) -> bool:
    """True for a plain or async function (not a generator function) that must be given
    one positional argument: a producer of ``limit`` events."""
    target = callables.unwrap(obj)
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        return False
    if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        return False
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    try:
        signature.bind()
    except TypeError:
        pass  # it needs arguments: not a zero-argument source function
    else:
        return False
    try:
        signature.bind(0)
    except TypeError:
        return False
    return True
