"""Dead letters (events that failed every retry), in SQL both databases share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from riverbed._errors import InternalError
from riverbed._records import DeadLetterRecord, Lease
from riverbed._store.fencing import Tx
from riverbed._store.sql.core import SQLCore
from riverbed._store.sql.statements import DEAD_LETTERS, INSERT_DEAD_LETTER, where

__all__ = ["SQLDeadLetters"]


class SQLDeadLetters:
    """The ``DeadLetterStore`` methods."""

    def __init__(self, core: SQLCore) -> None:
        """Dead letters stored through ``core``."""
        self._core = core

    def add_dead_letters(
        self, letters: Sequence[DeadLetterRecord], *, lease: Lease | None = None
    ) -> list[int]:
        """Store dead letters (fenced by ``lease`` if given); return the ids assigned, in
        order (empty when a retried call found its earlier try committed)."""
        rows = [self._core.codec.dead_letter_in(letter) for letter in letters]
        ids: list[int] = []
        if not rows:
            return ids

        def write(tx: Tx) -> None:
            ids.clear()
            for row in rows:
                tx.execute(INSERT_DEAD_LETTER, row)
                inserted = tx.fetchone()
                if inserted is None:
                    raise InternalError("INSERT ... RETURNING id returned no row")
                ids.append(int(inserted[0]))

        self._core.fenced(letters[0].run_id, lease, write)
        return ids

    def dead_letters(
        self,
        *,
        run_id: str | None = None,
        flow: str | None = None,
        stage: str | None = None,
        replayed: bool | None = None,
        limit: int = 1000,
    ) -> list[DeadLetterRecord]:
        """Dead letters matching every filter given, oldest first."""
        clause, params = where(run_id=run_id, flow=flow, stage=stage)
        if replayed is not None:
            test = "replayed_by IS NOT NULL" if replayed else "replayed_by IS NULL"
            clause += f" AND {test}" if clause else f" WHERE {test}"

        def read(tx: Tx) -> list[Any]:
            tx.execute(
                f"SELECT {DEAD_LETTERS} FROM riverbed_dead_letters{clause} ORDER BY id LIMIT ?",
                (*params, limit),
            )
            return tx.fetchall()

        return [self._core.codec.dead_letter_out(row) for row in self._core.read(read)]

    def mark_replayed(self, ids: Sequence[int], by_run: str) -> None:
        """Record that run ``by_run`` replayed the dead letters ``ids``."""
        if not ids:
            return
        rows = [(by_run, letter_id) for letter_id in ids]
        self._core.write(
            lambda tx: tx.executemany(
                "UPDATE riverbed_dead_letters SET replayed_by = ? WHERE id = ?", rows
            )
        )

    def discard_dead_letters(self, ids: Sequence[int]) -> int:
        """Delete the pending dead letters ``ids``; return how many were."""
        if not ids:
            return 0
        deleted = 0

        def write(tx: Tx) -> None:
            nonlocal deleted
            deleted = 0  # a retried transaction counts again from nothing
            for letter_id in ids:
                tx.execute(
                    "DELETE FROM riverbed_dead_letters WHERE id = ? AND replayed_by IS NULL",
                    (letter_id,),
                )
                deleted += tx.rowcount

        self._core.write(write)
        return deleted
