"""Where each chain of a plan runs on Ray, and which actor owns which key.

- ``DRIVER``: sinks (their writes, captures and commits stay with the process that ran
  the flow) and cached stages (they look events up in the store, which only the driver
  holds);
- ``KEYED``: a chain headed by a stage kept per key: its keys are split into key groups
  by the stable hash, a contiguous range of groups per actor (Flink's assignment), so
  that a checkpoint's keys go to any number of actors without rehashing;
- ``BALANCED``: a stateless chain: each batch goes to the least loaded of its actors;
- ``SINGLE``: a chain with one state of its own (a window, a join, a processor): one
  actor.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from riverbed._model.keys import stable_hash
from riverbed._model.plan import Chain, Plan
from riverbed._model.stages import KEEPS_STATE, PER_KEY_STATE, StageKind

__all__ = ["ChainPlacement", "Placement", "key_owner", "place"]


class Placement(enum.Enum):
    """How a chain's batches reach its actors (see the module docstring)."""

    DRIVER = "driver"
    KEYED = "keyed"
    BALANCED = "balanced"
    SINGLE = "single"


@dataclass(frozen=True)
class ChainPlacement:
    """Where one chain runs."""

    chain: Chain
    placement: Placement
    parallelism: int
    """Actors (1 for ``SINGLE``; 0 for ``DRIVER``)."""
    options: Mapping[str, Any]
    """``ray.remote(...).options`` of each actor."""

    @property
    def name(self) -> str:
        """The chain's name."""
        return self.chain.name


def place(
    plan: Plan,
    default_parallelism: int,
    resources: Callable[[str], Any],
) -> dict[str, ChainPlacement]:
    """Every chain's placement, by chain name. ``resources(stage)`` gives a stage's
    ``StageResources``; a chain takes those of its head."""
    placed = {}
    for chain in plan.chains:
        asked = resources(chain.head.name)
        placement = _placement(chain)
        if placement is Placement.DRIVER:
            count = 0
        elif placement is Placement.SINGLE:
            count = 1
        else:
            count = asked.parallelism or default_parallelism
        placed[chain.name] = ChainPlacement(chain, placement, count, asked.actor_options())
    return placed


def _placement(chain: Chain) -> Placement:
    head = chain.head
    if head.is_sink or head.cache:
        return Placement.DRIVER
    kinds = {stage.kind for stage in chain.stages}
    if head.kind in PER_KEY_STATE and StageKind.PROCESS not in kinds:
        return Placement.KEYED
    if kinds & KEEPS_STATE:
        return Placement.SINGLE
    return Placement.BALANCED


def key_owner(key: Any, actors: int, key_groups: int) -> int:
    """The actor (0 .. actors-1) that owns ``key``: its key group's, groups being split
    into ``actors`` contiguous ranges. A key the stable hash does not take (an object of
    the user's class, an unhashable one) belongs to the first actor: it is the same
    everywhere, and the stage's own failure policy meets a key it cannot keep."""
    try:
        digest = stable_hash(key)
    except TypeError:
        return 0
    return (digest % key_groups) * actors // key_groups
