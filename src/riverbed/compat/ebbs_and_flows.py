"""Ebbs and Flows' API on riverbed: linear flows of tasks passing an execution context,
with persistence, failures and re-runs (docs/compat.md).

A ``FlowTemplate`` is a riverbed workflow: ``flow.input()``, one step per ``Task`` (its
``inputs()`` / ``outputs()`` become the step's declared ``reads=`` / ``writes=``, checked
when the template is registered), ``.output()``. A flow execution is a riverbed run in
the store: ``schedule_flow`` puts it into the store's run queue (SCHEDULED),
``run_flow`` takes the oldest one of this runner's templates and runs it here
(``rb.run(flow, resume=id)``), ``reschedule_flow_execution`` puts a failed one back into
the queue, and running it again goes on from the task that failed (riverbed's resume:
the tasks that succeeded are not called again). ``riverbed runs list`` shows them all.

Where riverbed does the sound thing rather than the seed's:

- a template's name is a riverbed flow name (letters, digits, ``_``, ``-``, ``.``),
  refused at ``register_flow_template`` otherwise;

- execution ids are riverbed's run ids (strings), not integers;
- CREATED is never seen: a flow is recorded and queued in one step (the seed's
  CREATED -> SCHEDULED happens inside ``schedule_flow``);
- a failed task's ``TaskExecution.output`` holds the error's type and message (the seed
  stores a fixed placeholder string in its place);
- a task gets its own copy of the context, so a task that changes its input and returns
  it changes nothing it should not; the context must stay JSON data (checked after each
  task, naming the key), and a key once set is not set again (``ValueError``, as the
  seed documents);
- a run that crashed or was cancelled counts as FAILED here (it may be rescheduled);
- ``run_flow`` returns the id of the execution it ran (None if there was none to run)
  instead of failing when the queue holds none.
"""

from __future__ import annotations

import enum
import json
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import riverbed as rb

__all__ = [
    "ExecutionContext",
    "FlowExecution",
    "FlowRunner",
    "FlowService",
    "FlowStatus",
    "FlowTemplate",
    "PersistenceMode",
    "Task",
    "TaskDataItem",
    "TaskExecution",
    "TaskStatus",
]


class PersistenceMode(enum.Enum):
    """Where a ``FlowService`` keeps its flows."""

    TRANSIENT = 0
    """A temporary SQLite store, removed when the service is closed (tests)."""
    PERSISTENT = 1
    """riverbed's default store (``RIVERBED_STORE``, else ``./.riverbed``)."""


class FlowStatus(enum.Enum):
    """Where a flow execution stands (the seed's values)."""

    CREATED = 0
    """Recorded, not yet queued (never seen on riverbed: ``schedule_flow`` does both)."""
    SCHEDULED = 1
    """In the queue, never run."""
    RUNNING = 2
    """Running now."""
    FAILED = 3
    """A task failed (or the run crashed or was cancelled): it may be rescheduled."""
    SUCCEEDED = 4
    """Every task succeeded. Final."""
    RESCHEDULED = 5
    """A failed execution back in the queue, to go on from the task that failed."""


ALLOWED_FLOW_TRANSITIONS: dict[FlowStatus, tuple[FlowStatus, ...]] = {
    FlowStatus.CREATED: (FlowStatus.SCHEDULED,),
    FlowStatus.SCHEDULED: (FlowStatus.RUNNING,),
    FlowStatus.RUNNING: (FlowStatus.RUNNING, FlowStatus.FAILED, FlowStatus.SUCCEEDED),
    FlowStatus.FAILED: (FlowStatus.RESCHEDULED,),
    FlowStatus.RESCHEDULED: (FlowStatus.RUNNING,),
    FlowStatus.SUCCEEDED: (),
}
"""The seed's legal flow status changes (RUNNING -> RUNNING: a task done, the next one
starting)."""


