"""FlowForge's API on riverbed: routines with input slots and output events, connected
many to many, executed into a job state that can be saved and recovered
(docs/compat.md).

A FlowForge ``Flow`` is an ``rb.Routines``: each routine's slots are its handlers (called
with FlowForge's flexible signatures and merge strategies), its events what ``emit``
sends; ``execute(entry, params)`` builds the workflow from the entry routine and runs it
with ``rb.run``, and the ``JobState`` it returns is made of the run: its status, each
routine's state (riverbed's counters for its stage beside the routine's own ``stats()``)
and the history of emissions (the run's steps). Given a store (``Flow(store=...)``), the
job is a riverbed run there: listed by ``riverbed runs``, and ``flow.resume(job_state)``
goes on from the first routine not recorded.

Where riverbed does the sound thing rather than the seed's:

- the default error strategy is STOP (routine's handler, else the flow's, else STOP):
  a slot handler's error is not swallowed;
- a routine's call is all or nothing: the events of a call that failed are not sent
  (with CONTINUE or SKIP the flow goes on without them; with RETRY the call is made
  again, without sending its events twice);
- routines run in topological order, one routine's calls as one recorded step, not
  depth first as events are emitted; the connections must form a DAG (a cycle is
  refused, naming its routines);
- CONTINUE and SKIP both map to riverbed's ``OnError.SKIP`` (riverbed's CONTINUE hands
  a stage's input on as its output, which means nothing for a routine); the routine's
  state says "error_continued" or "skipped" as the seed's does;
- ``stats()`` is the routine object's own dictionary, as the seed's: on Ray, or for
  calls replayed by a resume, the calls happen elsewhere; the job state's routine
  states hold riverbed's counters, right on every runner;
- ``pause()`` cancels the job's run in the store (as ``riverbed runs cancel`` does):
  the job is "paused" and resumable, and the routine in flight when it was paused is
  called again on resume (a cancelled run commits nothing more); it needs a store.
"""

from __future__ import annotations

import contextvars
import enum
import importlib
import inspect
import json
import pickle
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import riverbed as rb

__all__ = [
    "Connection",
    "ErrorHandler",
    "ErrorStrategy",
    "Event",
    "ExecutionRecord",
    "Flow",
    "JobState",
    "Routine",
    "Slot",
]

JOB_STATUSES = ("pending", "running", "paused", "completed", "failed", "cancelled")
"""A job's statuses, as the seed names them."""

_EMITTED: contextvars.ContextVar[list[tuple[str, dict[str, Any]]]] = contextvars.ContextVar(
    "flowforge_emitted"
)


class ErrorStrategy(enum.Enum):
    """What a routine's failure does."""

    STOP = "stop"
    """The job fails (riverbed: ``OnError.STOP``)."""
    CONTINUE = "continue"
    """The job goes on without the call's events; the routine is "error_continued"."""
    RETRY = "retry"
    """The call is made again, up to ``max_retries`` more times, then the job fails."""
    SKIP = "skip"
    """The job goes on without the call's events; the routine is "skipped"."""


