"""The per-key rows of checkpoints, in SQL both databases share.

A stage whose state is a dict of per-key states (``Checkpoint.keyed``) keeps one row per
key in ``riverbed_checkpoint_keys``: (run, stage, serialized key) -> the checkpoint that
last wrote it and its serialized state, NULL for a removed key. A checkpoint upserts the
rows of the keys that changed since the run's previous one, in the transaction (fenced by
the run's lease) that stores the rest of it; the row a key had is overwritten in place, so
superseded rows never pile up and nothing needs compacting afterwards. Each checkpoint
names its keyed stages in ``riverbed_checkpoint_states`` (``keyed = 1``, no state), so a
stage the run no longer keeps per key (renamed, changed) loses its rows in that commit.

Reading a checkpoint back reads every row of its keyed stages in one query, oldest first.
Only the newest checkpoint reads back whole: the one kept before it (``KEEP_CHECKPOINTS``)
keeps its head and whole states, but its keys' rows were overwritten since.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from riverbed._records import Checkpoint
from riverbed._store.fencing import Tx

__all__ = ["KeysMoved", "read_keyed", "state_rows", "write_keyed"]

UPSERT_KEY = (
    "INSERT INTO riverbed_checkpoint_keys (run_id, stage, key, checkpoint_id, state) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, stage, key) DO UPDATE SET "
    "checkpoint_id = excluded.checkpoint_id, state = excluded.state"
)


class KeysMoved(Exception):  # noqa: N818 - not an error: read again
    """The rows read belong to a newer checkpoint than the one read with them (it was
    committed meanwhile): the read starts again."""


def state_rows(checkpoint: Checkpoint) -> list[tuple[Any, ...]]:
    """The checkpoint's rows of ``riverbed_checkpoint_states``: each stage kept whole with
    its state, each stage kept per key named (its rows are elsewhere)."""
    run_id, checkpoint_id = checkpoint.run_id, checkpoint.checkpoint_id
    rows = [(run_id, checkpoint_id, s, b, 0) for s, b in checkpoint.states.items()]
    rows += [(run_id, checkpoint_id, stage, b"", 1) for stage in checkpoint.keyed]
    return rows


def write_keyed(tx: Tx, checkpoint: Checkpoint) -> None:
    """In ``tx``, before the checkpoint's own rows are inserted: drop the rows of the
    stages the run kept per key at its previous checkpoint but not at this one, and of the
    stages this one writes whole (``complete``); upsert the rows of the changed keys."""
    run_id, checkpoint_id = checkpoint.run_id, checkpoint.checkpoint_id
    dropped = _keyed_before(tx, run_id, checkpoint_id) - set(checkpoint.keyed)
    for stage in sorted(dropped | checkpoint.complete):
        tx.execute(
            "DELETE FROM riverbed_checkpoint_keys WHERE run_id = ? AND stage = ?",
            (run_id, stage),
        )
    for stage, rows in checkpoint.keyed.items():
        if rows:
            tx.executemany(
                UPSERT_KEY,
                [(run_id, stage, key, checkpoint_id, state) for key, state in rows.items()],
            )


def _keyed_before(tx: Tx, run_id: str, checkpoint_id: int) -> set[str]:
    """The stages the run kept per key at its newest checkpoint before ``checkpoint_id``."""
    tx.execute(
        "SELECT stage FROM riverbed_checkpoint_states WHERE run_id = ? AND keyed = 1 AND "
        "checkpoint_id = (SELECT max(checkpoint_id) FROM riverbed_checkpoints "
        "WHERE run_id = ? AND checkpoint_id < ?)",
        (run_id, run_id, checkpoint_id),
    )
    return {row[0] for row in tx.fetchall()}


def read_keyed(
    tx: Tx, run_id: str, checkpoint_id: int, stages: Iterable[str]
) -> dict[str, dict[bytes, bytes | None]]:
    """Every row of the run's ``stages`` as of checkpoint ``checkpoint_id``, per stage,
    oldest first (one query). ``KeysMoved`` if a newer checkpoint was committed since
    ``checkpoint_id`` was read (the rows are then not its)."""
    keyed: dict[str, dict[bytes, bytes | None]] = {stage: {} for stage in stages}
    tx.execute(
        "SELECT stage, key, state, checkpoint_id FROM riverbed_checkpoint_keys "
        "WHERE run_id = ? ORDER BY checkpoint_id",
        (run_id,),
    )
    rows = tx.fetchall()
    if rows and rows[-1][3] > checkpoint_id:
        raise KeysMoved
    for stage, key, state, _ in rows:
        found = keyed.get(stage)
        if found is not None:
            found[_bytes(key)] = None if state is None else _bytes(state)
    tx.execute("SELECT max(checkpoint_id) FROM riverbed_checkpoints WHERE run_id = ?", (run_id,))
    newest = tx.fetchone()
    if newest is None or newest[0] != checkpoint_id:
        raise KeysMoved
    return keyed


def _bytes(value: Any) -> bytes:
    """Drivers may hand back memoryview for binary columns."""
    return value.tobytes() if isinstance(value, memoryview) else value
