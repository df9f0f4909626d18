"""A stream run's checkpoints, in SQL both databases share: a head row per checkpoint
(positions, flow version) and one row per stage state, so that a large state is stored as
its own bytes instead of copied into a combined blob; the stages kept per key have their
rows in ``riverbed_checkpoint_keys`` (see ``checkpoint_keys``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from riverbed._records import Checkpoint, DeadLetterRecord, Lease, StageRun
from riverbed._store.codec import CHECKPOINT_COLUMNS, META_STAGE
from riverbed._store.fencing import Tx
from riverbed._store.sql.checkpoint_keys import KeysMoved, read_keyed, state_rows, write_keyed
from riverbed._store.sql.core import SQLCore
from riverbed._store.sql.runs import stage_run_rows
from riverbed._store.sql.statements import CHECKPOINTS, INSERT_DEAD_LETTER, UPSERT_STAGE_RUN, marks

__all__ = ["KEEP_CHECKPOINTS", "SQLCheckpoints"]

KEEP_CHECKPOINTS = 2
"""Checkpoints kept per run: the newest, and the one before in case the newest is torn
on a disk that lies about flushes."""

INSERT_CHECKPOINT = (
    f"INSERT INTO riverbed_checkpoints ({CHECKPOINTS}) VALUES ({marks(len(CHECKPOINT_COLUMNS))})"
)
INSERT_STATE = (
    "INSERT INTO riverbed_checkpoint_states (run_id, checkpoint_id, stage, state, keyed) "
    "VALUES (?, ?, ?, ?, ?)"
)


class SQLCheckpoints:
    """The ``CheckpointStore`` methods."""

    def __init__(self, core: SQLCore) -> None:
        """Checkpoints stored through ``core``."""
        self._core = core

    def commit_checkpoint(
        self,
        checkpoint: Checkpoint,
        stage_runs: Sequence[StageRun] = (),
        dead_letters: Sequence[DeadLetterRecord] = (),
        *,
        lease: Lease | None = None,
    ) -> None:
        """Store a checkpoint, its stage runs and dead letters in one transaction, fenced
        by ``lease``; keep the run's newest ``KEEP_CHECKPOINTS`` checkpoints."""
        codec = self._core.codec
        run_id = checkpoint.run_id
        head = codec.checkpoint_in(checkpoint)
        meta = (
            run_id,
            checkpoint.checkpoint_id,
            META_STAGE,
            codec.checkpoint_meta_in(checkpoint),
            0,
        )
        states = [*state_rows(checkpoint), meta]
        stage_rows = stage_run_rows(codec, run_id, stage_runs)
        letter_rows = [codec.dead_letter_in(letter) for letter in dead_letters]

        def write(tx: Tx) -> None:
            write_keyed(tx, checkpoint)
            tx.execute(INSERT_CHECKPOINT, head)
            if states:
                tx.executemany(INSERT_STATE, states)
            if stage_rows:
                tx.executemany(UPSERT_STAGE_RUN, stage_rows)
            for row in letter_rows:
                tx.execute(INSERT_DEAD_LETTER, row)
            _drop_older(tx, run_id)

        self._core.fenced(run_id, lease, write)

    def latest_checkpoint(self, run_id: str, *, states: bool = True) -> Checkpoint | None:
        """The run's newest checkpoint, or None if it has none; without its states if
        ``states`` is False."""
        if not states:
            return self._core.read(lambda tx: self._head(tx, run_id))
        while True:
            try:
                return self._core.read(lambda tx: self._latest(tx, run_id))
            except KeysMoved:  # a newer checkpoint came in between: read that one
                continue

    def _head(self, tx: Tx, run_id: str) -> Checkpoint | None:
        """The newest checkpoint with its own data (the meta row) but no state."""
        columns = ", ".join(f"c.{column}" for column in CHECKPOINT_COLUMNS)
        tx.execute(
            f"SELECT {columns}, s.stage, s.state FROM riverbed_checkpoints c "
            "LEFT JOIN riverbed_checkpoint_states s ON s.run_id = c.run_id "
            "AND s.checkpoint_id = c.checkpoint_id AND s.stage = ? "
            "WHERE c.run_id = ? ORDER BY c.checkpoint_id DESC LIMIT 1",
            (META_STAGE, run_id),
        )
        row = tx.fetchone()
        if row is None:
            return None
        width = len(CHECKPOINT_COLUMNS)
        meta = [tuple(row[width:])] if row[width] is not None else []
        return self._core.codec.checkpoint_out(tuple(row[:width]), meta)

    def _latest(self, tx: Tx, run_id: str) -> Checkpoint | None:
        """The newest checkpoint: its head and whole states in one statement, so that it
        reads one consistent cut even without a transaction; its keyed stages' rows in a
        second (``read_keyed`` raises ``KeysMoved`` if they are no longer its)."""
        columns = ", ".join(f"c.{column}" for column in CHECKPOINT_COLUMNS)
        width = len(CHECKPOINT_COLUMNS)
        tx.execute(
            f"SELECT {columns}, s.stage, s.state, s.keyed FROM riverbed_checkpoints c "
            "LEFT JOIN riverbed_checkpoint_states s "
            "ON s.run_id = c.run_id AND s.checkpoint_id = c.checkpoint_id "
            "WHERE c.run_id = ? AND c.checkpoint_id = "
            "(SELECT max(checkpoint_id) FROM riverbed_checkpoints WHERE run_id = ?) "
            "ORDER BY s.stage",
            (run_id, run_id),
        )
        rows = tx.fetchall()
        if not rows:
            return None
        stages = [row[width:] for row in rows if row[width] is not None]
        whole = [(stage, state) for stage, state, keyed in stages if not keyed]
        checkpoint = self._core.codec.checkpoint_out(rows[0][:width], whole)
        names = [stage for stage, _, keyed in stages if keyed]
        if not names:
            return checkpoint
        keyed = read_keyed(tx, run_id, checkpoint.checkpoint_id, names)
        return dataclasses.replace(checkpoint, keyed=keyed, complete=frozenset(keyed))


def _drop_older(tx: Tx, run_id: str) -> None:
    """Delete the run's checkpoints but the newest ``KEEP_CHECKPOINTS``, inside ``tx``."""
    tx.execute(
        "SELECT checkpoint_id FROM riverbed_checkpoints WHERE run_id = ? "
        "ORDER BY checkpoint_id DESC LIMIT 1 OFFSET ?",
        (run_id, KEEP_CHECKPOINTS - 1),
    )
    oldest_kept = tx.fetchone()
    if oldest_kept is not None:
        for table in ("riverbed_checkpoint_states", "riverbed_checkpoints"):
            tx.execute(
                f"DELETE FROM {table} WHERE run_id = ? AND checkpoint_id < ?",
                (run_id, oldest_kept[0]),
            )
