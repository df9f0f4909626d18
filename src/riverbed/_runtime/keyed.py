"""Per-key checkpoints: which keys of a stage's state changed since the last checkpoint,
and the rows a checkpoint writes for them.

A ``stateful``, ``fold`` or ``reduce`` stage keeps a dict of per-key states. When the run
takes checkpoints, every write of a key's state (by the generated loop or the slow path)
marks the key in the stage's ``ChangedKeys``; a checkpoint then serializes only the keys
marked since the one before, at its cut, and the store keeps one row per key, over a row
with the whole state as it was last written whole (``WHOLE``: when many keys changed at
once, writing the dict whole is cheaper). A run that takes no checkpoints has no
``ChangedKeys``: its loop marks nothing and pays nothing.

Processors and operators (windows, sessions, joins, ``parallel_map``, ``batch_map``) keep
one object of their own shape per stage: checkpoints write it whole (``KEYED_KINDS``).
"""

from __future__ import annotations

import pickle
from typing import Any

from riverbed._model.stages import PER_KEY_STATE

__all__ = ["KEYED_KINDS", "WHOLE", "ChangedKeys", "Rows", "apply_rows"]

KEYED_KINDS = PER_KEY_STATE
"""Stage kinds whose state checkpoints write per key (``fold`` includes ``reduce``)."""

Rows = dict[bytes, bytes | None]
"""A stage's rows in a checkpoint: serialized key -> serialized state (None: removed); the
key ``WHOLE`` holds the whole state (a serialized dict) that the other rows change."""

WHOLE = b""
"""The row key of a stage's whole state (no pickle is empty, so no key is this)."""

WHOLE_FRACTION = 0.1
"""A checkpoint writes a stage whole, in one row, when more than this fraction of its keys
changed: pickling and storing a dict at once costs from a fiftieth (small values) to a
third (objects) of doing it key by key (measured per key: about 5 to 7 us one by one,
0.1 to 2 us at once), so per key pays only when few keys changed."""

REWRITE_SLACK = 1_000
"""Rows a stage may write key by key beyond its number of live keys before its next
checkpoint writes it whole again (replacing every row it had, removal markers too): the
store holds at most about twice a stage's state, and rewriting it costs no more than the
rows written since did."""

_PROTOCOL = pickle.HIGHEST_PROTOCOL


class ChangedKeys:
    """One keyed stage's state, and the keys whose state changed since the last
    checkpoint. Whoever writes a key's state calls ``mark(key)`` (it is ``set.add``: a C
    call, the only cost on the hot path)."""

    def __init__(self, state: dict[Any, Any], *, complete: bool = False) -> None:
        self.state = state
        self.keys: set[Any] = set()
        """The keys changed (or removed) since the last checkpoint."""
        self.mark = self.keys.add
        self.complete = complete
        """True: the next checkpoint writes the whole state (the store has none of this
        stage's rows for this run, or rows it must forget)."""
        self.written = 0
        """Rows written key by key since the stage was last written whole."""
        self.forced: bool | None = None
        """Set by a runner that decides for several holders of one stage's keys (the
        Ray runner's actors): True, the next checkpoint writes this state whole; False,
        key by key; None, ``take`` decides by itself."""

    def take(self) -> tuple[Rows, bool]:
        """The rows of the next checkpoint, serialized now (at its cut), and whether they
        are the whole state; the changed keys start again from none. A state that cannot
        be pickled raises (written key by key, with a note naming its key)."""
        state, changed = self.state, len(self.keys)
        whole = self.forced
        if whole is None:
            whole = (
                self.complete
                or changed > WHOLE_FRACTION * len(state)
                or self.written + changed > len(state) + REWRITE_SLACK
            )
        if whole:
            rows: Rows = {WHOLE: pickle.dumps(state, protocol=_PROTOCOL)}
            self.complete = False
            self.written = 0
        else:
            rows = {}
            for key in self.keys:
                value = state.get(key, _REMOVED)
                removed = value is _REMOVED
                rows[_dumps(key, key)] = None if removed else _dumps(key, value)
            self.written += changed
        self.keys.clear()
        return rows, whole


_REMOVED: Any = object()


_FRAME = 0x95
"""The pickle opcode FRAME (protocol 4 and up): 1 byte and an 8-byte length."""


def _dumps(key: Any, value: Any) -> bytes:
    """``value`` pickled on its own, for one row."""
    try:
        data = pickle.dumps(value, protocol=_PROTOCOL)
    except Exception as error:
        error.add_note(f"(pickling the state of key {key!r})")
        raise
    # A pickle under 64 KiB is at most one frame, right after the protocol opcode. Its
    # header only helps readers of large pickles, and would be half of a small key's row:
    # without it the pickle reads the same.
    if len(data) < 65_536 and data[2] == _FRAME:
        return data[:2] + data[11:]
    return data


def apply_rows(state: dict[Any, Any], rows: Rows) -> dict[Any, Any]:
    """Apply a keyed stage's rows, read back oldest first, to ``state``: the whole state,
    then each key's state set, or removed for a marker. Keys that are equal but pickled
    differently (1 and 1.0) come out right because the rows are applied in the order they
    were written."""
    loads = pickle.loads
    for key, value in rows.items():
        if value is None:
            state.pop(loads(key), None)
        elif key == WHOLE:
            state.clear()
            state.update(loads(value))
        else:
            state[loads(key)] = loads(value)
    return state
