"""What a stage is and what its policy does with a failure: the closed sets that the
model declares a flow with and that the records of a run keep (a stage run's ``kind``, an
error's ``action``). They sit at the bottom with the records, so that a record holds the
enum itself; strings appear only in the store's codec and in the JSON module.

The model re-exports them where they are declared for users (``riverbed._model.stages``,
``riverbed._model.policy``); the public names are ``riverbed.StageKind`` and
``riverbed.OnError``.
"""

from __future__ import annotations

import enum

__all__ = ["OnError", "StageKind"]


class StageKind(enum.Enum):
    """What a stage does with the events it receives."""

    SOURCE = "source"
    """Emits events read from a source; has no input."""
    MAP = "map"
    """One output per input: ``fn(event)``."""
    FLAT_MAP = "flat_map"
    """Zero or more outputs per input: every item of ``fn(event)``."""
    FILTER = "filter"
    """Keeps the events for which ``fn(event)`` is true."""
    INSPECT = "inspect"
    """Calls ``fn(event)`` for its side effect and passes the event on unchanged."""
    KEY_BY = "key_by"
    """Turns ``event`` into the pair ``(fn(event), event)``; downstream stages are keyed."""
    STATEFUL = "stateful"
    """Per-key state: a class instance and its method, or ``fn(state, value)``."""
    FOLD = "fold"
    """Per-key accumulator ``fn(acc, value)``; emits at end of stream (or on every event)."""
    BRANCH = "branch"
    """Sends each event to one of two outputs, ``true`` or ``false``, by a predicate."""
    ROUTE = "route"
    """Sends each event to the named output that ``fn(event)`` returns."""
    MERGE = "merge"
    """Fan-in: the events of several streams, as one stream."""
    PROCESS = "process"
    """A processor with memory and time (windows, joins, collect, sample...): ``fn`` is its
    spec, a ``ProcessorSpec``; see ``riverbed._model.process``."""
    SINK = "sink"
    """Consumes events: a callable per event, a callable per batch, or a sink object."""

    __module__ = "riverbed"


class OnError(enum.Enum):
    """What happens to an event whose stage failed (after retries ran out)."""

    STOP = "stop"
    """Stop the whole run; it ends FAILED with this error. The default."""
    SKIP = "skip"
    """Drop this event at this stage; the run goes on. Counted in the stage's ``skipped``."""
    CONTINUE = "continue"
    """Pass the event on unchanged, as if this stage were the identity for it."""
    DEAD_LETTER = "dead_letter"
    """Drop the event here and keep it, with its error, in the run's dead letters."""

    __module__ = "riverbed"
