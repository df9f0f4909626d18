"""The Ebbs and Flows dialect: its quickstart, the behaviours its document states
(statuses and their transitions, failures, re-runs), declared data, and its flows as
riverbed runs in the store (SQLite and PostgreSQL), listed by ``riverbed runs``."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from typer.testing import CliRunner

import riverbed as rb
from riverbed.cli import app
from riverbed.compat.ebbs_and_flows import (
    ExecutionContext,
    FlowRunner,
    FlowService,
    FlowStatus,
    FlowTemplate,
    PersistenceMode,
    Task,
    TaskDataItem,
    TaskStatus,
)

BROKEN: set[str] = set()


class SuccessfulTask(Task):
    def run(self, context: ExecutionContext) -> ExecutionContext:
        return context


class FailingTask(Task):
    def run(self, context: ExecutionContext) -> ExecutionContext:
        raise Exception("payment service down")


class Reserve(Task):
    def inputs(self) -> list[TaskDataItem]:
        return [TaskDataItem("order_id", int)]

    def outputs(self) -> list[TaskDataItem]:
        return [TaskDataItem("reserved", bool)]

    def run(self, context: ExecutionContext) -> ExecutionContext:
        context.set("reserved", True)
        return context


class Charge(Task):
    def inputs(self) -> list[TaskDataItem]:
        return [TaskDataItem("reserved", bool)]

    def outputs(self) -> list[TaskDataItem]:
        return [TaskDataItem("charged", float)]

    def run(self, context: ExecutionContext) -> ExecutionContext:
        if "charge" in BROKEN:
            raise ConnectionError("payment service down")
        out = ExecutionContext(context.context)
        out.set("charged", 25.0)
        return out


class Ship(Task):
    calls = 0

    def inputs(self) -> list[TaskDataItem]:
        return [TaskDataItem("charged", float)]

    def outputs(self) -> list[TaskDataItem]:
        return [TaskDataItem("tracking", str)]

    def run(self, context: ExecutionContext) -> ExecutionContext:
        Ship.calls += 1
        context.set("tracking", f"TRK-{context.get('order_id')}")
        return context


@pytest.fixture(autouse=True)
def _fixed() -> None:
    BROKEN.clear()
    Ship.calls = 0


def orders() -> FlowTemplate:
    template = FlowTemplate("orders")
    for task in (Reserve(), Charge(), Ship()):
        template.add_task(task)
    return template


def test_quickstart() -> None:
    """The seed's usage (from its test suite; its README shows no code), unchanged but
    the import line: register, schedule, run, query."""
    flow_service = FlowService(PersistenceMode.TRANSIENT)
    subject = FlowRunner(flow_service)

    flow_template = FlowTemplate("template")
    flow_template.add_task(SuccessfulTask())
    subject.register_flow_template(flow_template)
    assert subject.get_flow_template("template") == flow_template

    context = ExecutionContext()
    flow_id = subject.schedule_flow("template", context)
    assert flow_service.get_flow_execution(flow_id).status == FlowStatus.SCHEDULED

    subject.run_flow(FlowStatus.SCHEDULED)

    flow = flow_service.get_flow_execution(flow_id)
    assert flow.status == FlowStatus.SUCCEEDED
    flow_task_execution_history = flow_service.get_flow_task_execution_history(flow_id)
    assert len(flow_task_execution_history) == 2
    task_execution = flow_task_execution_history[1]
    assert task_execution.flow_execution_id == flow_id
    assert task_execution.status == TaskStatus.SUCCEEDED
    flow_service.close()


def test_a_failed_task_keeps_its_reason_and_the_flow_fails() -> None:
    """A task that raises fails the flow; its TaskExecution.output holds the reason."""
    with FlowService(PersistenceMode.TRANSIENT) as service:
        runner = FlowRunner(service)
        template = FlowTemplate("template")
        template.add_task(SuccessfulTask())
        template.add_task(FailingTask())
        runner.register_flow_template(template)
        flow_id = runner.schedule_flow("template", ExecutionContext())
        assert runner.run_flow(FlowStatus.SCHEDULED) == flow_id
        assert service.get_flow_execution(flow_id).status == FlowStatus.FAILED
        history = service.get_flow_task_execution_history(flow_id)
        assert [entry.status for entry in history] == [
            TaskStatus.RUNNING,
            TaskStatus.SUCCEEDED,
            TaskStatus.RUNNING,
            TaskStatus.FAILED,
        ]
        assert history[3].output == "Exception: payment service down"
        assert history[3].name == "FailingTask"


def test_a_rescheduled_flow_goes_on_from_the_failed_task(store: rb.Store) -> None:
    """Reschedule a failed flow, re-run it: the tasks that succeeded are not called
    again, the history grows by the re-run tasks, the context is the whole one."""
    service = FlowService(store)
    runner = FlowRunner(service)
    runner.register_flow_template(orders())
    BROKEN.add("charge")
    flow_id = runner.schedule_flow("orders", ExecutionContext({"order_id": 7}))
    runner.run_flow(FlowStatus.SCHEDULED)
    failed = service.get_flow_execution(flow_id)
    assert failed.status is FlowStatus.FAILED
    assert failed.current_task_index == 1
    assert runner.get_current_task(failed).__class__ is Charge
    assert len(service.get_flow_task_execution_history(flow_id)) == 4

    runner.reschedule_flow_execution(flow_id)
    assert service.get_flow_execution(flow_id).status is FlowStatus.RESCHEDULED
    assert runner.run_flow(FlowStatus.SCHEDULED) is None  # it is RESCHEDULED, not SCHEDULED
    BROKEN.clear()
    assert runner.re_run_flow() == flow_id

    done = service.get_flow_execution(flow_id)
    assert done.status is FlowStatus.SUCCEEDED
    assert done.execution_context.get("tracking") == "TRK-7"
    assert done.execution_context.context == {
        "order_id": 7,
        "reserved": True,
        "charged": 25.0,
        "tracking": "TRK-7",
    }
    history = service.get_flow_task_execution_history(flow_id)
    assert [entry.name for entry in history[4:]] == ["Charge", "Charge", "Ship", "Ship"]
    assert [entry.status for entry in history[4:]][1::2] == [TaskStatus.SUCCEEDED] * 2
    assert Ship.calls == 1
    run = store.get_run(flow_id)
    assert run.status is rb.RunStatus.SUCCEEDED
    assert run.attempt == 2
    # The statuses the run went through follow the seed's transitions.
    seen = [FlowStatus[entry.status.name] for entry in store.history(flow_id)]
    seen = [
        FlowStatus.RESCHEDULED if i and s is FlowStatus.SCHEDULED else s for i, s in enumerate(seen)
    ]
    assert seen == [
        FlowStatus.SCHEDULED,
        FlowStatus.RUNNING,
        FlowStatus.FAILED,
        FlowStatus.RESCHEDULED,
        FlowStatus.RUNNING,
        FlowStatus.SUCCEEDED,
    ]
    for origin, target in itertools.pairwise(seen):
        FlowService.check_transition(origin, target)


def test_run_flow_takes_the_oldest_scheduled_flow(store: rb.Store, on_runner: str) -> None:
    """run_flow(SCHEDULED) runs the oldest scheduled execution, one per call, on every
    runner."""
    runner = FlowRunner(FlowService(store))
    runner.register_flow_template(orders())
    first = runner.schedule_flow("orders", ExecutionContext({"order_id": 1}))
    second = runner.schedule_flow("orders", ExecutionContext({"order_id": 2}))
    assert runner.run_flow(FlowStatus.SCHEDULED) == first
    assert runner.flow_service.get_flow_execution(second).status is FlowStatus.SCHEDULED
    assert runner.run_flow(FlowStatus.SCHEDULED) == second
    assert runner.run_flow(FlowStatus.SCHEDULED) is None
    done = runner.flow_service.get_flow_execution(second)
    assert done.execution_context.get("tracking") == "TRK-2"
    assert done.run is not None
    assert (done.run.runner or "").startswith(on_runner)
    with pytest.raises(ValueError, match="invalid for getting a runnable flow"):
        runner.run_flow(FlowStatus.FAILED)


def test_the_seed_transitions_are_the_ones_allowed() -> None:
    """The document's FlowStatus transitions, and only them, are allowed."""
    allowed = {
        (FlowStatus.CREATED, FlowStatus.SCHEDULED),
        (FlowStatus.SCHEDULED, FlowStatus.RUNNING),
        (FlowStatus.RUNNING, FlowStatus.RUNNING),
        (FlowStatus.RUNNING, FlowStatus.FAILED),
        (FlowStatus.RUNNING, FlowStatus.SUCCEEDED),
        (FlowStatus.FAILED, FlowStatus.RESCHEDULED),
        (FlowStatus.RESCHEDULED, FlowStatus.RUNNING),
    }
    for origin in FlowStatus:
        for target in FlowStatus:
            if (origin, target) in allowed:
                FlowService.check_transition(origin, target)
            else:
                with pytest.raises(ValueError, match="is not allowed"):
                    FlowService.check_transition(origin, target)


