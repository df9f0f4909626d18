"""The front door of a run: ``Flow.run``, ``rb.run`` and ``rb.Worker`` as users call them.

It sits above the runtime (see docs/architecture.md): it resolves what the user gave in
their own words (a store URL, the default store, no store, the default runner) and hands
the runtime what it works with (an open ``Store``, a ``Runner``, a ``RunConfig``); the
runtime never opens a store by itself. A store opened here for a run is closed after it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Unpack

from riverbed._model.flow import Flow
from riverbed._model.origin import origin_of
from riverbed._runtime.config import RunConfig, RunOptions, options_doc, stream_only_options
from riverbed._runtime.execute import execute_stream
from riverbed._runtime.progress import ProgressObserver, wants_progress
from riverbed._runtime.ray.runner import RayRunner
from riverbed._runtime.result import RunResult
from riverbed._runtime.runner import Runner
from riverbed._runtime.worker import Worker as _Worker
from riverbed._runtime.workflow import WorkflowRun, execute_workflow
from riverbed._runtime.workflow_shape import MISSING
from riverbed._store import Store, open_store
from riverbed._store.url import check_url, resolve_url

__all__ = ["Worker", "arun", "arun_stream", "run", "run_stream", "store_url"]


def local_runner() -> Runner:
    """The local runner (its modules load with the first run, not with ``import
    riverbed``, which stays light)."""
    from riverbed._runtime.local.runner import LocalRunner

    return LocalRunner()


RUNNERS = ("local", "ray")
"""The names ``RIVERBED_RUNNER`` (and the CLI's ``--runner``) take."""


def default_runner(name: str | None = None) -> Runner:
    """The runner named ``name``, else by ``$RIVERBED_RUNNER``, else the local runner:
    ``ray`` is a ``RayRunner`` joining ``$RIVERBED_RAY_ADDRESS`` (unset: a local Ray
    instance, or the one this process joined) with ``$RIVERBED_RAY_PARALLELISM`` actors
    per stage (unset: the cluster's CPUs)."""
    chosen = name or os.environ.get("RIVERBED_RUNNER") or "local"
    if chosen == "local":
        return local_runner()
    if chosen == "ray":
        parallelism = os.environ.get("RIVERBED_RAY_PARALLELISM")
        return RayRunner(
            os.environ.get("RIVERBED_RAY_ADDRESS") or None,
            parallelism=int(parallelism) if parallelism else None,
        )
    source = "the runner" if name else "RIVERBED_RUNNER"
    raise ValueError(f"{source} must be one of {', '.join(RUNNERS)}, got {chosen!r}")


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
    live progress display added as an observer where it is wanted, and the metrics
    server where a port is given."""
    config = RunConfig.of(options)
    changes: dict[str, Any] = {}
    if config.target is None:
        changes["target"] = origin_of(flow)
    observers = list(config.observers)
    if wants_progress(config.progress):
        observers.append(ProgressObserver(flow.name))
    if config.metrics_port is not None:
        from riverbed._runtime.metrics import serve_metrics  # prometheus_client: an extra

        observers.append(serve_metrics(flow.name, config.metrics_port))
    if len(observers) != len(config.observers):
        changes["observers"] = tuple(observers)
    return config.but(**changes) if changes else config


def _refuse_inside_loop(call: str, instead: str) -> None:
    """A clear error for a blocking run started inside a running event loop (a notebook's,
    an async program's), which ``asyncio.run`` cannot serve."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"{call} was called inside a running event loop (a notebook's, an async "
        f"program's), which it cannot block: use `{instead}"
    )


def run_stream(flow: Flow, **options: Unpack[RunOptions]) -> RunResult:
    """``Flow.run``: run ``flow`` in a new event loop, with Ctrl-C handling."""
    _refuse_inside_loop("flow.run()", f"await flow.arun(...)` there (flow {flow.name!r})")
    config = _config(flow, dict(options))
    with opened(config.store) as store:
        runner = config.runner or default_runner()
        main = execute_stream(flow, config, store, runner, handle_signals=True)
        return asyncio.run(main)


async def arun_stream(flow: Flow, **options: Unpack[RunOptions]) -> RunResult:
    """``Flow.arun``: run ``flow`` on the running event loop."""
    config = _config(flow, dict(options))
    with opened(config.store) as store:
        return await execute_stream(flow, config, store, config.runner or default_runner())


def run(flow: Flow, input: Any = MISSING, **options: Unpack[RunOptions]) -> RunResult:
    """Run ``flow`` once and return its result, whatever kind of flow it is: a workflow
    (a flow that starts at ``flow.input()``) on ``input``, recording every step in the
    store; a stream (no ``input``) as ``flow.run(**options)`` runs it. A FAILED workflow
    run is returned, not raised (see ``result.error``); its output is ``result.output``.

    Options are ``Flow.run``'s. A workflow takes ``store``, ``run_id``, ``resume``,
    ``rerun_of``, ``target`` and ``observers``:

    ``store``: a ``Store``, a store URL, None for the default store (RIVERBED_STORE, else
    ``./.riverbed``), or False to record nothing (no durability; for tests and notebooks).
    ``resume``: the id of a run that failed, crashed or was cancelled: its recorded steps
    are replayed without calling their functions, and it goes on from the first
    unrecorded one (its recorded input is used; ``input`` may be left out). Resuming a run
    that succeeded returns its recorded result. ``rerun_of``: a new run on the input of
    that run (``input`` left out), its steps called again (``cache=True`` steps are not).
    ``target`` (``module:attr`` of the flow, found by itself when the flow is a module's
    attribute) is recorded so that ``riverbed runs resume``, ``riverbed runs recover``
    and workers can load the flow again; ``observers`` are told when the run is recorded
    and when it ends (``RunObserver``).

    >>> import riverbed as rb
    >>> flow = rb.Flow("order")
    >>> flow.input().map(str.strip).map(str.title).output()
    >>> rb.run(flow, "  ada lovelace ", store=False).output
    'Ada Lovelace'
    """
    if _is_stream(flow, input):
        return run_stream(flow, **options)
    _refuse_inside_loop("rb.run()", "await rb.arun(flow, input, ...)` there")
    spec = _workflow_run(flow, input, dict(options), blocking=True)
    return asyncio.run(_workflow(spec, options.get("store"), options.get("runner")))


async def arun(flow: Flow, input: Any = MISSING, **options: Unpack[RunOptions]) -> RunResult:
    """``run`` for code inside an event loop. Many ``arun`` calls awaited at once on one
    store share their commits (group commit).

    >>> result = await rb.arun(flow, "order-17", store=store)  # doctest: +SKIP
    """
    if _is_stream(flow, input):
        return await arun_stream(flow, **options)
    spec = _workflow_run(flow, input, dict(options), blocking=False)
    return await _workflow(spec, options.get("store"), options.get("runner"))


def _is_stream(flow: Flow, input: Any) -> bool:
    """True when ``rb.run(flow, input)`` runs a stream: no input, and no ``flow.input()``
    (given an input, a flow that is not a workflow is refused by the workflow's checks,
    which name its sources)."""
    if not isinstance(flow, Flow):
        raise TypeError(f"rb.run(flow, input) takes an rb.Flow first, got {flow!r:.80}")
    return input is MISSING and not flow.is_workflow


def _workflow_run(
    flow: Flow, input: Any, options: dict[str, Any], *, blocking: bool
) -> WorkflowRun:
    """How a workflow run starts, from ``rb.run``'s options; options that only a stream
    can take are refused, named."""
    extra = stream_only_options(options)
    if extra:
        raise TypeError(
            f"flow {flow.name!r} is a workflow, which takes no {', '.join(extra)}: those "
            "options are for streams (a workflow records each step instead of checkpoints)"
        )
    config = RunConfig.of(options)
    return WorkflowRun(
        flow,
        input,
        run_id=config.run_id,
        resume=config.resume,
        target=config.target,
        rerun_of=config.rerun_of,
        params=config.params,
        observers=tuple(config.observers),
        blocking=blocking,
    )


async def _workflow(
    spec: WorkflowRun, store: Store | str | bool | None, runner: Runner | None
) -> RunResult:
    if spec.target is None and isinstance(spec.flow, Flow):
        spec.target = origin_of(spec.flow)
    with opened(store) as resolved:
        return await execute_workflow(spec, resolved, runner or default_runner())


class Worker(_Worker):
    """Takes runs from a store's queue and runs them, one at a time.

    >>> worker = Worker("sqlite:///.riverbed/riverbed.db", idle_exit=0)  # doctest: +SKIP
    >>> worker.run()  # doctest: +SKIP

    ``store``: a ``Store``, a store URL, or None for the default store. ``runner``: what
    executes the runs it takes: a ``Runner`` (``rb.RayRunner(...)``), a runner's name
    (``"local"``, ``"ray"``), or None for ``$RIVERBED_RUNNER`` (else local). ``queues``: the
    queues whose runs it takes (``["default"]`` unless given; see ``RunRecord.queue``).
    ``poll``: the longest wait between claims when the queue is empty (it looks again
    within 0.05 s of a run, then less and less often); ``idle_exit``: stop after
    the queue has been empty that long (None: never); ``max_runs``: stop after that many
    runs; ``checkpoint_interval``: seconds between the checkpoints of the runs it runs (by
    default, that of ``Flow.run``). SIGTERM and Ctrl-C stop it cleanly: the run it holds
    goes back to the queue.
    """

    __module__ = "riverbed"

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        runner: Runner | str | None = None,
        **options: Any,
    ) -> None:
        if store is None or isinstance(store, str):
            store = open_store(store)
        if runner is None or isinstance(runner, str):
            runner = default_runner(runner)
        super().__init__(store, runner=runner, load_flow=_stored_flow, **options)


def _stored_flow(target: str, params: Mapping[str, Any]) -> Flow:
    """The flow of a recorded run's target, checked as a stored target is (see
    ``riverbed._targets``; a function target is called with the run's ``params``): loaded
    when a worker takes its run, not before."""
    from riverbed._targets import load_flow

    return load_flow(target, stored=True, params=params)


for _public in (run, arun, store_url):
    _public.__module__ = "riverbed"  # public as riverbed.run, riverbed.arun, ...

# ``Flow.run``'s options, listed in its docstring from ``RunConfig`` (declared once).
Flow.run.__doc__ = f"{Flow.run.__doc__}\n        Options (keywords):\n\n" + "\n".join(
    f"        - {line}" for line in options_doc().splitlines()
)
