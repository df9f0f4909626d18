"""The two services SERVE compares, doing the same work per event: decode the JSON, count
the events and sum their ids; answer a call with ``{"id": id, "double": 2 * value}``.

- ``counting``: a riverbed flow served by ``riverbed serve``: ``rb.http("count")`` into a
  counting sink, ``rb.http("call", reply=True)`` answered through ``rb.reply()``.
- ``bare``: a bare FastAPI application with the same endpoints, the counting inline.

Each tells its count: riverbed through ``/metrics``, the bare one at ``GET /count``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

import riverbed as rb


class Counter:
    """The counting sink: events seen and the sum of their ids."""

    def __init__(self) -> None:
        self.count = 0
        self.ids = 0

    def write_batch(self, events: list[dict[str, Any]]) -> None:
        """Count ``events``."""
        self.count += len(events)
        self.ids += sum(event["id"] for event in events)


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """A call's answer."""
    return {"id": body["id"], "double": 2 * body["value"]}


counting = rb.Flow("serve-bench")
counting.source(rb.http("count", capacity=100_000), name="count").sink(Counter(), name="counted")
counting.source(rb.http("call", reply=True), name="call").map(
    lambda request: request.reply(answer(request.body)), name="answer"
).sink(rb.reply(), name="replied")


bare = FastAPI()
_bare_counter = Counter()


@bare.post("/events/count", status_code=202)
async def _count(request: Request) -> Response:
    value = json.loads(await request.body())
    events = value if isinstance(value, list) else [value]
    _bare_counter.write_batch(events)
    return JSONResponse({"accepted": len(events), "durable": False}, 202)


@bare.post("/events/call")
async def _call(request: Request) -> Response:
    return JSONResponse(answer(json.loads(await request.body())))


@bare.get("/count")
async def _counted() -> dict[str, int]:
    return {"count": _bare_counter.count, "ids": _bare_counter.ids}