class TaskStatus(enum.Enum):
    """Where one task execution stands."""

    RUNNING = 1
    """Started."""
    FAILED = 2
    """``run`` raised (or returned something other than an ExecutionContext)."""
    SUCCEEDED = 3
    """``run`` returned the context."""


class TaskDataItem(NamedTuple):
    """A context key a task reads (``inputs()``) or writes (``outputs()``), and the type
    of its value (checked when the task runs)."""

    key: str
    type: type = object


class ExecutionContext:
    """The named data that goes from task to task: JSON data, each key set once."""

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        self.context: dict[str, Any] = dict(context or {})

    def set(self, key: str, value: Any) -> None:
        """Add ``key``; a key that is there already is a ``ValueError``."""
        if key in self.context:
            raise ValueError(
                f"the execution context has {key!r} already; a key is set once: use another"
            )
        self.context[key] = value

    def get(self, key: str) -> Any:
        """The value of ``key`` (``KeyError`` naming the keys there are otherwise)."""
        try:
            return self.context[key]
        except KeyError:
            known = sorted(self.context)
            raise KeyError(f"no {key!r} in the execution context; it has {known}") from None

    def to_json(self) -> str:
        """The context as JSON; ``TypeError`` naming the key whose value is not JSON."""
        for key, value in self.context.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError) as error:
                raise TypeError(
                    f"execution context key {key!r} holds a {type(value).__name__}, which "
                    f"is not JSON ({error})"
                ) from None
        return json.dumps(self.context)

    @staticmethod
    def from_json(input_str: str) -> ExecutionContext:
        """A new context from ``to_json``'s text."""
        return ExecutionContext(json.loads(input_str))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecutionContext) and other.context == self.context

    def __repr__(self) -> str:
        return f"ExecutionContext({self.context!r})"


class Task:
    """One step of a flow: ``run`` takes the context and returns the context (a copy,
    with what the task adds), or raises. Subclasses may declare ``inputs()`` and
    ``outputs()``: the keys they read and add."""

    def run(self, context: ExecutionContext) -> ExecutionContext:
        """Do the task's work; the base class does nothing and returns the context."""
        return context

    def inputs(self) -> list[TaskDataItem]:
        """The context keys this task reads (none declared by default)."""
        return []

    def outputs(self) -> list[TaskDataItem]:
        """The context keys this task adds (none declared by default)."""
        return []


class _TaskStep:
    """A task as a riverbed step: a context dict in, a context dict out, types checked."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.__name__ = type(task).__name__

    def __call__(self, context: dict[str, Any]) -> dict[str, Any]:
        name = type(self.task).__name__
        _check_types(name, "reads", self.task.inputs(), context)
        result = self.task.run(ExecutionContext(context))
        if not isinstance(result, ExecutionContext):
            raise TypeError(
                f"task {name}.run returned {type(result).__name__}; a task returns the "
                "ExecutionContext (a copy of its input, with what it adds)"
            )
        result.to_json()  # raises naming the key that is not JSON
        _check_types(name, "writes", self.task.outputs(), result.context)
        return dict(result.context)


def _check_types(task: str, role: str, items: list[TaskDataItem], context: dict[str, Any]) -> None:
    for item in items:
        if item.key in context and not isinstance(context[item.key], item.type):
            value = context[item.key]
            raise TypeError(
                f"task {task} {role} {item.key!r} as {item.type.__name__}, but it is "
                f"{value!r:.60} ({type(value).__name__})"
            )


class FlowTemplate:
    """A named list of tasks: the blueprint of flow executions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: list[Task] = []

    def add_task(self, task: Task) -> None:
        """Append ``task``."""
        if not isinstance(task, Task):
            raise TypeError(f"add_task takes a Task, got {type(task).__name__}")
        self.tasks.append(task)

    def get_task(self, index: int) -> Task | None:
        """The task at ``index``, None past the last."""
        return self.tasks[index] if index < len(self.tasks) else None

    def required_keys(self) -> list[str]:
        """The keys some task reads that no task before it writes: the scheduled context
        must bring them."""
        written: set[str] = set()
        needed: list[str] = []
        for task in self.tasks:
            needed += [i.key for i in task.inputs() if i.key not in written | set(needed)]
            written |= {item.key for item in task.outputs()}
        return needed

    def to_flow(self) -> rb.Flow:
        """The riverbed workflow of this template: one step per task, its declared data
        checked now (``FlowDefinitionError`` naming the task and the key)."""
        flow = rb.Flow(self.name)
        stream = flow.input(keys=self.required_keys())
        for index, task in enumerate(self.tasks):
            stream = stream.map(
                _TaskStep(task),
                name=f"{index}-{type(task).__name__}",
                reads=[item.key for item in task.inputs()],
                writes=[item.key for item in task.outputs()],
            )
        stream.output()
        return flow


