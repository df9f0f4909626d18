"""Exactly-once state across SIGKILLs: the crash harness, sized for CI (the soak of 200
kills is ``make soak``)."""

from __future__ import annotations

import pytest

from tests.durability import crash_harness
from tests.services import require_postgres

KILLS = 20


@pytest.mark.slow
def test_killed_and_resumed_runs_end_with_exact_results(store_url: str) -> None:
    """20 SIGKILLs at random moments, each followed by a resume: every finished run's
    per-key counts and sums equal an uninterrupted run's."""
    report = crash_harness.run(store_url, KILLS, seed=7)
    assert report.failures == []
    assert report.kills == KILLS
    assert report.runs_checked >= 1


@pytest.mark.slow
def test_exactly_once_sink_writes_every_row_once_across_kills(store_url: str) -> None:
    """With the PostgresTable sink (append-only rows committed with the checkpoints), 20
    SIGKILLs and resumes leave exactly one row per event: none lost, none doubled."""
    rows = require_postgres()
    if store_url.startswith("postgresql"):
        rows = store_url  # the rows live beside the store's tables, in the test's schema
    report = crash_harness.run(store_url, KILLS, seed=11, rows=rows)
    assert report.failures == []
    assert report.runs_checked >= 1
