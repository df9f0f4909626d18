"""Flows that the HTTP tests serve with ``riverbed serve`` in a process of its own."""

from __future__ import annotations

import asyncio

import riverbed as rb


async def _double(request: rb.Request) -> rb.Reply:
    """Answers ``{"n": n}`` with ``{"n": n, "double": 2n}``, after up to 6 ms: calls in
    flight together are answered out of order."""
    await asyncio.sleep(0.001 * (request.body["n"] % 7))
    return request.reply({"n": request.body["n"], "double": 2 * request.body["n"]})


doubling = rb.Flow("doubling")
doubling.source(rb.http("double", reply=True), name="double").parallel_map(
    _double, workers=256, ordered=False, mode="async"
).sink(rb.reply())
