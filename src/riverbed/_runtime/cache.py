"""The step cache: a ``cache=True`` stage's outputs, memoized in the store by the stage's
name, its version and a digest of the input event.

A changed function body gives the stage a new version (``stage_version``), so its old
entries are simply never looked up again; other stages' entries are untouched. A hit
returns the outputs recorded by whichever run computed them first, without calling the
function: the function is assumed pure (its outputs depend on the event alone).

The digest is the SHA-256 of a canonical encoding of the event:

- JSON, when the event is strict JSON data (dicts with string keys, lists, strings,
  ints, floats, bools, None, nested): keys sorted, no spaces, so equal data gives equal
  digests in every process and on every machine, whatever the dicts' insertion order.
- pickle otherwise (tuples, dataclasses, datetimes...), protocol 5. Equal values usually
  pickle alike, but not always: a set of strings pickles in an order that depends on the
  process's hash seed, and a class renamed or moved changes the bytes. Such events then
  miss the cache (and are computed again); they never hit a wrong entry, since equal
  bytes mean an equal value. An event that cannot be pickled is not cached at all.

Tuples are not JSON (``json`` would write them as lists, making ``(1, 2)`` and ``[1, 2]``
collide), and neither are dicts with non-string keys (``{1: x}`` would collide with
``{"1": x}``): both go through pickle.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import pickle
from collections.abc import Awaitable, Callable
from typing import Any

from riverbed._model.serialize import stage_version
from riverbed._model.stages import Stage
from riverbed._store.protocol import Store

__all__ = ["StepCache", "event_digest"]


def _is_json(value: Any) -> bool:
    """True if ``value`` is made of JSON types only, so that JSON encodes it one-to-one."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return True
    if kind is list:
        return all(_is_json(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _is_json(item) for key, item in value.items())
    return False


def event_digest(event: Any) -> str | None:
    """The cache key of an event: ``sha256`` hex of its canonical encoding (see the module
    docstring), or None if it has none (it cannot be pickled).

    >>> event_digest({"b": 1, "a": [1, 2]}) == event_digest({"a": [1, 2], "b": 1})
    True
    >>> event_digest((1, 2)) == event_digest([1, 2])
    False
    """
    if _is_json(event):
        try:
            text = json.dumps(event, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except ValueError:  # NaN or infinity: not JSON after all
            pass
        else:
            return "j" + hashlib.sha256(text.encode()).hexdigest()
    try:
        data = pickle.dumps(event, protocol=5)
    except Exception:  # noqa: BLE001 - any error of a user's __reduce__: then not cached
        return None
    return "p" + hashlib.sha256(data).hexdigest()


class StepCache:
    """The step cache of one run, as stages see it: ``through`` returns a stage's outputs
    for an event from the store, or computes and stores them.

    >>> cache = StepCache(store, run_id="r1")  # doctest: +SKIP
    >>> await cache.through(stage, event, compute)  # doctest: +SKIP
    """

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._versions: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

    def version(self, stage: Stage) -> str:
        """The stage's version (worked out once per stage: it hashes the stage's code)."""
        version = self._versions.get(stage.name)
        if version is None:
            version = self._versions[stage.name] = stage_version(stage)
        return version

    async def through(
        self, stage: Stage, event: Any, compute: Callable[[], Awaitable[list[Any]]]
    ) -> list[Any]:
        """The outputs of ``stage`` for ``event``: cached ones if the store has them, else
        ``await compute()``, stored for next time (when they can be pickled)."""
        digest = event_digest(event)
        if digest is None:
            return await compute()
        version = self.version(stage)
        cached = await asyncio.to_thread(self.store.cache_get, stage.name, version, digest)
        if cached is not None:
            self.hits += 1
            outputs: list[Any] = pickle.loads(cached)
            return outputs
        self.misses += 1
        outputs = await compute()
        try:
            data = pickle.dumps(outputs, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - unpicklable outputs are passed on, not cached
            return outputs
        await asyncio.to_thread(
            self.store.cache_put, stage.name, version, digest, data, self.run_id
        )
        return outputs
