"""``rb.schedule``: a run put into the store's queue, for a worker to take."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from riverbed._model.flow import Flow
from riverbed._model.origin import origin_of
from riverbed._records import DEFAULT_QUEUE, RunRecord, RunStatus, new_run_id
from riverbed._run import opened
from riverbed._runtime.result import event_repr
from riverbed._runtime.workflow_shape import MISSING
from riverbed._store import Store

__all__ = ["schedule"]


def schedule(
    flow: Flow | str,
    input: Any = MISSING,
    *,
    store: Store | str | None = None,
    params: Mapping[str, Any] | None = None,
    queue: str = DEFAULT_QUEUE,
    run_id: str | None = None,
) -> str:
    """Put a run of ``flow`` into the store's queue, in the named ``queue``, and return
    its id: a worker serving that queue takes it (``rb.Worker(queues=[...])``,
    ``riverbed worker --queue``), as ``riverbed schedule`` does from a shell.

    >>> run_id = rb.schedule("app:orders", {"id": 8}, queue="payments")  # doctest: +SKIP

    ``flow``: the target naming the flow (``module:attr``, as ``riverbed run`` takes it),
    or a ``Flow``, whose target is the module attribute it is (a Flow found nowhere gets
    none: no worker can load it, and only Python resumes the run, with ``rb.run(flow,
    resume=RUN_ID)``). A target is loaded now, a function target called with ``params``, so
    that one that does not load fails here rather than in a worker. ``input``: the run's
    input (a workflow's). ``store``: a ``Store``, a URL, or None for the default store.
    ``params``: JSON-able, recorded with the run (a function target's keyword arguments).
    ``run_id``: the run's id, a new one if None (``DuplicateRunError`` if it is taken).
    """
    from riverbed._targets import load_flow  # the public API: loaded with the first use

    if not (store is None or isinstance(store, str | Store)):
        raise ValueError(
            f"store must be a Store, its URL or None for the default store, got {store!r:.80} "
            "(a scheduled run waits in a store's queue)"
        )
    target = flow if isinstance(flow, str) else origin_of(flow)
    built = load_flow(flow, params=params) if isinstance(flow, str) else flow
    arguments = dict(params or {})
    try:
        json.dumps(arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"params must be JSON-able (they are recorded with the run): {error}"
        ) from error
    given = input is not MISSING
    record = RunRecord(
        run_id=run_id or new_run_id(),
        flow=built.name,
        flow_version=built.version,
        status=RunStatus.SCHEDULED,
        params=arguments,
        input=pickle.dumps(input) if given else None,
        input_repr=event_repr(input) if given else None,
        target=target,
        created_at=datetime.now(UTC),
        queue=queue,
    )
    with opened(store) as resolved:
        assert resolved is not None
        resolved.enqueue(record)
    return record.run_id


schedule.__module__ = "riverbed"