@dataclass
class TaskExecution:
    """One entry of a flow execution's task history: a task started (RUNNING), or ended
    (SUCCEEDED, or FAILED with the reason in ``output``)."""

    flow_execution_id: str
    flow_execution_step: int
    name: str
    status: TaskStatus
    output: str | None = None
    timestamp: float = 0.0


@dataclass
class FlowExecution:
    """A flow execution as stored: a riverbed run seen with the seed's names."""

    execution_id: str
    template_name: str
    status: FlowStatus
    execution_step: int
    current_task_index: int
    execution_context: ExecutionContext = field(default_factory=ExecutionContext)
    timestamp: float = 0.0
    run: rb.RunRecord | None = None
    """The riverbed run behind it."""


def flow_status(run: rb.RunRecord) -> FlowStatus:
    """The seed's status of a riverbed run."""
    if run.status is rb.RunStatus.SCHEDULED:
        return FlowStatus.SCHEDULED if run.started_at is None else FlowStatus.RESCHEDULED
    return {
        rb.RunStatus.RUNNING: FlowStatus.RUNNING,
        rb.RunStatus.SUCCEEDED: FlowStatus.SUCCEEDED,
    }.get(run.status, FlowStatus.FAILED)


class FlowService:
    """Queries over flow executions in a riverbed store (a ``Store``, a URL, or a
    ``PersistenceMode``)."""

    allowed_flow_transitions = ALLOWED_FLOW_TRANSITIONS

    def __init__(self, store: rb.Store | str | PersistenceMode | None = None) -> None:
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if store is PersistenceMode.TRANSIENT:
            self._scratch = tempfile.TemporaryDirectory(prefix="ebbs-and-flows-")
            store = f"sqlite:///{Path(self._scratch.name) / 'flows.db'}"
        elif store is PersistenceMode.PERSISTENT:
            store = None
        self._owned = not isinstance(store, rb.Store)
        self.store: rb.Store = store if isinstance(store, rb.Store) else rb.open_store(store)

    def close(self) -> None:
        """Close the store if this service opened it."""
        if self._owned:
            self.store.close()
        if self._scratch is not None:
            self._scratch.cleanup()

    def __enter__(self) -> FlowService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def check_transition(origin: FlowStatus, target: FlowStatus) -> None:
        """``ValueError`` unless a flow may go from ``origin`` to ``target``."""
        if target not in ALLOWED_FLOW_TRANSITIONS[origin]:
            raise ValueError(f"Flow transition from '{origin}' to '{target}' is not allowed!")

    def get_flow_execution(self, flow_execution_id: str) -> FlowExecution:
        """The execution ``flow_execution_id`` (``ValueError`` if there is none)."""
        try:
            run = self.store.get_run(flow_execution_id)
        except rb.RunNotFoundError:
            raise ValueError(f"Flow with id {flow_execution_id} does not exist!") from None
        steps = self.store.steps(run.run_id)
        context = pickle.loads(run.input) if run.input is not None else {}
        if steps:
            context = pickle.loads(steps[-1].output)["out"][0]
        done = run.status is rb.RunStatus.SUCCEEDED
        return FlowExecution(
            execution_id=run.run_id,
            template_name=run.flow,
            status=flow_status(run),
            execution_step=len(self.store.history(run.run_id)),
            current_task_index=len(steps) - 1 if done else len(steps),
            execution_context=ExecutionContext(context),
            timestamp=(run.ended_at or run.started_at or run.created_at).timestamp(),
            run=run,
        )

    def get_flow_executions(
        self, template_name: str | None = None, status: FlowStatus | None = None
    ) -> list[FlowExecution]:
        """Executions, oldest first, of one template and/or in one status if given."""
        runs = self.store.list_runs(flow=template_name, limit=100_000)
        return [
            self.get_flow_execution(run.run_id)
            for run in sorted(runs, key=lambda run: run.created_at)
            if status is None or flow_status(run) is status
        ]

    def get_runnable_flow(
        self, strategy: FlowStatus, templates: list[str] | None = None
    ) -> FlowExecution | None:
        """The oldest execution in ``strategy`` (SCHEDULED or RESCHEDULED), of one of
        ``templates`` if given; None if there is none."""
        if strategy not in (FlowStatus.SCHEDULED, FlowStatus.RESCHEDULED):
            raise ValueError(
                f"Provided '{strategy}' is invalid for getting a runnable flow. Only "
                f"'{FlowStatus.SCHEDULED}' and '{FlowStatus.RESCHEDULED}' FlowStatuses can "
                "be run."
            )
        return next(self._runnable(strategy, templates), None)

    def _runnable(
        self, strategy: FlowStatus, templates: list[str] | None
    ) -> Iterator[FlowExecution]:
        queued = self.store.list_runs(status=rb.RunStatus.SCHEDULED, limit=100_000)
        for run in sorted(queued, key=lambda run: run.created_at):
            if flow_status(run) is strategy and (templates is None or run.flow in templates):
                yield self.get_flow_execution(run.run_id)

    def get_flow_task_execution_history(self, flow_execution_id: str) -> list[TaskExecution]:
        """Every task start and end of the execution, oldest first, over its attempts."""
        run = self.get_flow_execution(flow_execution_id).run
        assert run is not None
        reasons = {
            entry.attempt: entry.error
            for entry in self.store.history(run.run_id)
            if entry.status is rb.RunStatus.FAILED and entry.error is not None
        }
        history: list[TaskExecution] = []
        for attempt in range(1, run.attempt + 1):
            for stage in self.store.stage_runs(run.run_id, attempt=attempt):
                history += _task_entries(run.run_id, stage, reasons.get(attempt), len(history))
        return history

    def update_flow_status(
        self, flow_id: str, target_flow_status: FlowStatus, execution_context: Any = None
    ) -> FlowExecution:
        """Move an execution to ``target_flow_status`` by the seed's rules. Only
        RESCHEDULED is set from outside; riverbed sets the others as the run goes."""
        execution = self.get_flow_execution(flow_id)
        self.check_transition(execution.status, target_flow_status)
        if target_flow_status is not FlowStatus.RESCHEDULED:
            raise ValueError(
                f"{target_flow_status} is set by riverbed as the flow runs; only "
                f"{FlowStatus.RESCHEDULED} is set from outside"
            )
        self.store.transition(flow_id, rb.RunStatus.SCHEDULED, lease_until=None)
        return self.get_flow_execution(flow_id)