class ErrorHandler:
    """A routine's (or a flow's) error strategy and its retry settings."""

    def __init__(
        self,
        strategy: ErrorStrategy | str = ErrorStrategy.STOP,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        retryable_exceptions: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        self.strategy = ErrorStrategy(strategy)
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        self.retryable_exceptions = retryable_exceptions

    def policy(self) -> dict[str, Any]:
        """The riverbed failure policy of this handler (``on_error``, ``retry``)."""
        if self.strategy is ErrorStrategy.RETRY:
            retry = rb.Retry(
                attempts=self.max_retries + 1,
                backoff=self.retry_delay,
                multiplier=self.retry_backoff,
                max_backoff=max(30.0, self.retry_delay),
                jitter=False,
                on=self.retryable_exceptions,
            )
            return {"on_error": rb.OnError.STOP, "retry": retry}
        if self.strategy is ErrorStrategy.STOP:
            return {"on_error": rb.OnError.STOP}
        return {"on_error": rb.OnError.SKIP}

    def serialize(self) -> dict[str, Any]:
        """The handler as JSON data (exception types by import name)."""
        return {
            "strategy": self.strategy.value,
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay,
            "retry_backoff": self.retry_backoff,
            "retryable_exceptions": [_ref(t) for t in self.retryable_exceptions],
        }

    @classmethod
    def deserialize(cls, data: Mapping[str, Any]) -> ErrorHandler:
        """A handler from ``serialize``'s data."""
        types = tuple(_load(ref) for ref in data.get("retryable_exceptions", []))
        fields = {k: v for k, v in data.items() if k != "retryable_exceptions"}
        return cls(**fields, retryable_exceptions=types or (Exception,))


class Event:
    """An output event of a routine, with the names of its parameters."""

    def __init__(self, name: str, routine: Routine, output_params: list[str]) -> None:
        self.name = name
        self.routine = routine
        self.output_params = list(output_params)

    def __repr__(self) -> str:
        return f"Event[{self.routine._id}.{self.name}]"


class Slot:
    """An input slot of a routine: what arrives is merged with what arrived before (by
    ``merge_strategy``) and handed to ``handler``."""

    def __init__(
        self,
        name: str,
        routine: Routine,
        handler: Callable[..., Any] | None,
        merge_strategy: str | Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.name = name
        self.routine = routine
        self.handler = handler
        self.merge_strategy = merge_strategy
        self._data: dict[str, Any] = {}

    def receive(self, data: dict[str, Any]) -> None:
        """Merge ``data`` in and call the handler with the merged data."""
        merged = self._merge(data)
        if self.handler is not None:
            _call_flexibly(self.handler, merged)

    def _merge(self, new: dict[str, Any]) -> dict[str, Any]:
        if self.merge_strategy == "override":
            self._data = dict(new)
        elif self.merge_strategy == "append":
            for key, value in new.items():
                old = self._data.get(key, [])
                self._data[key] = [*(old if isinstance(old, list) else [old]), value]
        elif callable(self.merge_strategy):
            self._data = self.merge_strategy(dict(self._data), dict(new))
        else:
            raise ValueError(
                f"slot {self.name!r}: merge_strategy is 'override', 'append' or a function, "
                f"got {self.merge_strategy!r}"
            )
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Slot[{self.routine._id}.{self.name}]"


def _call_flexibly(handler: Callable[..., Any], data: dict[str, Any]) -> Any:
    """The seed's handler signatures: ``**kwargs`` gets the data unpacked; one parameter
    named ``data`` gets the dict; one other parameter gets its value (or the dict);
    several get the values they name (or the dict)."""
    parameters = inspect.signature(handler).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return handler(**data)
    names = [p.name for p in parameters]
    if len(names) == 1:
        name = names[0]
        return handler(data[name] if name != "data" and name in data else data)
    matched = {name: data[name] for name in names if name in data}
    return handler(**matched) if matched else handler(data)


class Routine:
    """A FlowForge routine: define slots and events in ``__init__`` (which takes no
    parameters; settings go in ``set_config``), emit events from the slot handlers."""

    def __init__(self) -> None:
        self._id = hex(id(self))
        self._slots: dict[str, Slot] = {}
        self._events: dict[str, Event] = {}
        self._stats: dict[str, Any] = {}
        self._config: dict[str, Any] = {}
        self._error_handler: ErrorHandler | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}[{self._id}]"

    def define_slot(
        self,
        name: str,
        handler: Callable[..., Any] | None = None,
        merge_strategy: str | Callable[..., dict[str, Any]] = "override",
    ) -> Slot:
        """Add input slot ``name``."""
        if name in self._slots:
            raise ValueError(f"Slot '{name}' already exists in {self}")
        self._slots[name] = Slot(name, self, handler, merge_strategy)
        return self._slots[name]

    def define_event(self, name: str, output_params: list[str] | None = None) -> Event:
        """Add output event ``name`` with the names of its parameters."""
        if name in self._events:
            raise ValueError(f"Event '{name}' already exists in {self}")
        self._events[name] = Event(name, self, output_params or [])
        return self._events[name]

    def emit(self, event_name: str, flow: Any = None, **kwargs: Any) -> None:
        """Send ``event_name`` with ``kwargs`` to the slots connected to it (once this
        call of the routine has succeeded)."""
        if event_name not in self._events:
            raise ValueError(f"Event '{event_name}' does not exist in {self}")
        buffer = _EMITTED.get(None)
        if buffer is None:
            raise RuntimeError(
                f"{self}.emit({event_name!r}) outside a flow's execution: events are sent "
                "while flow.execute(...) runs the routine"
            )
        buffer.append((event_name, kwargs))

    def get_slot(self, name: str) -> Slot | None:
        """The slot ``name``, or None."""
        return self._slots.get(name)

    def get_event(self, name: str) -> Event | None:
        """The event ``name``, or None."""
        return self._events.get(name)

    def stats(self) -> dict[str, Any]:
        """A copy of the routine's statistics (what its handlers put in ``_stats``)."""
        return dict(self._stats)

    def set_stat(self, key: str, value: Any) -> None:
        """Set one statistic."""
        self._stats[key] = value

    def get_stat(self, key: str, default: Any = None) -> Any:
        """One statistic, or ``default``."""
        return self._stats.get(key, default)

    def increment_stat(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to a numeric statistic; its new value."""
        self._stats[key] = self._stats.get(key, 0) + amount
        return int(self._stats[key])

    def reset_stats(self, keys: list[str] | None = None) -> None:
        """Forget the statistics ``keys``, or all."""
        for key in list(self._stats) if keys is None else keys:
            self._stats.pop(key, None)

    def set_config(self, **kwargs: Any) -> None:
        """Set configuration values (kept when the flow is serialized)."""
        self._config.update(kwargs)

    def get_config(self, key: str, default: Any = None) -> Any:
        """One configuration value, or ``default``."""
        return self._config.get(key, default)

    def config(self) -> dict[str, Any]:
        """A copy of the configuration."""
        return dict(self._config)

    def set_error_handler(self, error_handler: ErrorHandler) -> None:
        """This routine's error handler (it beats the flow's)."""
        self._error_handler = error_handler

    def get_error_handler(self) -> ErrorHandler | None:
        """This routine's error handler, or None."""
        return self._error_handler

    def __call__(self, **kwargs: Any) -> None:
        """The entry call of a routine that overrides it; the base one counts calls."""
        self._stats["called"] = True
        self._stats["call_count"] = self._stats.get("call_count", 0) + 1


class _Handler:
    """A slot (or an entry ``__call__``) as a riverbed routine handler: the data in, the
    events the call emitted out. A class at module level, so that Ray can ship it."""

    def __init__(self, target: Slot | Routine) -> None:
        self.target = target

    def __call__(self, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        emitted: list[tuple[str, dict[str, Any]]] = []
        token = _EMITTED.set(emitted)
        try:
            if isinstance(self.target, Slot):
                self.target.receive(params)
            else:
                self.target(**params)
        finally:
            _EMITTED.reset(token)
        return emitted


class Connection:
    """An event of one routine sent to a slot of another, its parameters renamed by
    ``param_mapping`` (``{event_param: slot_param}``)."""

    def __init__(
        self, source_event: Event, target_slot: Slot, param_mapping: dict[str, str] | None = None
    ) -> None:
        self.source_event = source_event
        self.target_slot = target_slot
        self.param_mapping = dict(param_mapping or {})

    def __repr__(self) -> str:
        return f"Connection[{self.source_event} -> {self.target_slot}]"


class ExecutionRecord:
    """One entry of a job's history: a routine emitted an event (or started)."""

    def __init__(
        self, routine_id: str, event_name: str, data: dict[str, Any], timestamp: datetime
    ) -> None:
        self.routine_id = routine_id
        self.event_name = event_name
        self.data = data
        self.timestamp = timestamp

    def serialize(self) -> dict[str, Any]:
        """The record as JSON data (values that are not JSON as their repr)."""
        return {
            "routine_id": self.routine_id,
            "event_name": self.event_name,
            "data": json.loads(json.dumps(self.data, default=repr)),
            "timestamp": self.timestamp.isoformat(),
        }

    def __repr__(self) -> str:
        return f"ExecutionRecord[{self.routine_id}.{self.event_name}@{self.timestamp}]"


class JobState:
    """What one execution of a flow did: its status, each routine's state and the
    history of what was emitted; ``job_id`` is the riverbed run's id."""

    def __init__(self, flow_id: str = "", job_id: str | None = None) -> None:
        self.flow_id = flow_id
        self.job_id = job_id or uuid.uuid4().hex[:16]
        self.status = "pending"
        self.current_routine_id: str | None = None
        self.routine_states: dict[str, dict[str, Any]] = {}
        self.execution_history: list[ExecutionRecord] = []
        self.error: str | None = None
        self.created_at = datetime.now(UTC)
        self.updated_at = self.created_at

    def __repr__(self) -> str:
        return f"JobState[{self.job_id}:{self.status}]"

    def get_routine_state(self, routine_id: str) -> dict[str, Any] | None:
        """The state of routine ``routine_id``, or None if it did not run."""
        return self.routine_states.get(routine_id)

    def get_execution_history(self, routine_id: str | None = None) -> list[ExecutionRecord]:
        """The history, oldest first, of one routine if given."""
        records = [r for r in self.execution_history if routine_id in (None, r.routine_id)]
        return sorted(records, key=lambda record: record.timestamp)

    def serialize(self) -> dict[str, Any]:
        """The job state as JSON data."""
        return {
            "flow_id": self.flow_id,
            "job_id": self.job_id,
            "status": self.status,
            "current_routine_id": self.current_routine_id,
            "routine_states": json.loads(json.dumps(self.routine_states, default=repr)),
            "execution_history": [record.serialize() for record in self.execution_history],
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def deserialize(cls, data: Mapping[str, Any]) -> JobState:
        """A job state from ``serialize``'s data."""
        if data.get("status") not in JOB_STATUSES:
            raise ValueError(f"job status {data.get('status')!r} is not one of {JOB_STATUSES}")
        state = cls(data["flow_id"], data["job_id"])
        state.status = data["status"]
        state.current_routine_id = data.get("current_routine_id")
        state.routine_states = dict(data.get("routine_states", {}))
        state.execution_history = [
            ExecutionRecord(
                r["routine_id"], r["event_name"], r["data"], datetime.fromisoformat(r["timestamp"])
            )
            for r in data.get("execution_history", [])
        ]
        state.error = data.get("error")
        state.created_at = datetime.fromisoformat(data["created_at"])
        state.updated_at = datetime.fromisoformat(data["updated_at"])
        return state

    def save(self, filepath: str | Path) -> None:
        """Write the job state to ``filepath`` as JSON (its directory made if needed)."""
        path = Path(filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.serialize(), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, filepath: str | Path) -> JobState:
        """Read a job state written by ``save``."""
        path = Path(filepath)
        if not path.exists():
            raise FileNotFoundError(f"JobState file not found: {filepath}")
        return cls.deserialize(json.loads(path.read_text()))


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


def _ref(obj: type) -> str:
    """``module:qualname`` of a class defined at a module's top level."""
    if "<locals>" in obj.__qualname__:
        raise ValueError(
            f"{obj.__qualname__} is defined inside a function: a serialized flow names its "
            "classes by import path, so define it at a module's top level"
        )
    return f"{obj.__module__}:{obj.__qualname__}"


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    value: Any = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return value
