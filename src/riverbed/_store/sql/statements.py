"""The statements that more than one part of the SQL store runs, written once with ``?``
placeholders for both databases (the PostgreSQL backend turns them into ``%s``)."""

from __future__ import annotations

from typing import Any

from riverbed._store.codec import (
    CHECKPOINT_COLUMNS,
    DEAD_LETTER_COLUMNS,
    RUN_COLUMNS,
    STAGE_RUN_COLUMNS,
    STEP_COLUMNS,
)

__all__ = [
    "CHECKPOINTS",
    "DEAD_LETTERS",
    "INSERT_DEAD_LETTER",
    "INSERT_RUN",
    "INSERT_STEP",
    "RUNS",
    "STAGE_RUNS",
    "STEPS",
    "UPSERT_STAGE_RUN",
    "marks",
    "where",
]

RUNS = ", ".join(RUN_COLUMNS)
STAGE_RUNS = ", ".join(STAGE_RUN_COLUMNS)
STEPS = ", ".join(STEP_COLUMNS)
DEAD_LETTERS = ", ".join(DEAD_LETTER_COLUMNS)
CHECKPOINTS = ", ".join(CHECKPOINT_COLUMNS)


def marks(n: int) -> str:
    """``?, ?, ...``: ``n`` placeholders."""
    return ", ".join("?" * n)


def where(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    """`` WHERE a = ? AND b = ?`` for the filters that are not None, and their values."""
    given = {name: value for name, value in filters.items() if value is not None}
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{name} = ?" for name in given), tuple(given.values())


INSERT_RUN = (
    f"INSERT INTO riverbed_runs ({RUNS}, write_token) VALUES ({marks(len(RUN_COLUMNS) + 1)})"
)
"""A run's columns, then the token of the write that creates it."""
UPSERT_STAGE_RUN = (
    f"INSERT INTO riverbed_stage_runs ({STAGE_RUNS}) VALUES ({marks(len(STAGE_RUN_COLUMNS))}) "
    "ON CONFLICT (run_id, attempt, stage) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}" for c in STAGE_RUN_COLUMNS if c not in ("run_id", "stage", "attempt")
    )
)
"""A stage run, inserted or updated by (run_id, attempt, stage)."""
INSERT_STEP = f"INSERT INTO riverbed_steps ({STEPS}) VALUES ({marks(len(STEP_COLUMNS))})"
"""A workflow's completed step."""
INSERT_DEAD_LETTER = (
    f"INSERT INTO riverbed_dead_letters ({', '.join(DEAD_LETTER_COLUMNS[1:])}) "
    f"VALUES ({marks(len(DEAD_LETTER_COLUMNS) - 1)}) RETURNING id"
)
"""A dead letter without its id, returning the id assigned."""
