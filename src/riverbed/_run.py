"""The front door of a run: ``Flow.run``, ``rb.run`` and ``rb.Worker`` as users call them.

It sits above the runtime (see docs/architecture.md): it resolves what the user gave in
their own words (a store URL, the default store, no store, the default runner) and hands
the runtime what it works with (an open ``Store``, a ``Runner``, a ``RunConfig``); the
runtime never opens a store by itself. A store opened here for a run is closed after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Unpack

from riverbed._model.flow import Flow
from riverbed._model.origin import origin_of
from riverbed._runtime.config import RunConfig, RunOptions, options_doc
from riverbed._runtime.execute import execute_stream
from riverbed._runtime.observer import RunObserver
from riverbed._runtime.progress import ProgressObserver, wants_progress
from riverbed._runtime.result import RunResult
from riverbed._runtime.runner import Runner
from riverbed._runtime.worker import Worker as _Worker
from riverbed._runtime.workflow import MISSING, WorkflowRun, execute_workflow
from riverbed._store import Store, open_store
from riverbed._store.url import check_url, resolve_url

__all__ = ["Worker", "arun", "arun_stream", "run", "run_stream", "store_url"]


def local_runner() -> Runner:
    """The local runner (its modules load with the first run, not with ``import
    riverbed``, which stays light)."""
    from riverbed._runtime.local.runner import LocalRunner

    return LocalRunner()


@contextmanager
def opened(store: Store | str | bool | None) -> Iterator[Store | None]:
    """The store a run records into: a ``Store`` as it is, a URL opened (and closed after
    the run), None for the default store (RIVERBED_STORE, else ``./.riverbed``), or False
    for none."""
    if store is False:
        yield None
        return
    if store is None or store is True or isinstance(store, str):
        with open_store(store if isinstance(store, str) else None) as own:
            yield own
        return
    yield store


def store_url(url: str | None = None) -> str:
    """The URL of the store that ``open_store(url)`` opens: ``url``, else
    ``$RIVERBED_STORE``, else ``sqlite:///.riverbed/riverbed.db``; checked without opening
    anything. A URL that names no store (an unknown scheme, a SQLite URL without a file)
    raises the ``StoreError`` that ``open_store`` would: the mistake of whoever wrote it,
    told apart from a store that fails to open.

    >>> import riverbed as rb
    >>> rb.store_url("sqlite:///runs.db")
    'sqlite:///runs.db'
    """
    resolved = resolve_url(url)
    check_url(resolved)
    return resolved


def _config(flow: Flow, options: dict[str, Any]) -> RunConfig:
    """The run's configuration, its defaults resolved: the flow's TARGET found, the
    live progress display added as an observer where it is wanted."""
    config = RunConfig.of(options)
    changes: dict[str, Any] = {}
    if config.target is None:
        changes["target"] = origin_of(flow)
    if wants_progress(config.progress):
        changes["observers"] = (*config.observers, ProgressObserver(flow.name))
    return config.but(**changes) if changes else config


def run_stream(flow: Flow, **options: Unpack[RunOptions]) -> RunResult:
    """``Flow.run``: run ``flow`` in a new event loop, with Ctrl-C handling."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            f"flow.run() was called inside a running event loop (a notebook's, an async "
            f"program's), which it cannot block: use `await flow.arun(...)` there "
            f"(flow {flow.name!r})"
        )
    config = _config(flow, dict(options))
    with opened(config.store) as store:
        main = execute_stream(flow, config, store, local_runner(), handle_signals=True)
        return asyncio.run(main)


async def arun_stream(flow: Flow, **options: Unpack[RunOptions]) -> RunResult:
    """``Flow.arun``: run ``flow`` on the running event loop."""
    config = _config(flow, dict(options))
    with opened(config.store) as store:
        return await execute_stream(flow, config, store, local_runner())


