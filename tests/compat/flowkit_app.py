"""Handlers of the FlowKit dialect tests, and a worker process (``python -m
tests.compat.flowkit_app URL DIR``) that a test kills: its ``load`` handler marks that it
started and then hangs."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

from riverbed.compat.flowkit import BatchResult, RunContext, Worker, WorkerConfig


class MyHandler:
    """The seed quickstart's handler: one batch per word of ``data``, counted."""

    async def iter_batches(self, loaded: Any) -> Any:
        """One batch per word."""
        for word in loaded["data"].split():
            yield [word]

    async def process_batch(self, batch: list[str], ctx: RunContext) -> BatchResult:
        """Metrics of one batch."""
        return BatchResult(success=True, metrics={"words": len(batch), "node": ctx.node_id})


def note(directory: str, name: str) -> None:
    """Note one call of ``name`` in ``directory`` (counted by file, across processes)."""
    (Path(directory) / f"call-{name}-{uuid.uuid4().hex[:8]}").touch()


def calls(directory: Path, name: str) -> int:
    """How many calls of ``name`` were noted."""
    return len(list(directory.glob(f"call-{name}-*")))


def extract(loaded: Any) -> dict[str, Any]:
    """A plain-callable handler: notes its call, passes its inline input on."""
    note(loaded["dir"], "extract")
    return {"rows": loaded["rows"], "dir": loaded["dir"]}


def load_that_hangs(loaded: Any) -> int:
    """Marks that it started, then never returns (its process is killed)."""
    directory = loaded["extract"]["dir"]
    note(directory, "load")
    (Path(directory) / "load-started").touch()
    import time

    time.sleep(3600)
    return 0


def load(loaded: Any) -> int:
    """The healthy load: the number of rows extracted."""
    note(loaded["extract"]["dir"], "load")
    return len(loaded["extract"]["rows"])


async def serve(url: str) -> None:
    """A worker process serving ``extract`` and a ``load`` that hangs."""
    worker = Worker(
        db=url,
        cfg=WorkerConfig(roles=["extract", "load"], worker_id="doomed"),
        handlers={"extract": extract, "load": load_that_hangs},
    )
    await worker.start()
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
