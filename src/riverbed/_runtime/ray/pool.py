"""Actors kept between runs: a Ray actor is a worker process of its own, whose start
costs about a second of this machine's time; a run that ends cleanly gives its actors
back, and the next run of this process loads its chains into them. Actors of an attempt
that lost one are killed instead (their state is the lost attempt's)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from riverbed._runtime.ray.actor import ChainWorker

__all__ = ["ActorPool"]

KEPT = 16
"""Idle actors kept per kind of resources; more are killed."""


class ActorPool:
    """Idle ``ChainWorker`` actors by the resources they were made with."""

    def __init__(self) -> None:
        self._idle: dict[str, list[Any]] = {}
        self._ray: Any = None

    def take(self, ray: Any, options: Mapping[str, Any], count: int) -> list[Any]:
        """``count`` actors made with ``options``: idle ones first, new ones for the rest."""
        if self._ray is not ray or not ray.is_initialized():
            self._idle.clear()  # another Ray instance: the actors kept were its own
            self._ray = ray
        kind = json.dumps(dict(options), sort_keys=True)
        idle = self._idle.setdefault(kind, [])
        actors = [idle.pop() for _ in range(min(count, len(idle)))]
        # SPREAD: a stage's actors go to different nodes where they can, so that a node
        # lost takes a share of each stage, not a whole stage.
        remote = ray.remote(ChainWorker).options(
            scheduling_strategy="SPREAD", **options, max_restarts=0, max_concurrency=1
        )
        actors += [remote.remote() for _ in range(count - len(actors))]
        return actors

    def give_back(self, ray: Any, options: Mapping[str, Any], actors: list[Any]) -> None:
        """Keep ``actors`` (alive, their chains closed) for a later run; not those that
        reserve resources (CPUs, GPUs, custom ones), which they would hold while idle:
        a task that needs them would wait for ever."""
        kind = json.dumps(dict(options), sort_keys=True)
        idle = self._idle.setdefault(kind, [])
        for actor in actors:
            if not options and len(idle) < KEPT:
                idle.append(actor)
            else:
                kill(ray, actor)


def kill(ray: Any, actor: Any) -> None:
    """Kill ``actor`` (gone already: nothing to do)."""
    with contextlib.suppress(Exception):
        ray.kill(actor, no_restart=True)


POOL = ActorPool()
"""This process's idle actors."""
