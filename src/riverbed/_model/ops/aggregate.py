"""What a window does with its events: the aggregators.

Users pass ``rb.Count()``, ``rb.Collect()``, ``rb.Fold(initial, fn)``, ``rb.Reduce(fn)``,
``rb.Min(key=...)``, ``rb.Max(key=...)``, ``rb.Reservoir(size, seed=...)``, or their own
class with ``add(value)`` and ``result()``. A spec stores the choice as plain fields
(``agg``, ``agg_fn``, ``agg_initial``, ``agg_size``, ``agg_seed``: JSON-able, so a flow
with windows still serializes), and ``Aggregator`` turns those back into the three steps a
processor runs: ``start(value)`` makes a window's accumulator from its first value,
``add(acc, value)`` returns the next accumulator, ``result(acc)`` is what is emitted.

Accumulators live in the processor's state, so they are plain picklable values (a user
class's instances must pickle: a module-level class with plain attributes does).
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from riverbed._errors import FlowDefinitionError
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
    "agg_fields",
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


class Aggregator:
    """The runtime steps of one aggregate (made from a spec; holds no state itself)."""

    def __init__(self, agg: str, fn: Any, initial: Any, size: int = 0, seed: int = 0) -> None:
        self.kind = agg
        self._fn = fn
        self._initial = initial
        self._size = size
        self._seed = seed
        self.needs_salt = agg == "reservoir"
        """True if ``start`` wants a salt (key and window) to seed its random choices."""

    def start(self, value: Any, salt: str = "") -> Any:
        """The accumulator of a window whose first event is ``value``."""
        kind = self.kind
        if kind == "count":
            return 1
        if kind == "collect":
            return [value]
        if kind == "fold":
            return self._fn(self._initial(), value)
        if kind == "class":
            instance = self._fn()
            instance.add(value)
            return instance
        if kind == "reservoir":
            # The RNG lives in the accumulator (a Random pickles with its state): a resumed
            # run draws exactly what an uninterrupted one would.
            return [1, [value], random.Random(f"{self._seed}/{salt}")]
        return value  # reduce, min, max

    def add(self, acc: Any, value: Any) -> Any:
        """The accumulator after ``value``."""
        kind = self.kind
        if kind == "count":
            return acc + 1
        if kind == "collect":
            acc.append(value)
            return acc
        if kind in ("fold", "reduce"):
            return self._fn(acc, value)
        if kind == "min":
            key = self._fn
            smaller = key(value) < key(acc) if key is not None else value < acc
            return value if smaller else acc
        if kind == "max":
            key = self._fn
            greater = key(value) > key(acc) if key is not None else value > acc
            return value if greater else acc
        if kind == "class":
            acc.add(value)
            return acc
        seen, sample, rng = acc  # reservoir (algorithm R)
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
        """What the window emits."""
        if self.kind == "class":
            return acc.result()
        if self.kind == "reservoir":
            return list(acc[1])
        if self.kind == "collect":
            return list(acc)
        return acc

    def over(self, values: list[Any], salt: str = "") -> Any:
        """The accumulator of ``values`` in order (sessions aggregate their buffer)."""
        acc = self.start(values[0], salt)
        for value in values[1:]:
            acc = self.add(acc, value)
        return acc


def aggregator_of(spec: Any) -> Aggregator:
    """The ``Aggregator`` a spec's ``agg*`` fields describe."""
    return Aggregator(spec.agg, spec.agg_fn, spec.agg_initial, spec.agg_size, spec.agg_seed)