def run(
    flow: Flow,
    input: Any = MISSING,
    *,
    store: Store | str | bool | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    target: str | None = None,
    rerun_of: str | None = None,
    observers: Sequence[RunObserver] = (),
) -> RunResult:
    """Run the workflow ``flow`` on ``input``, recording every step in ``store``; return
    its result (a FAILED run is returned, not raised: see ``result.error``; its output is
    ``result.output``).

    ``store``: a ``Store``, a store URL, None for the default store (RIVERBED_STORE, else
    ``./.riverbed``), or False to record nothing (no durability; for tests and notebooks).
    ``resume``: the id of a run that failed, crashed or was cancelled: its recorded steps
    are replayed without calling their functions, and it goes on from the first
    unrecorded one (its recorded input is used; ``input`` may be left out). Resuming a run
    that succeeded returns its recorded result. ``target`` (``module:attr`` of the flow,
    found by itself when the flow is a module's attribute) is recorded so that ``riverbed
    runs resume``, ``riverbed runs recover`` and workers can load the flow again;
    ``rerun_of`` records the run this new one re-runs; ``observers`` are told when the run
    is recorded and when it ends (``RunObserver``).

    >>> import riverbed as rb
    >>> flow = rb.Flow("order")
    >>> flow.input().map(str.strip).map(str.title).output()
    >>> rb.run(flow, "  ada lovelace ", store=False).output
    'Ada Lovelace'
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "rb.run() was called inside a running event loop, which it cannot block: use "
            "`await rb.arun(flow, input, ...)` there"
        )
    spec = WorkflowRun(
        flow, input, run_id, resume, False, target, rerun_of, tuple(observers), blocking=True
    )
    return asyncio.run(_workflow(spec, store))


async def arun(
    flow: Flow,
    input: Any = MISSING,
    *,
    store: Store | str | bool | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    target: str | None = None,
    rerun_of: str | None = None,
    observers: Sequence[RunObserver] = (),
) -> RunResult:
    """``run`` for code inside an event loop. Many ``arun`` calls awaited at once on one
    store share their commits (group commit).

    >>> result = await rb.arun(flow, "order-17", store=store)  # doctest: +SKIP
    """
    spec = WorkflowRun(flow, input, run_id, resume, False, target, rerun_of, tuple(observers))
    return await _workflow(spec, store)


async def _workflow(spec: WorkflowRun, store: Store | str | bool | None) -> RunResult:
    if spec.target is None and isinstance(spec.flow, Flow):
        spec.target = origin_of(spec.flow)
    with opened(store) as resolved:
        return await execute_workflow(spec, resolved, local_runner())


class Worker(_Worker):
    """Takes runs from a store's queue and runs them, one at a time.

    >>> worker = Worker("sqlite:///.riverbed/riverbed.db", idle_exit=0)  # doctest: +SKIP
    >>> worker.run()  # doctest: +SKIP

    ``store``: a ``Store``, a store URL, or None for the default store. ``poll``: seconds
    between claims when the queue is empty; ``idle_exit``: stop after the queue has been
    empty that long (None: never); ``max_runs``: stop after that many runs;
    ``checkpoint_interval``: seconds between the checkpoints of the runs it runs (by
    default, that of ``Flow.run``). SIGTERM and Ctrl-C stop it cleanly: the run it holds
    goes back to the queue.
    """

    __module__ = "riverbed"

    def __init__(self, store: Store | str | None = None, **options: Any) -> None:
        if store is None or isinstance(store, str):
            store = open_store(store)
        super().__init__(store, **options)


for _public in (run, arun, store_url):
    _public.__module__ = "riverbed"  # public as riverbed.run, riverbed.arun, ...

# ``Flow.run``'s options, listed in its docstring from ``RunConfig`` (declared once).
Flow.run.__doc__ = f"{Flow.run.__doc__}\n        Options (keywords):\n\n" + "\n".join(
    f"        - {line}" for line in options_doc().splitlines()
)
