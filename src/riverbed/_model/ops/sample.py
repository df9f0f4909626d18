"""Sampling: Bernoulli (each event kept with a probability) and reservoir (a uniform
sample of fixed size, emitted at the end of the stream).

Both are deterministic under a seed: the ``random.Random`` lives in the state dict (it
pickles with its internal state), so a resumed run draws exactly what an uninterrupted run
would. For a reservoir per window, use a window with ``rb.Reservoir(size, seed=...)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from riverbed._model.ops.aggregate import ReservoirAggregator
from riverbed._model.process import Processor, ProcessorSpec

__all__ = ["KeyedReservoirSpec", "KeyedSampleSpec", "ReservoirSpec", "SampleSpec"]


@dataclass(frozen=True)
class SampleSpec(ProcessorSpec):
    """Keep each event with probability ``fraction`` (``Stream.sample``)."""

    fraction: float = 0.1
    seed: int = 0

    keyed: ClassVar[bool] = False
    emits_keyed: ClassVar[bool] = False
    operator: ClassVar[str] = "sample"

    def create(self, state: dict[str, Any]) -> Processor:
        """A sampler over ``state["rng"]``."""
        return _Sampler(self, state)


@dataclass(frozen=True)
class KeyedSampleSpec(SampleSpec):
    """``SampleSpec`` on a keyed stream: the pairs kept stay keyed."""

    keyed: ClassVar[bool] = True
    emits_keyed: ClassVar[bool] = True


class _Sampler:
    def __init__(self, spec: SampleSpec, state: dict[str, Any]) -> None:
        self._fraction = spec.fraction
        self._rng: random.Random = state.setdefault("rng", random.Random(spec.seed))

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        return (event,) if self._rng.random() < self._fraction else None

    def tick(self, now: float) -> Iterable[Any] | None:
        return None

    def finish(self) -> Iterable[Any] | None:
        return None


@dataclass(frozen=True)
class ReservoirSpec(ProcessorSpec):
    """A uniform sample of at most ``size`` events, emitted as a list at the end of the
    stream (``Stream.reservoir``)."""

    size: int = 10
    seed: int = 0

    keyed: ClassVar[bool] = False
    emits_keyed: ClassVar[bool] = False
    operator: ClassVar[str] = "reservoir"

    def create(self, state: dict[str, Any]) -> Processor:
        """A reservoir over ``state["samples"]``: key -> ``[seen, sample, rng]``."""
        return _Reservoir(self, state)


@dataclass(frozen=True)
class KeyedReservoirSpec(ReservoirSpec):
    """One reservoir per key, emitted as ``(key, list)`` (``KeyedStream.reservoir``)."""

    keyed: ClassVar[bool] = True
    emits_keyed: ClassVar[bool] = True


class _Reservoir:
    def __init__(self, spec: ReservoirSpec, state: dict[str, Any]) -> None:
        self._keyed = spec.keyed
        self._agg = ReservoirAggregator(spec.size, spec.seed)
        self._samples: dict[Any, Any] = state.setdefault("samples", {})

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        key, value = event if self._keyed else (None, event)
        acc = self._samples.get(key)
        if acc is None:
            self._samples[key] = self._agg.start(value, repr(key))
        else:
            self._agg.step(acc, value)
        return None

    def tick(self, now: float) -> Iterable[Any] | None:
        return None

    def finish(self) -> Iterable[Any] | None:
        result = self._agg.result
        if not self._keyed:
            acc = self._samples.get(None)
            return [result(acc) if acc is not None else []]
        return [(key, result(acc)) for key, acc in self._samples.items()]
