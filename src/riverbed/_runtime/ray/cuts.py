"""A checkpoint of a run on Ray: the parts of a chain's actors made one, as if one process
had held the whole chain.

Each actor of a keyed chain holds the keys of its key groups: their rows are disjoint, so
the chain's rows are their union. Whether a keyed stage is written whole (one row holding
its state, replacing the rows before) or key by key is decided here for all its actors at
once, with the local runner's rules (``riverbed._runtime.keyed``): a stage written whole
by one actor and key by key by another would lose keys. Counters add up over actors.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from typing import Any

from riverbed._runtime.keyed import REWRITE_SLACK, WHOLE
from riverbed._runtime.parts import Part
from riverbed._runtime.result import COUNTS

__all__ = ["KeyedWrites", "add_counters", "merge_actor_parts"]


class KeyedWrites:
    """How one keyed stage's rows have been written in this run: when its next checkpoint
    writes it whole."""

    def __init__(self, *, complete: bool) -> None:
        self.complete = complete
        """The store has none of this stage's rows for the run, or rows it must forget."""
        self.written = 0
        self.held = 0

    def whole(self) -> bool:
        """True if the next checkpoint writes the stage whole."""
        return self.complete or self.written > self.held + REWRITE_SLACK

    def wrote(self, rows: int, held: int, *, whole: bool) -> None:
        """A checkpoint wrote ``rows`` rows of a stage whose actors hold ``held`` keys."""
        self.held = held
        if whole:
            self.complete = False
            self.written = 0
        else:
            self.written += rows


def add_counters(values: Iterable[Mapping[str, Any]], base: Mapping[str, Any]) -> dict[str, Any]:
    """Counters of one stage summed over its actors, on top of ``base`` (what the run had
    counted before these actors started)."""
    total = {name: base.get(name, 0) for name in COUNTS}
    for counted in values:
        for name in COUNTS:
            total[name] += counted.get(name, 0)
    return total


def merge_actor_parts(
    chain: str, parts: list[Part], bases: Mapping[str, Mapping[str, Any]], *, whole: bool
) -> Part:
    """The part of one chain's actors as one (see the module docstring)."""
    merged = Part()
    for part in parts:
        merged.states.update(part.states)
        merged.prepared.update(part.prepared)
        for name, rows in part.keyed.items():
            merged.keyed.setdefault(name, {}).update(rows)
    for name in list(merged.keyed):
        if whole:
            merged.keyed[name] = {WHOLE: _whole(parts, name)}
            merged.complete.add(name)
    stages = {name for part in parts for name in part.counters}
    for name in stages:
        values = [part.counters[name] for part in parts if name in part.counters]
        merged.counters[name] = add_counters(values, bases.get(name, {}))
    if parts and all(chain in part.finished for part in parts):
        merged.finished.append(chain)
    return merged


def _whole(parts: list[Part], name: str) -> bytes:
    """A keyed stage's state, whole: every actor's whole state in one dict."""
    state: dict[Any, Any] = {}
    for part in parts:
        data = part.keyed.get(name, {}).get(WHOLE)
        if data is not None:
            state.update(pickle.loads(data))
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