def test_only_a_failed_flow_can_be_rescheduled(store: rb.Store) -> None:
    """Rescheduling a scheduled or succeeded flow is refused by the seed's rules."""
    runner = FlowRunner(FlowService(store))
    runner.register_flow_template(orders())
    flow_id = runner.schedule_flow("orders", ExecutionContext({"order_id": 1}))
    with pytest.raises(ValueError, match=r"SCHEDULED' to 'FlowStatus\.RESCHEDULED' is not"):
        runner.reschedule_flow_execution(flow_id)
    runner.run_flow(FlowStatus.SCHEDULED)
    with pytest.raises(ValueError, match=r"SUCCEEDED' to 'FlowStatus\.RESCHEDULED' is not"):
        runner.reschedule_flow_execution(flow_id)


def test_execution_context() -> None:
    """set refuses a key set already; JSON round trip; a non-JSON value names its key."""
    context = ExecutionContext()
    context.set("a", 1)
    with pytest.raises(ValueError, match="'a' already"):
        context.set("a", 2)
    assert context.get("a") == 1
    assert ExecutionContext.from_json(context.to_json()) == context
    context.set("when", object())
    with pytest.raises(TypeError, match="'when'"):
        context.to_json()


def test_declared_data_is_checked_when_the_template_is_registered() -> None:
    """Keys read before any task writes them must come with the scheduled context (a
    ValueError naming them at schedule time); a task writing a key the context or a
    task before it brings is refused at register time, naming task and key."""
    template = FlowTemplate("backwards")
    template.add_task(Charge())  # reads 'reserved': the context must bring it...
    template.add_task(Reserve())  # ...so Reserve may not write it
    with FlowService(PersistenceMode.TRANSIENT) as service:
        runner = FlowRunner(service)
        with pytest.raises(
            rb.FlowDefinitionError,
            match="'1-Reserve' writes context key 'reserved', which step 'input'",
        ):
            runner.register_flow_template(template)
        runner.register_flow_template(orders())
        with pytest.raises(ValueError, match=r"needs the context key\(s\) \['order_id'\]"):
            runner.schedule_flow("orders", ExecutionContext())


