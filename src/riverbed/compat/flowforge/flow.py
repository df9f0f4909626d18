"""FlowForge's ``Flow``: routines and connections built into an ``rb.Routines`` workflow,
executed, paused and resumed as a riverbed run, and serialized."""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import riverbed as rb
from riverbed.compat.flowforge.jobs import ExecutionRecord, JobState
from riverbed.compat.flowforge.routines import (
    Connection,
    ErrorHandler,
    ErrorStrategy,
    Routine,
    _Handler,
    _load,
    _ref,
)


def _cancel(store: rb.Store, job_id: str) -> None:
    """Cancel the job's run, as ``riverbed runs cancel`` does."""
    store.transition(job_id, rb.RunStatus.CANCELLED, ended_at=datetime.now(UTC))


_STATUS = {
    rb.RunStatus.SCHEDULED: "pending",
    rb.RunStatus.RUNNING: "running",
    rb.RunStatus.SUCCEEDED: "completed",
    rb.RunStatus.FAILED: "failed",
    rb.RunStatus.CANCELLED: "cancelled",
    rb.RunStatus.CRASHED: "failed",
}


class Flow:
    """Routines and their connections; ``execute`` runs them from an entry routine.

    ``store``: where jobs are recorded (a ``Store``, a URL, None for riverbed's default
    store); ``False`` (the default, as the seed keeps jobs in memory) records nothing.
    """

    def __init__(
        self,
        flow_id: str | None = None,
        execution_strategy: str = "sequential",
        max_workers: int = 5,
        *,
        store: rb.Store | str | bool | None = False,
    ) -> None:
        self.flow_id = flow_id or f"flow-{uuid.uuid4().hex[:12]}"
        self.execution_strategy = execution_strategy
        self.max_workers = max_workers
        self.store = store
        self.routines: dict[str, Routine] = {}
        self.connections: list[Connection] = []
        self.error_handler: ErrorHandler | None = None
        self.job_state: JobState | None = None
        self._running: str | None = None
        """The id of the job ``execute`` is running (for ``pause``)."""
        self._paused: set[str] = set()

    def __repr__(self) -> str:
        return f"Flow[{self.flow_id}]"

    def add_routine(self, routine: Routine, routine_id: str | None = None) -> str:
        """Add ``routine`` under ``routine_id`` (its ``_id`` if not given); the id."""
        rid = routine_id or routine._id
        if rid in self.routines:
            raise ValueError(f"Routine ID '{rid}' already exists in flow")
        self.routines[rid] = routine
        return rid

    def connect(
        self,
        source_routine_id: str,
        source_event: str,
        target_routine_id: str,
        target_slot: str,
        param_mapping: dict[str, str] | None = None,
    ) -> Connection:
        """Send the source routine's event to the target routine's slot."""
        source = self._routine(source_routine_id, "Source")
        target = self._routine(target_routine_id, "Target")
        event, slot = source.get_event(source_event), target.get_slot(target_slot)
        if event is None:
            raise ValueError(f"Event '{source_event}' not found in routine '{source_routine_id}'")
        if slot is None:
            raise ValueError(f"Slot '{target_slot}' not found in routine '{target_routine_id}'")
        connection = Connection(event, slot, param_mapping)
        self.connections.append(connection)
        return connection

    def _routine(self, rid: str, role: str) -> Routine:
        if rid not in self.routines:
            raise ValueError(f"{role} routine '{rid}' not found in flow")
        return self.routines[rid]

    def set_error_handler(self, error_handler: ErrorHandler) -> None:
        """The default error handler of the flow's routines."""
        self.error_handler = error_handler

    def _id_of(self, routine: Routine) -> str:
        return next(rid for rid, r in self.routines.items() if r is routine)

    def to_routines(self) -> rb.Routines:
        """The riverbed form of this flow (``rb.Routines``)."""
        net = rb.Routines(self.flow_id)
        for rid, routine in self.routines.items():
            slots: dict[str, Callable[[dict[str, Any]], Any]] = {
                name: _Handler(slot) for name, slot in routine._slots.items()
            }
            if type(routine).__call__ is not Routine.__call__:
                slots["__call__"] = _Handler(routine)
            handler = routine.get_error_handler() or self.error_handler
            policy = handler.policy() if handler is not None else {}
            net.add(rid, slots, list(routine._events), **policy)
        for c in self.connections:
            source, target = self._id_of(c.source_event.routine), self._id_of(c.target_slot.routine)
            net.connect(source, c.source_event.name, target, c.target_slot.name, c.param_mapping)
        return net

    def execute(
        self,
        entry_routine_id: str,
        entry_params: dict[str, Any] | None = None,
        execution_strategy: str | None = None,
    ) -> JobState:
        """Run the flow from ``entry_routine_id`` with ``entry_params`` (handed to its
        ``__call__`` if it defines one, else to its one slot); the job's state."""
        entry = self._routine(entry_routine_id, "Entry")
        slot = "__call__" if type(entry).__call__ is not Routine.__call__ else None
        if slot is None and len(entry._slots) != 1:
            raise ValueError(
                f"entry routine '{entry_routine_id}' has slots {sorted(entry._slots)} and no "
                "__call__: give it a __call__, or one slot, to take the entry parameters"
            )
        flow = self.to_routines().flow(entry_routine_id, slot)
        self._running = uuid.uuid4().hex[:16]
        try:
            result = rb.run(flow, dict(entry_params or {}), store=self.store, run_id=self._running)
        finally:
            self._running = None
        self.job_state = self._job_state(result, entry_routine_id, entry_params or {})
        return self.job_state

    def pause(self, job_state: JobState | None = None) -> None:
        """Pause the job this flow is executing (from another thread, or from a routine),
        or the job of ``job_state``: it stops at its next routine boundary with status
        "paused", and ``resume(job_state)`` goes on. riverbed cancels the job's run in
        the store: the routine being called when it was paused is called again on
        resume (a cancelled run commits no more steps), the routines before it are not."""
        if self.store is False:
            raise ValueError("pause needs the store the job runs in: Flow(store=...)")
        job_id = job_state.job_id if job_state is not None else self._running
        if job_id is None:
            raise ValueError(
                "no job of this flow is running: call pause() while execute() runs, or "
                "pass the job_state of the job to pause"
            )
        self._paused.add(job_id)
        if isinstance(self.store, rb.Store):
            _cancel(self.store, job_id)
            return
        with rb.open_store(self.store if isinstance(self.store, str) else None) as store:
            _cancel(store, job_id)

    def resume(self, job_state: JobState) -> JobState:
        """Go on with a job that failed, crashed or was cancelled, from the first routine
        not recorded (the flow must have been given the store the job ran in)."""
        if self.store is False:
            raise ValueError("resume needs the store the job was recorded in: Flow(store=...)")
        entry = job_state.current_routine_id or ""
        routine = self._routine(entry, "Entry")
        slot = "__call__" if type(routine).__call__ is not Routine.__call__ else None
        flow = self.to_routines().flow(entry, slot)
        result = rb.run(flow, store=self.store, resume=job_state.job_id)
        self.job_state = self._job_state(result, entry, {})
        return self.job_state

    def _job_state(self, result: rb.RunResult, entry: str, params: dict[str, Any]) -> JobState:
        """A run's result seen as the seed's job state."""
        state = JobState(self.flow_id, result.run_id)
        state.status = _STATUS[result.status]
        if result.status is rb.RunStatus.CANCELLED and result.run_id in self._paused:
            state.status = "paused"
        state.current_routine_id = entry
        state.created_at = result.started_at
        state.updated_at = result.ended_at
        state.execution_history = [ExecutionRecord(entry, "start", params, result.started_at)]
        for step in result.steps:
            if step.stage in self.routines:
                for emission in pickle.loads(step.output).get("out", []):
                    record = ExecutionRecord(step.stage, emission.event, emission.params, step.at)
                    state.execution_history.append(record)
        for rid, routine in self.routines.items():
            if rid in result.stages:
                state.routine_states[rid] = self._routine_state(result, rid, routine)
        if result.error is not None:
            state.error = f"{result.error.error_type}: {result.error.message}"
        return state

    def _routine_state(self, result: rb.RunResult, rid: str, routine: Routine) -> dict[str, Any]:
        counters = result.stages[rid]
        handler = routine.get_error_handler() or self.error_handler
        errors = [e for e in result.errors if e.stage == rid]
        status = "completed"
        if result.error is not None and result.error.stage == rid:
            status = "failed"
        elif counters.skipped:
            strategy = handler.strategy if handler is not None else ErrorStrategy.SKIP
            status = "error_continued" if strategy is ErrorStrategy.CONTINUE else "skipped"
        state: dict[str, Any] = {
            "status": status,
            "stats": routine.stats(),
            "calls": counters.events_in,
            "emitted": counters.events_out,
            "errors": counters.errors,
            "retries": counters.retries,
            "skipped": counters.skipped,
            "execution_time": counters.seconds,
        }
        if errors or status == "failed":
            error = result.error if status == "failed" else errors[-1]
            assert error is not None
            state["error"] = f"{error.error_type}: {error.message}"
        return state

    def serialize(self) -> dict[str, Any]:
        """The flow as JSON data: routines by class (made again without parameters, as
        the seed requires), their configuration and statistics, connections, handlers."""
        return {
            "flow_id": self.flow_id,
            "execution_strategy": self.execution_strategy,
            "max_workers": self.max_workers,
            "routines": {
                rid: {
                    "class": _ref(type(routine)),
                    "config": routine._config,
                    "stats": json.loads(json.dumps(routine._stats, default=repr)),
                    "error_handler": _handler_data(routine.get_error_handler()),
                }
                for rid, routine in self.routines.items()
            },
            "connections": [
                {
                    "source": self._id_of(c.source_event.routine),
                    "event": c.source_event.name,
                    "target": self._id_of(c.target_slot.routine),
                    "slot": c.target_slot.name,
                    "param_mapping": c.param_mapping,
                }
                for c in self.connections
            ],
            "error_handler": _handler_data(self.error_handler),
        }

    @classmethod
    def deserialize(cls, data: Mapping[str, Any], *, store: Any = False) -> Flow:
        """A flow from ``serialize``'s data (each routine class imported and made again)."""
        flow = cls(data["flow_id"], data.get("execution_strategy", "sequential"), store=store)
        flow.max_workers = data.get("max_workers", 5)
        for rid, spec in data["routines"].items():
            routine = _load(spec["class"])()
            routine._config.update(spec.get("config", {}))
            routine._stats.update(spec.get("stats", {}))
            if spec.get("error_handler"):
                routine.set_error_handler(ErrorHandler.deserialize(spec["error_handler"]))
            flow.add_routine(routine, rid)
        for c in data.get("connections", []):
            flow.connect(c["source"], c["event"], c["target"], c["slot"], c.get("param_mapping"))
        if data.get("error_handler"):
            flow.set_error_handler(ErrorHandler.deserialize(data["error_handler"]))
        return flow


def _handler_data(handler: ErrorHandler | None) -> dict[str, Any] | None:
    return handler.serialize() if handler is not None else None