def _task_entries(
    run_id: str, stage: rb.StageRun, error: rb.StageError | None, step: int
) -> list[TaskExecution]:
    """The start and the end of one task (a stage run) as history entries."""
    name = stage.stage.split("-", 1)[-1]
    start = (stage.started_at or datetime.now(UTC)).timestamp()
    entries = [TaskExecution(run_id, step, name, TaskStatus.RUNNING, None, start)]
    if stage.status is rb.StageStatus.SUCCEEDED:
        end = TaskExecution(run_id, step + 1, name, TaskStatus.SUCCEEDED, None, start)
    elif stage.status is rb.StageStatus.FAILED:
        reason = f"{error.error_type}: {error.message}" if error is not None else "failed"
        end = TaskExecution(run_id, step + 1, name, TaskStatus.FAILED, reason, start)
    else:
        return entries
    if stage.ended_at is not None:
        end.timestamp = stage.ended_at.timestamp()
    return [*entries, end]


class FlowRunner:
    """Registers flow templates, schedules their executions and runs them."""

    def __init__(self, flow_service: FlowService | None = None) -> None:
        self.flow_service = flow_service or FlowService()
        self.flow_templates: dict[str, FlowTemplate] = {}
        self._flows: dict[str, rb.Flow] = {}

    def register_flow_template(self, flow_template: FlowTemplate) -> None:
        """Know ``flow_template`` (in memory, for this runner's life); its tasks' declared
        data is checked now."""
        name = flow_template.name
        if name in self.flow_templates:
            raise ValueError(f"Flow with name {name} is already registered.")
        self._flows[name] = flow_template.to_flow()
        self.flow_templates[name] = flow_template

    def get_flow_template(self, flow_name: str) -> FlowTemplate:
        """The registered template ``flow_name``."""
        try:
            return self.flow_templates[flow_name]
        except KeyError:
            raise KeyError(
                f"no flow template {flow_name!r} is registered; registered: "
                f"{sorted(self.flow_templates)}"
            ) from None

    def schedule_flow(self, flow_template_name: str, execution_context: ExecutionContext) -> str:
        """Queue an execution of the template on ``execution_context``; its id."""
        template = self.get_flow_template(flow_template_name)
        if not template.tasks:
            raise ValueError("Flow template has no tasks!")
        execution_context.to_json()  # JSON, or a TypeError naming the key
        missing = [k for k in template.required_keys() if k not in execution_context.context]
        if missing:
            raise ValueError(
                f"flow template {template.name!r} needs the context key(s) {missing}, which "
                "its tasks read before any task writes them"
            )
        # Queued for this dialect's FlowRunner.run_flow (the flow is built from the template,
        # so no worker could load it: it records no target).
        return rb.schedule(
            self._flows[template.name],
            dict(execution_context.context),
            store=self.flow_service.store,
            params={"dialect": "ebbs_and_flows"},
        )

    def run_flow(self, strategy: FlowStatus) -> str | None:
        """Run the oldest execution in ``strategy`` (SCHEDULED or RESCHEDULED) of this
        runner's templates, to its end or its first failed task; its id, or None."""
        service = self.flow_service
        service.get_runnable_flow(strategy)  # checks the strategy
        for execution in service._runnable(strategy, list(self.flow_templates)):
            flow = self._flows[execution.template_name]
            try:
                rb.run(flow, store=service.store, resume=execution.execution_id)
            except rb.RunNotResumableError:
                continue  # another process took it first: try the next one
            return execution.execution_id
        return None

    def reschedule_flow_execution(self, flow_execution_id: str) -> None:
        """Put a FAILED execution back into the queue (RESCHEDULED)."""
        self.flow_service.update_flow_status(flow_execution_id, FlowStatus.RESCHEDULED)

    def re_run_flow(self) -> str | None:
        """Run the oldest RESCHEDULED execution: from the task that failed."""
        return self.run_flow(FlowStatus.RESCHEDULED)

    def get_current_task(self, flow: FlowExecution) -> Task | None:
        """The task an execution is at."""
        return self.get_flow_template(flow.template_name).get_task(flow.current_task_index)

    def get_next_task(self, flow: FlowExecution) -> Task | None:
        """The task after it."""
        template = self.get_flow_template(flow.template_name)
        return template.get_task(flow.current_task_index + 1)
