"""FlowKit's handler API: ``async iter_batches(loaded)`` and ``async process_batch(batch,
ctx)`` (or a plain callable standing for a handler), what ``process_batch`` returns, and
the ``ctx`` it is given."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchResult", "RunContext", "run_batch", "run_node", "stream_node"]


@dataclass(frozen=True)
class BatchResult:
    """What ``process_batch`` returns: whether the batch succeeded, and its metrics."""

    success: bool = True
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class RunContext:
    """The ``ctx`` a handler's ``process_batch`` gets: which task, node and worker."""

    task_id: str
    node_id: str
    worker_id: str
    params: Mapping[str, Any]


async def run_node(handler: Any, loaded: Any, ctx: RunContext) -> Any:
    """Run one node on ``loaded`` with ``handler``: the list of its batches' metrics (a
    plain callable: what it returns)."""
    if not hasattr(handler, "process_batch"):  # a plain callable: in a thread if sync
        return await _call(handler, loaded)
    return [metrics async for _, metrics in stream_node(handler, loaded, ctx)]


async def stream_node(handler: Any, loaded: Any, ctx: RunContext) -> AsyncIterator[Any]:
    """Run one node on ``loaded`` with ``handler``, yielding (batch, metrics) as each
    batch is processed."""
    if not hasattr(handler, "process_batch"):
        yield loaded, await _call(handler, loaded)
        return
    batches = handler.iter_batches(loaded) if hasattr(handler, "iter_batches") else [loaded]
    async for batch in _aiter(batches):
        yield batch, await run_batch(handler, batch, ctx)


async def run_batch(handler: Any, batch: Any, ctx: RunContext) -> Any:
    """Process one ``batch`` with ``handler``: its metrics (a plain callable: what it
    returns); a batch that fails raises."""
    if not hasattr(handler, "process_batch"):
        return await _call(handler, batch)
    outcome = _batch_result(await handler.process_batch(batch, ctx))
    if not outcome.success:
        raise RuntimeError(
            f"task {ctx.task_id}, node {ctx.node_id}: a batch failed"
            + (f": {outcome.error}" if outcome.error else "")
        )
    return dict(outcome.metrics)


def _batch_result(value: Any) -> BatchResult:
    """``process_batch``'s return as a ``BatchResult``."""
    if isinstance(value, BatchResult):
        return value
    if isinstance(value, bool):
        return BatchResult(value)
    if isinstance(value, tuple) and len(value) == 2:
        return BatchResult(bool(value[0]), dict(value[1] or {}))
    if isinstance(value, Mapping):
        return BatchResult(bool(value.get("success", True)), dict(value.get("metrics", value)))
    if value is None:
        return BatchResult()
    raise TypeError(f"process_batch returned {value!r:.80}; return a BatchResult or a bool")


async def _call(handler: Any, argument: Any) -> Any:
    """A plain callable's result: awaited if async, else called in a thread."""
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - the method itself
    ):
        return await handler(argument)
    return await asyncio.to_thread(handler, argument)


async def _aiter(batches: Any) -> AsyncIterator[Any]:
    """The batches of ``iter_batches``: an async iterator, or a plain iterable."""
    if hasattr(batches, "__aiter__"):
        async for batch in batches:
            yield batch
    else:
        for batch in await batches if inspect.isawaitable(batches) else batches:
            yield batch
