"""A participant's part of a checkpoint: what a source partition or a chain contributes
to a consistent cut (see ``riverbed._runtime.local.checkpoints`` for how the local runner
gathers them). Runner-neutral: every runner's chains produce parts the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from riverbed._runtime.keyed import Rows

__all__ = ["Part"]


@dataclass
class Part:
    """What one participant contributes to a checkpoint."""

    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per source, per partition: where reading stood."""
    states: dict[str, bytes] = field(default_factory=dict)
    """Per stage kept whole: its pickled state (a processor's or operator's dict)."""
    keyed: dict[str, Rows] = field(default_factory=dict)
    """Per stage kept per key: the rows of the keys changed since the last checkpoint
    (see ``riverbed._runtime.keyed``); every such stage is named, with no rows if none
    changed."""
    complete: set[str] = field(default_factory=set)
    """Stages of ``keyed`` whose rows are their whole state."""
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per stage: its counters at the cut."""
    finished: list[str] = field(default_factory=list)
    """Chains that had emitted their end-of-stream output (folds' totals, processors'
    ``finish``): restored, they must not emit it again."""
    prepared: dict[str, Any] = field(default_factory=dict)
    """Per transactional sink: the writes it prepared for this checkpoint (each belongs
    to exactly one checkpoint)."""

    def merge(self, other: Part) -> None:
        """Add ``other``'s contributions to this one."""
        for source, partitions in other.positions.items():
            self.positions.setdefault(source, {}).update(partitions)
        self.states.update(other.states)
        self.keyed.update(other.keyed)
        self.complete |= other.complete
        self.counters.update(other.counters)
        self.finished.extend(other.finished)
        self.prepared.update(other.prepared)

    def taken(self) -> None:
        """A checkpoint took this part of a participant that has ended, and the part
        stands for it in the later ones too: what belongs to one checkpoint only (the
        rows of changed keys, prepared writes) is not given again."""
        self.keyed = {name: {} for name in self.keyed}
        self.complete = set()
        self.prepared = {}
