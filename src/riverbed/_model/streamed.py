"""Streaming between the nodes of a graph workflow (``riverbed._model.dag``).

A node whose handler is a generator function (sync or ``async``) yields batches; its
output is the list of them. A node downstream of it with ``"start": "first_batch"`` (and
no other upstream node) does not wait for that list: it is called once per batch, as soon
as the batch is yielded, and its output is the list of its results.

Both nodes keep their steps, and each step is still committed before anything downstream
of it starts: the streamed calls happen inside the upstream node's step, whose recorded
output carries the downstream node's results beside the batches (``Streamed``); the
downstream node's step then takes its results from there, without calling anything. So
a crash or a retry of the upstream step calls the streamed node again on every batch
(at least once, as any step's function), and a recorded upstream step is never streamed
again.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from riverbed._model import callables

__all__ = ["Streamed", "batches_of", "call", "is_streaming", "stream"]


@dataclass(frozen=True)
class Streamed:
    """The output of a node that streamed its batches to first-batch nodes: the batches,
    and each such node's results by node id."""

    batches: list[Any]
    results: dict[str, list[Any]] = field(default_factory=dict)


def is_streaming(handler: Any) -> bool:
    """True if ``handler`` yields batches: a generator function, sync or ``async``, or an
    object whose ``__call__`` is one."""
    target = callables.unwrap(handler)
    call = target if inspect.isfunction(target) else getattr(target, "__call__", None)  # noqa: B004
    return inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call)


def batches_of(output: Any) -> Any:
    """What a node reading ``output`` is given: the batches of a ``Streamed`` output."""
    return output.batches if isinstance(output, Streamed) else output


async def call(handler: Any, argument: Any) -> Any:
    """``handler(argument)``: awaited if async, else in a thread (so that independent
    branches overlap)."""
    if callables.is_async(handler):
        return await handler(argument)
    return await asyncio.to_thread(handler, argument)


_END = object()


async def stream(handler: Any, argument: Any, readers: Sequence[tuple[str, Any]]) -> Any:
    """Run the generator ``handler`` on ``argument``, calling each of ``readers`` (node
    id, handler) on every batch as it comes; the list of batches, or a ``Streamed`` with
    the readers' results if there are readers."""
    batches: list[Any] = []
    results: dict[str, list[Any]] = {node: [] for node, _ in readers}
    produced = handler(argument)
    while True:
        if inspect.isasyncgen(produced):
            batch = await anext(produced, _END)
        else:  # a synchronous generator: each batch is computed in a thread
            batch = await asyncio.to_thread(next, produced, _END)
        if batch is _END:
            break
        batches.append(batch)
        for node, reader in readers:
            results[node].append(await call(reader, batch))
    return Streamed(batches, results) if readers else batches
