"""A stream run's insides, for the tests that look into its state while it goes: the
``StreamRun`` a runner is given, run by the local runner with no store."""

from __future__ import annotations

from typing import Any

import riverbed as rb
from riverbed._model.plan import make_plan
from riverbed._runtime.clock import SystemClock
from riverbed._runtime.config import RunConfig
from riverbed._runtime.local.runner import LocalRunner
from riverbed._runtime.observer import Observers
from riverbed._runtime.stream import StreamRun


def stream_run(flow: rb.Flow, **options: Any) -> StreamRun:
    """The run the local runner would be given for ``flow`` (not recorded)."""
    config = RunConfig(store=False, progress=False, **options)
    plan = make_plan(flow.name, flow.stages, on_error=flow.on_error, retry=flow.retry)
    return StreamRun(flow, plan, config, "test-run", SystemClock(), Observers(()))


async def execute(run: StreamRun) -> BaseException | None:
    """Run ``run`` on the local runner; the error that stopped it, if any."""
    return await LocalRunner().run_stream(run)
