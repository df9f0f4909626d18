"""Shipping a flow's code to Ray's workers: Ray pickles each actor's chain with
cloudpickle, which sends a function of an importable module by reference (its module and
name; the worker imports it) and anything else (a lambda, a closure, a class defined in
``__main__``) by value. What neither can ship fails here, before any actor starts, with
an error naming the stage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from riverbed._runtime.failures import FailureLog
from riverbed._runtime.ray.topology import ChainPlacement, Placement

__all__ = ["CANNOT_SHIP", "check_shippable"]

CANNOT_SHIP = (
    "it cannot be shipped to Ray's workers, its function or what it holds cannot be "
    "pickled; define the function at the top level of an importable module, and open "
    "locks, connections and files inside it (or in a class's __init__) rather than "
    "holding them"
)


def check_shippable(placed: Iterable[ChainPlacement], ray: Any, failures: FailureLog) -> None:
    """Raise ``StageFailedError`` (recorded in ``failures``) naming the first stage run in
    an actor whose code or settings cannot be pickled for Ray's workers."""
    dumps = ray.cloudpickle.dumps
    for chain in placed:
        if chain.placement is Placement.DRIVER:
            continue
        for stage in chain.chain.stages:
            try:
                dumps(stage)
            except Exception as error:
                raise failures.stop(
                    stage.name, error, f"stage {stage.name!r}", note=CANNOT_SHIP
                ) from error
