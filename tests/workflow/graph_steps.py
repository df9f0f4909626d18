"""Handlers of the graph workflow tests, at module level so that Ray's workers import them.

They talk through files in a directory the test gives as inline input (``dir``): a file
per call (so that calls can be counted on any runner), and files other handlers wait for
(so that a test can prove that two nodes ran at once, or that a node started early).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

WAIT_SECONDS = 20.0


def _dir(loaded: Any) -> Path:
    """The test's directory, from the node's inline input (a root) or its ``input`` key."""
    inline = loaded.get("input", loaded) if isinstance(loaded, dict) else loaded
    return Path(inline["dir"])


def called(directory: Path, name: str) -> None:
    """Note one call of node ``name``."""
    (directory / f"call-{name}-{uuid.uuid4().hex[:8]}").touch()


def calls(directory: Path, name: str) -> int:
    """How many times node ``name`` was called."""
    return len(list(directory.glob(f"call-{name}-*")))


def wait_for(path: Path) -> None:
    """Wait until ``path`` exists; a TimeoutError if it does not come."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} never came")
        time.sleep(0.01)


def source(loaded: dict[str, Any]) -> dict[str, Any]:
    """A root: passes its inline input on, noting the call."""
    called(_dir(loaded), loaded["name"])
    return dict(loaded)


def add(loaded: dict[str, Any]) -> int:
    """The ``value`` of its inline input plus every upstream output (a root, given its
    inline input itself, has no upstream outputs)."""
    inline = loaded.get("input", loaded)
    called(_dir(loaded), inline["name"])
    upstream = (
        [value for key, value in loaded.items() if key != "input"] if inline is not loaded else []
    )
    return int(inline.get("value", 0) + sum(upstream))


def meet(loaded: dict[str, Any]) -> str:
    """Write its own mark, then wait for the mark of its ``partner``: two such nodes end
    only if they run at once."""
    directory = _dir(loaded)
    (directory / f"mark-{loaded['name']}").touch()
    wait_for(directory / f"mark-{loaded['partner']}")
    return str(loaded["name"])


def slow(loaded: dict[str, Any]) -> dict[str, Any]:
    """Wait for the mark ``after`` (written by a node downstream), then pass its input on:
    it finishes only after that node started."""
    directory = _dir(loaded)
    wait_for(directory / f"mark-{loaded['after']}")
    called(directory, loaded["name"])
    return dict(loaded)


def first(loaded: dict[str, Any]) -> list[str]:
    """Mark that it started, and return the names of the upstream nodes it was given."""
    inline = loaded["input"]
    (Path(inline["dir"]) / f"mark-{inline['name']}").touch()
    called(Path(inline["dir"]), inline["name"])
    return sorted(key for key in loaded if key != "input")


def flaky(loaded: dict[str, Any]) -> int:
    """Fails while the file ``broken`` exists in the test's directory."""
    directory = _dir(loaded)
    called(directory, loaded.get("input", loaded).get("name", "flaky"))
    if (directory / "broken").exists():
        raise ConnectionError("the service is down")
    return 100


HANDLERS = {
    "source": source,
    "add": add,
    "meet": meet,
    "slow": slow,
    "first": first,
    "flaky": flaky,
}


def hang_until_killed(loaded: dict[str, Any]) -> str:
    """Mark that it started, then wait for ever (the test kills its process)."""
    directory = _dir(loaded)
    called(directory, "hang")
    (directory / "mark-hang").touch()
    if (directory / "healed").exists():
        return "healed"
    time.sleep(3600)
    return "never"


CRASH_HANDLERS = {**HANDLERS, "hang": hang_until_killed}


def crash_graph(directory: str) -> dict[str, Any]:
    """root -> quick, root -> stuck (hangs until healed), (quick, stuck) -> join."""

    def node(node_id: str, kind: str, **inline: Any) -> dict[str, Any]:
        return {"id": node_id, "type": kind, "input": {"name": node_id, "dir": directory, **inline}}

    return {
        "name": "crash-graph",
        "nodes": [
            node("root", "add", value=1),
            node("quick", "add", value=10),
            node("stuck", "hang"),
            {"id": "join", "type": "keys"},
        ],
        "edges": [["root", "quick"], ["root", "stuck"], ["quick", "join"], ["stuck", "join"]],
    }


def keys(loaded: dict[str, Any]) -> list[Any]:
    """The upstream outputs it got, by node id order."""
    return [loaded[key] for key in sorted(loaded)]


CRASH_HANDLERS["keys"] = keys


if __name__ == "__main__":  # python -m tests.workflow.graph_steps STORE_URL DIR RUN_ID
    import sys

    import riverbed as rb

    url, directory, run_id = sys.argv[1:4]
    flow = rb.workflow_from_graph(crash_graph(directory), CRASH_HANDLERS)
    rb.run(flow, None, store=url, run_id=run_id)


def chunks(loaded: dict[str, Any]) -> Any:
    """A streaming node: yields its ``items`` in batches of two (with the test's
    directory); after the first batch it waits for the mark of the node it streams to,
    which proves that node started on it."""
    directory = _dir(loaded)
    called(directory, loaded["name"])
    items = loaded["items"]
    for start in range(0, len(items), 2):
        yield {"dir": str(directory), "items": items[start : start + 2]}
        if start == 0 and loaded.get("after"):
            wait_for(directory / f"mark-{loaded['after']}")


def total(batch: dict[str, Any]) -> int:
    """A first-batch node: marks that it started, and sums one batch."""
    (Path(batch["dir"]) / "mark-total").touch()
    return sum(batch["items"])


def sizes(loaded: dict[str, Any]) -> list[int]:
    """The size of every batch of every upstream node."""
    return [len(batch["items"]) for key in sorted(loaded) for batch in loaded[key]]


HANDLERS["chunks"] = chunks
HANDLERS["total"] = total
HANDLERS["sizes"] = sizes
