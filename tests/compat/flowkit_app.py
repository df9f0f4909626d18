"""Handlers of the FlowKit dialect tests, and the processes they start (``python -m
tests.compat.flowkit_app URL MODE``, see ``serve``): workers of other processes, and ones
a test kills."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from riverbed.compat.flowkit import BatchResult, Coordinator, RunContext, Worker, WorkerConfig


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


def where(loaded: Any) -> dict[str, Any]:
    """A plain-callable handler: which process ran it, and what it was given."""
    return {"pid": os.getpid(), "loaded": loaded}


async def serve(url: str, mode: str) -> None:
    """A process serving, by ``mode``: ``doomed``, a worker of ``extract`` and a ``load``
    that hangs; ``extract``, a worker of ``extract`` only (``where``); ``coordinator``, a
    coordinator (which schedules the tasks it claims, then is killed)."""
    component: Any
    if mode == "doomed":
        component = Worker(
            db=url,
            cfg=WorkerConfig(roles=["extract", "load"], worker_id="doomed"),
            handlers={"extract": extract, "load": load_that_hangs},
        )
    elif mode == "extract":
        component = Worker(db=url, cfg=WorkerConfig(roles=["extract"]), handlers={"extract": where})
    else:
        component = Coordinator(db=url)
    await component.start()
    print("started", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "doomed"))
