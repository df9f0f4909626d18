"""A durable workflow's steps and the step cache, in SQL both databases share. Steps are
written by ``commit_steps`` (the queue's group commit); this part reads them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from riverbed._records import StepRecord
from riverbed._store.fencing import Tx
from riverbed._store.sql.core import SQLCore
from riverbed._store.sql.statements import STEPS, where

__all__ = ["SQLSteps"]


class SQLSteps:
    """The ``StepStore`` methods."""

    def __init__(self, core: SQLCore) -> None:
        """Steps and cached outputs stored through ``core``."""
        self._core = core

    def steps(self, run_id: str) -> list[StepRecord]:
        """A run's completed steps, by ``seq``."""

        def read(tx: Tx) -> list[Any]:
            tx.execute(
                f"SELECT {STEPS} FROM riverbed_steps WHERE run_id = ? ORDER BY seq", (run_id,)
            )
            return tx.fetchall()

        return [self._core.codec.step_out(row) for row in self._core.read(read)]

    def cache_get(self, stage: str, stage_version: str, digest: str) -> bytes | None:
        """The cached outputs of ``stage`` at ``stage_version`` for input ``digest``."""

        def read(tx: Tx) -> Any:
            tx.execute(
                "SELECT outputs FROM riverbed_step_cache "
                "WHERE stage = ? AND stage_version = ? AND digest = ?",
                (stage, stage_version, digest),
            )
            return tx.fetchone()

        row = self._core.read(read)
        return bytes(row[0]) if row is not None else None

    def cache_put(
        self, stage: str, stage_version: str, digest: str, outputs: bytes, run_id: str
    ) -> None:
        """Cache outputs; if the key is cached already, keep the first (they are equal)."""
        created = self._core.codec.time_in(datetime.now(UTC), "created_at")
        self._core.write(
            lambda tx: tx.execute(
                "INSERT INTO riverbed_step_cache "
                "(stage, stage_version, digest, outputs, run_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (stage, stage_version, digest, outputs, run_id, created),
            )
        )

    def cache_clear(self, stage: str | None = None) -> int:
        """Forget cached outputs of one stage, or of all; return how many were removed."""
        clause, params = where(stage=stage)

        def write(tx: Tx) -> int:
            tx.execute(f"DELETE FROM riverbed_step_cache{clause}", params)
            return tx.rowcount

        return self._core.write(write)
