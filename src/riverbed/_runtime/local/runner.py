"""The local runner: runs in this process, on its asyncio event loop."""

from __future__ import annotations

import contextlib
import random
from typing import Any

from riverbed._errors import StageFailedError
from riverbed._model.stages import KEEPS_STATE, Stage
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.local.stream import LocalStream
from riverbed._runtime.runner import Step
from riverbed._runtime.stream import StreamRun

__all__ = ["LocalRunner"]


class LocalRunner:
    """Runs flows in this process: one task per source partition and per chain (see
    ``LocalStream``); a workflow's steps one after the other, each in the loop."""

    name = "local"
    where = "local"

    def exchange_before(self, stage: Stage) -> bool:
        """Never: every chain runs in this process."""
        return False

    async def run_stream(self, run: StreamRun) -> BaseException | None:
        return await LocalStream(run).execute()

    async def run_step(self, step: Step) -> dict[str, list[Any]]:
        chain = step.chain
        stage = chain.head
        executor = ChainExecutor(
            chain,
            [step.counters],
            [{} if stage.kind in KEEPS_STATE else None],
            step.failures,
            step.clock,
            concurrency=stage.concurrency or 16,
            # A seed from the process's generator: seeding each executor from the OS's
            # randomness would cost a system call per step.
            seed=random.getrandbits(64),
            step_cache=step.cache,
            compiled=False,
        )
        produced: dict[str, list[Any]] = {}
        try:
            for outputs in (await executor.process(step.events), await executor.finish()):
                for key, items in outputs.items():
                    produced.setdefault(key, []).extend(items)
        except StageFailedError:
            with contextlib.suppress(StageFailedError):  # the step's own error comes first
                await executor.close()
            raise
        await executor.close()  # a sink that fails to close fails the step
        by_port = {str(port): port.name for port in chain.exits}
        return {by_port[key]: items for key, items in produced.items() if key in by_port}