def test_a_task_breaking_the_context_fails_naming_the_key() -> None:
    """A task putting a non-JSON value, or a value of the wrong type, fails its flow."""

    class Stamp(Task):
        def run(self, context: ExecutionContext) -> ExecutionContext:
            context.set("when", {1, 2})
            return context

    class Miscount(Reserve):
        def run(self, context: ExecutionContext) -> ExecutionContext:
            context.set("reserved", "yes")
            return context

    with FlowService(PersistenceMode.TRANSIENT) as service:
        runner = FlowRunner(service)
        for name, task in (("stamp", Stamp()), ("miscount", Miscount())):
            template = FlowTemplate(name)
            template.add_task(task)
            runner.register_flow_template(template)
            flow_id = runner.schedule_flow(name, ExecutionContext({"order_id": 1}))
            runner.run_flow(FlowStatus.SCHEDULED)
            output = service.get_flow_task_execution_history(flow_id)[-1].output or ""
            assert "TypeError" in output
            assert ("'when'" if name == "stamp" else "'reserved' as bool") in output


def test_dialect_flows_are_riverbed_runs_listed_by_the_cli(store_url: str) -> None:
    """Scheduled and finished executions are riverbed runs: `riverbed runs list` shows
    them with their statuses."""
    with FlowService(store_url) as service:
        runner = FlowRunner(service)
        runner.register_flow_template(orders())
        ran = runner.schedule_flow("orders", ExecutionContext({"order_id": 1}))
        runner.run_flow(FlowStatus.SCHEDULED)
        queued = runner.schedule_flow("orders", ExecutionContext({"order_id": 2}))
    listed = CliRunner().invoke(app, ["runs", "list", "--store", store_url, "--json"])
    assert listed.exit_code == 0, listed.output
    rows: Any = json.loads(listed.stdout)
    statuses = {row["run_id"]: row["status"] for row in rows}
    assert statuses == {ran: "succeeded", queued: "scheduled"}
