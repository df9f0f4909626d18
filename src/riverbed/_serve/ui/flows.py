"""The graph of a stored run's flow: the flow is loaded from the run's TARGET (checked as
workers check a stored target), as ``riverbed runs resume`` would load it, and kept per
target and params. A run without a target (started from Python) or whose flow does not
load is drawn from its stage runs alone: its stages, without their edges."""

from __future__ import annotations

import json
import threading
from typing import Any

import riverbed as rb
from riverbed._cli.stored import REPLAY_OF, is_replay
from riverbed._serve.ui.graph import graph_stages
from riverbed._targets import load_flow

__all__ = ["FlowGraphs"]

Stages = list[dict[str, Any]]


class FlowGraphs:
    """The graphs of runs' flows, loaded once per target and params (thread-safe)."""

    def __init__(self) -> None:
        """No flow loaded yet."""
        self._loaded: dict[tuple[str, str], tuple[Stages | None, str]] = {}
        self._lock = threading.Lock()

    def of(self, store: rb.Store, run: rb.RunRecord) -> tuple[Stages, str]:
        """The stages of ``run``'s flow in its JSON form's shape, and a note (empty when
        the graph is whole; else why its edges are missing)."""
        origin = _origin(store, run)
        if origin.target is None:
            return self._fallback(store, run), (
                "the run recorded no target (it was started from Python): its stages are "
                "shown without their edges"
            )
        stages, note = self._load(origin.target, origin.params)
        if stages is None:
            return self._fallback(store, run), note
        return stages, ""

    def _load(self, target: str, params: dict[str, Any]) -> tuple[Stages | None, str]:
        key = (target, json.dumps(params, sort_keys=True, default=repr))
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
        try:
            found: tuple[Stages | None, str] = (
                graph_stages(load_flow(target, stored=True, params=params)),
                "",
            )
        except Exception as error:  # noqa: BLE001 - a user's module that fails to import must not break the page
            found = (
                None,
                f"the flow of {target} did not load ({type(error).__name__}: {error}): "
                "its stages are shown without their edges",
            )
        with self._lock:
            self._loaded[key] = found
        return found

    @staticmethod
    def _fallback(store: rb.Store, run: rb.RunRecord) -> Stages:
        """The stages a run recorded, without edges."""
        return [
            {"name": stage.stage, "kind": stage.kind.value, "inputs": []}
            for stage in store.stage_runs(run.run_id)
        ]


def _origin(store: rb.Store, run: rb.RunRecord) -> rb.RunRecord:
    """The run whose target builds ``run``'s flow: itself, or a replay's origin."""
    seen = {run.run_id}
    while run.target is None and is_replay(run) and run.params[REPLAY_OF] not in seen:
        seen.add(run.params[REPLAY_OF])
        try:
            run = store.get_run(run.params[REPLAY_OF])
        except rb.RunNotFoundError:
            break
    return run
