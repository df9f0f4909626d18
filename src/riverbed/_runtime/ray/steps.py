"""A workflow's step on Ray: the step's chain runs in a Ray task (with the stage's
resources), on the events that reached it, with the same executor as locally; its
outputs, counters and failures come back to the driver, which commits the step to the
store before anything downstream starts, as it does locally. A task whose worker or node
dies is run again elsewhere by Ray (up to the stage's retry attempts); a failure of the
user's function is handled inside the task by the stage's policy, as locally. A cached
step runs in the driver: its cache is the store's, which only the driver holds.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from riverbed._errors import StageFailedError
from riverbed._model.plan import Chain
from riverbed._model.stages import KEEPS_STATE
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.clock import SystemClock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.ray.actor import Reply
from riverbed._runtime.result import StageCounters
from riverbed._runtime.runner import Step
from riverbed._runtime.workflow import record_bytes

if TYPE_CHECKING:
    from riverbed._runtime.ray.runner import RayRunner

__all__ = ["run_step"]


async def run_step(step: Step, runner: RayRunner, ray: Any) -> dict[str, list[Any]]:
    """Run ``step`` as a Ray task; return its outputs per output port name."""
    chain = step.chain
    stage = chain.head
    if stage.cache:
        from riverbed._runtime.local.runner import LocalRunner

        return await LocalRunner().run_step(step)
    # A worker or node that dies is a system failure: Ray runs the task again, as many
    # times as the stage's policy would call it again.
    retries = chain.policies[0].retry.attempts - 1
    options = {**runner.resources_of(stage.name).actor_options(), "max_retries": retries}
    task = ray.remote(_step_task).options(**options)
    failures = step.failures
    reply: Reply = await task.remote(
        chain, step.events, failures.flow, failures.run_id, failures.max_errors
    )
    step.counters.restore(reply.counters[0])
    step.failures.adopt(reply.errors, reply.dead_letters, reply.fatal)
    if reply.failed is not None:
        raise StageFailedError(reply.failed, stage=stage.name, attempts=reply.attempts)
    by_port = {str(port): port.name for port in chain.exits}
    return {by_port[key]: items for key, items in reply.outputs.items() if key in by_port}


def _step_task(chain: Chain, events: list[Any], flow: str, run_id: str, max_errors: int) -> Reply:
    """The task's body, in a Ray worker."""
    import asyncio

    return asyncio.run(
        _in_worker(chain, events, FailureLog(flow, run_id=run_id, max_errors=max_errors))
    )


async def _in_worker(chain: Chain, events: list[Any], failures: FailureLog) -> Reply:
    stage = chain.head
    counters = StageCounters(stage.name, stage.kind)
    executor = ChainExecutor(
        chain,
        [counters],
        [{} if stage.kind in KEEPS_STATE else None],
        failures,
        SystemClock(),
        concurrency=stage.concurrency or 16,
        seed=random.getrandbits(64),
        compiled=False,
    )
    reply = Reply()
    try:
        for outputs in (await executor.process(events), await executor.finish()):
            for key, items in outputs.items():
                reply.outputs.setdefault(key, []).extend(items)
        await executor.close()
        _check_recordable(stage.name, reply, failures)
    except StageFailedError as failure:
        reply.failed = str(failure)
        reply.attempts = failure.attempts
        reply.fatal = failures.fatal
    reply.counters = [counters.values()]
    reply.errors = list(failures.errors)
    reply.dead_letters = list(failures.dead_letters)
    return reply


def _check_recordable(stage: str, reply: Reply, failures: FailureLog) -> None:
    """Fail the step here, as the driver would, if its outputs cannot be recorded: they could
    not travel back to the driver either (Ray pickles them), and the error would be Ray's."""
    what = f"stage {stage!r}"
    try:
        record_bytes(reply.outputs, f"{what}'s outputs", failures.flow, failures.run_id)
    except TypeError as error:
        reply.outputs = {}
        raise failures.stop(stage, error, what) from error
