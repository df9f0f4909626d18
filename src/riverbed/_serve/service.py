"""The flow's run inside a service: started with the application, on its event loop
(the HTTP handlers and the run's reader share it: no thread between them), and stopped
with it: the HTTP sources end, what they accepted drains through the flow, the run ends
(with a store: after a last checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import riverbed as rb

__all__ = ["Service"]

logger = logging.getLogger("riverbed")

DURABLE_CHECKPOINT_INTERVAL = 0.2
"""Seconds between the checkpoints of a service with a store, unless told otherwise: a
durable accept (202) waits for the next one, so this is most of its latency."""


class Service:
    """A flow served over HTTP: its HTTP sources by name, its run, its metrics."""

    def __init__(
        self,
        flow: rb.Flow,
        *,
        store: str | rb.Store | bool | None = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(flow, rb.Flow):
            raise TypeError(f"riverbed serve takes an rb.Flow, got {flow!r:.80}")
        self.flow = flow
        self.sources: dict[str, rb.HTTPSource] = {
            stage.fn.name: stage.fn
            for stage in flow.stages
            if stage.kind is rb.StageKind.SOURCE and isinstance(stage.fn, rb.HTTPSource)
        }
        if not self.sources:
            raise ValueError(
                f"flow {flow.name!r} has no HTTP source to serve: declare one with "
                "flow.source(rb.http('name'))"
            )
        chosen = os.environ.get("RIVERBED_RUNNER") or "local"
        if (options or {}).get("runner") is not None or chosen != "local":
            raise ValueError(
                "riverbed serve runs its flow in the serving process (the local runner): its "
                "HTTP sources and rb.reply() share the process with the HTTP server; unset "
                "RIVERBED_RUNNER or set it to 'local'"
            )
        self.store = store
        self.durable = store is not False
        self.metrics = rb.MetricsObserver(flow.name)
        self.options = dict(options or {})
        self.task: asyncio.Task[rb.RunResult] | None = None

    @property
    def ready(self) -> bool:
        """True while the run goes on and reads every HTTP source."""
        running = self.task is not None and not self.task.done()
        return running and all(source.ready for source in self.sources.values())

    @property
    def result(self) -> rb.RunResult | None:
        """The run's result once it ended (None while it runs)."""
        if self.task is None or not self.task.done() or self.task.cancelled():
            return None
        return self.task.result() if self.task.exception() is None else None

    async def start(self, wait: float = 30.0) -> None:
        """Start the run; return once it reads every HTTP source (or has ended, or
        ``wait`` seconds passed: ``/readyz`` tells which)."""
        options: dict[str, Any] = {
            "store": self.store,
            "progress": False,
            "raise_on_failure": False,
            **self.options,
        }
        options["observers"] = (*options.get("observers", ()), self.metrics)
        if self.durable:
            options.setdefault("checkpoint_interval", DURABLE_CHECKPOINT_INTERVAL)
        self.task = asyncio.get_running_loop().create_task(self.flow.arun(**options))
        self.task.add_done_callback(self._ended)
        deadline = asyncio.get_running_loop().time() + wait
        while not self.ready and not self.task.done():
            if asyncio.get_running_loop().time() > deadline:
                logger.warning("flow %r: not reading its HTTP sources yet", self.flow.name)
                return
            await asyncio.sleep(0.005)

    async def stop(self, grace: float = 10.0) -> None:
        """End the HTTP sources and let the run drain; cancel it after ``grace`` seconds."""
        if self.task is None:
            return
        for source in self.sources.values():
            source.end()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        except Exception:  # noqa: BLE001 - logged by _ended; stopping goes on
            pass

    def _ended(self, task: asyncio.Task[rb.RunResult]) -> None:
        for source in self.sources.values():  # nothing will answer them now
            source.abandon(f"the run of flow {self.flow.name!r} has ended")
        if task.cancelled():
            logger.warning("flow %r: its run was cancelled", self.flow.name)
        elif task.exception() is not None:
            logger.error("flow %r: its run failed", self.flow.name, exc_info=task.exception())
        else:
            result = task.result()
            logger.info("flow %r: run %s %s", self.flow.name, result.run_id, result.status.value)
