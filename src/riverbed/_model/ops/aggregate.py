"""What a window does with its events: the aggregators.

Users pass ``rb.Count()``, ``rb.Collect()``, ``rb.Fold(initial, fn)``, ``rb.Reduce(fn)``,
``rb.Min(key=...)``, ``rb.Max(key=...)``, ``rb.Reservoir(size, seed=...)``, or their own
class with ``add(value)`` and ``result()``. A spec stores the choice as plain fields
(``agg``, ``agg_fn``, ``agg_initial``, ``agg_size``, ``agg_seed``: JSON-able, so a flow
with windows still serializes), and ``Aggregator`` turns those back into the three steps a
processor runs: ``start(value)`` makes a window's accumulator from its first value,
``add(acc, value)`` returns the next accumulator, ``result(acc)`` is what is emitted (one
``Aggregator`` subclass per aggregate).

Accumulators live in the processor's state, so they are plain picklable values (a user
class's instances must pickle: a module-level class with plain attributes does).
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from riverbed._errors import FlowDefinitionError, InternalError
from riverbed._model import callables

__all__ = [
    "Aggregator",
    "Collect",
    "Count",
    "Fold",
    "Max",
    "Min",
    "Reduce",
    "Reservoir",
    "ReservoirAggregator",
    "agg_fields",
    "aggregator_of",
]


@dataclass(frozen=True)
class Count:
    """Aggregate a window to the number of its events.

    >>> import riverbed as rb
    >>> rb.Count()
    Count()
    """

    __module__ = "riverbed"


@dataclass(frozen=True)
class Collect:
    """Aggregate a window to the list of its events, in arrival order.

    >>> import riverbed as rb
    >>> rb.Collect()
    Collect()
    """

    __module__ = "riverbed"


@dataclass(frozen=True)
class Fold:
    """Aggregate with ``acc = fn(acc, value)``, starting from ``initial()`` per window.

    >>> import riverbed as rb
    >>> import operator
    >>> total = rb.Fold(float, operator.add)
    """

    initial: Callable[[], Any]
    fn: Callable[[Any, Any], Any]

    __module__ = "riverbed"


@dataclass(frozen=True)
class Reduce:
    """Aggregate with ``acc = fn(acc, value)``, the window's first event being the start.

    >>> import riverbed as rb
    >>> biggest = rb.Reduce(max)
    """

    fn: Callable[[Any, Any], Any]

    __module__ = "riverbed"


@dataclass(frozen=True)
class Min:
    """The smallest event of a window (by ``key(event)`` if given; the first on ties).

    >>> import riverbed as rb
    >>> import operator
    >>> coldest = rb.Min(key=operator.itemgetter("celsius"))
    """

    key: Callable[[Any], Any] | None = None

    __module__ = "riverbed"


@dataclass(frozen=True)
class Max:
    """The greatest event of a window (by ``key(event)`` if given; the first on ties).

    >>> import riverbed as rb
    >>> hottest = rb.Max(key=len)
    """

    key: Callable[[Any], Any] | None = None

    __module__ = "riverbed"


@dataclass(frozen=True)
class Reservoir:
    """A uniform random sample of at most ``size`` events of a window (reservoir
    sampling), the same for the same ``seed``, key and window.

    >>> import riverbed as rb
    >>> rb.Reservoir(3, seed=7).size
    3
    """

    size: int
    seed: int = 0

    __module__ = "riverbed"


_BUILT_IN: dict[type, str] = {
    Count: "count",
    Collect: "collect",
    Fold: "fold",
    Reduce: "reduce",
    Min: "min",
    Max: "max",
    Reservoir: "reservoir",
}


def agg_fields(aggregate: Any, where: str) -> dict[str, Any]:
    """The spec fields that describe ``aggregate`` (see the module docstring)."""
    fields: dict[str, Any] = {"agg_fn": None, "agg_initial": None, "agg_size": 0, "agg_seed": 0}
    kind = _BUILT_IN.get(type(aggregate))
    if kind is not None:
        fields["agg"] = kind
        if isinstance(aggregate, Fold):
            fields["agg_fn"], fields["agg_initial"] = aggregate.fn, aggregate.initial
        elif isinstance(aggregate, Reduce):
            fields["agg_fn"] = aggregate.fn
        elif isinstance(aggregate, Min | Max):
            fields["agg_fn"] = aggregate.key
        elif isinstance(aggregate, Reservoir):
            if isinstance(aggregate.size, bool) or not isinstance(aggregate.size, int):
                raise FlowDefinitionError(f"{where}: Reservoir size must be an int >= 1")
            if aggregate.size < 1:
                raise FlowDefinitionError(f"{where}: Reservoir size must be >= 1")
            fields["agg_size"], fields["agg_seed"] = aggregate.size, aggregate.seed
        return fields
    if inspect.isclass(aggregate) and callable(getattr(aggregate, "add", None)):
        if not callable(getattr(aggregate, "result", None)):
            raise FlowDefinitionError(
                f"{where}: aggregator class {aggregate.__qualname__} has add() but no "
                "result(); give it a result(self) method returning the window's value"
            )
        fields["agg"], fields["agg_fn"] = "class", aggregate
        return fields
    shown = callables.describe(aggregate) if callable(aggregate) else repr(aggregate)
    raise FlowDefinitionError(
        f"{where}: aggregate must be rb.Count(), rb.Collect(), rb.Fold(initial, fn), "
        "rb.Reduce(fn), rb.Min(), rb.Max(), rb.Reservoir(size) or a class with add(value) "
        f"and result(); got {shown}"
    )


def _identity(acc: Any) -> Any:
    return acc


class Aggregator:
    """The steps of one aggregate; holds no state itself (accumulators live in the
    processor's state). One subclass per aggregate, so each step is a plain call: a window
    makes several per event.

    ``start(value, salt)`` is the accumulator of a window whose first event is ``value``,
    ``add(acc, value)`` the accumulator after ``value`` (it may update ``acc`` in place and
    return it), ``result(acc)`` what the window emits.
    """

    needs_salt = False
    """True if ``start`` wants a salt (key and window) to seed its random choices."""
    plain_result = True
    """True if ``result(acc)`` is ``acc`` itself: a closing window emits its accumulators
    without a call per key."""
    in_place = False
    """True if ``add`` changes ``acc`` itself (a list, an instance of the user's class):
    then what it returns is not the accumulator, and the caller keeps ``acc``."""
    result: Callable[[Any], Any] = staticmethod(_identity)
    """``result(acc)``: what the window emits (``acc`` itself unless a subclass says
    otherwise; a user class's own ``result`` where it can)."""
    add: Callable[[Any, Any], Any]
    """``add(acc, value)``: the accumulator after ``value`` (or, ``in_place``, nothing).
    Where it can, the very function that does the work: the user's fold or reduce, the
    user's class's ``add``, ``list.append``; a window calls it once per window an event
    falls in (ten times for a 10 s window sliding every 1 s), and a call less is felt."""

    def start(self, value: Any, salt: str = "") -> Any:
        """The accumulator of a window whose first event is ``value``."""
        return value

    def step(self, acc: Any, value: Any) -> Any:
        """The accumulator after ``value``, ``in_place`` or not (for paths where one call
        more does not matter)."""
        added = self.add(acc, value)
        return acc if self.in_place else added

    def results(self, accs: Iterable[Any]) -> Iterable[Any]:
        """``result`` of each of ``accs``, lazily."""
        return accs if self.plain_result else map(self.result, accs)

    def over(self, values: list[Any], salt: str = "") -> Any:
        """The accumulator of ``values`` in order (sessions aggregate their buffer)."""
        acc = self.start(values[0], salt)
        step = self.step
        for value in values[1:]:
            acc = step(acc, value)
        return acc


class CountAggregator(Aggregator):
    """``rb.Count()``."""

    def start(self, value: Any, salt: str = "") -> Any:
        """One event."""
        return 1

    def add(self, acc: Any, value: Any) -> Any:
        """One more."""
        return acc + 1


class CollectAggregator(Aggregator):
    """``rb.Collect()``: a list in arrival order."""

    plain_result = False
    in_place = True

    def __init__(self) -> None:
        self.add = list.append

    def start(self, value: Any, salt: str = "") -> Any:
        """A list of the first event."""
        return [value]

    def result(self, acc: Any) -> Any:
        """A copy: a late update appends to the list kept."""
        return list(acc)


class FoldAggregator(Aggregator):
    """``rb.Fold(initial, fn)``."""

    def __init__(self, fn: Callable[[Any, Any], Any], initial: Callable[[], Any]) -> None:
        self.add = fn
        self._initial = initial

    def start(self, value: Any, salt: str = "") -> Any:
        """``fn(initial(), value)``."""
        return self.add(self._initial(), value)


class ReduceAggregator(Aggregator):
    """``rb.Reduce(fn)``: the first event is the start."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.add = fn


class MinAggregator(Aggregator):
    """``rb.Min(key)``: the first of equals."""

    def __init__(self, key: Callable[[Any], Any] | None) -> None:
        self._key = key

    def add(self, acc: Any, value: Any) -> Any:
        """``value`` if strictly smaller, else ``acc``."""
        key = self._key
        smaller = key(value) < key(acc) if key is not None else value < acc
        return value if smaller else acc


class MaxAggregator(Aggregator):
    """``rb.Max(key)``: the first of equals."""

    def __init__(self, key: Callable[[Any], Any] | None) -> None:
        self._key = key

    def add(self, acc: Any, value: Any) -> Any:
        """``value`` if strictly greater, else ``acc``."""
        key = self._key
        greater = key(value) > key(acc) if key is not None else value > acc
        return value if greater else acc


class ReservoirAggregator(Aggregator):
    """``rb.Reservoir(size, seed)``: algorithm R, the accumulator ``[seen, sample, rng]``."""

    needs_salt = True
    plain_result = False
    in_place = True

    def __init__(self, size: int, seed: int) -> None:
        self._size = size
        self._seed = seed

    def start(self, value: Any, salt: str = "") -> Any:
        """A sample of one, and the RNG of this key and window."""
        # The RNG lives in the accumulator (a Random pickles with its state): a resumed
        # run draws exactly what an uninterrupted one would.
        return [1, [value], random.Random(f"{self._seed}/{salt}")]

    def add(self, acc: Any, value: Any) -> Any:
        """Keep ``value`` with probability size / seen (in place)."""
        seen, sample, rng = acc
        seen += 1
        if len(sample) < self._size:
            sample.append(value)
        else:
            slot = rng.randrange(seen)
            if slot < self._size:
                sample[slot] = value
        acc[0] = seen
        return acc

    def result(self, acc: Any) -> Any:
        """A copy of the sample."""
        return list(acc[1])


class ClassAggregator(Aggregator):
    """A user's class: an instance per window, ``add(value)`` per event, ``result()``."""

    plain_result = False
    in_place = True

    def __init__(self, cls: Callable[[], Any]) -> None:
        self._cls = cls
        # ``cls.add(acc, value)`` is ``acc.add(value)`` for the instances cls() makes,
        # when add is a plain function of the class: then call it without a wrapper.
        own = getattr(cls, "__new__", None) is object.__new__
        add = inspect.getattr_static(cls, "add", None)
        self.add = add if own and inspect.isfunction(add) else _call_add
        result = inspect.getattr_static(cls, "result", None)
        self.result = result if own and inspect.isfunction(result) else _call_result

    def start(self, value: Any, salt: str = "") -> Any:
        """A new instance that has added ``value``."""
        instance = self._cls()
        instance.add(value)
        return instance


def _call_add(acc: Any, value: Any) -> None:
    acc.add(value)


def _call_result(acc: Any) -> Any:
    return acc.result()


def aggregator_of(spec: Any) -> Aggregator:
    """The ``Aggregator`` a spec's ``agg*`` fields describe."""
    kind = spec.agg
    if kind == "count":
        return CountAggregator()
    if kind == "collect":
        return CollectAggregator()
    if kind == "fold":
        return FoldAggregator(spec.agg_fn, spec.agg_initial)
    if kind == "reduce":
        return ReduceAggregator(spec.agg_fn)
    if kind == "min":
        return MinAggregator(spec.agg_fn)
    if kind == "max":
        return MaxAggregator(spec.agg_fn)
    if kind == "reservoir":
        return ReservoirAggregator(spec.agg_size, spec.agg_seed)
    if kind == "class":
        return ClassAggregator(spec.agg_fn)
    raise InternalError(f"no aggregator {kind!r}")  # pragma: no cover - agg_fields checks
