"""Every store test runs on SQLite and on PostgreSQL, through the ``store`` fixture.

Each PostgreSQL test gets a schema of its own (created, then dropped), named uniquely, so
tests never see each other's rows, even when two checkouts run the suite at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import riverbed as rb
from tests.services import require_postgres

BACKENDS = ["sqlite", "postgresql"]

WITH_STORE = settings(
    deadline=None,  # PostgreSQL round trips vary; the examples share one store on purpose
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
"""Hypothesis settings for tests that write many examples into the one ``store``."""


def schema_url(base: str, schema: str) -> str:
    """``base`` with libpq options that put every table in ``schema``."""
    return f"{base}?options=-c%20search_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store of ``backend``, private to this test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
        return
    import psycopg

    base = require_postgres()
    schema = f"rb_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(store_url: str) -> Iterator[rb.Store]:
    """An open, empty store of each backend."""
    with rb.open_store(store_url) as opened:
        yield opened


NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def new_id() -> str:
    """A fresh run id."""
    return uuid.uuid4().hex


def make_run(**fields: Any) -> rb.RunRecord:
    """A RUNNING run with a fresh id; ``fields`` override."""
    values: dict[str, Any] = {
        "run_id": new_id(),
        "flow": "flow",
        "flow_version": "v1",
        "status": rb.RunStatus.RUNNING,
        "created_at": NOW,
    }
    values.update(fields)
    return rb.RunRecord(**values)


def make_stage_run(run_id: str, stage: str = "parse", **fields: Any) -> rb.StageRun:
    """A RUNNING stage run; ``fields`` override."""
    values: dict[str, Any] = {
        "run_id": run_id,
        "stage": stage,
        "kind": rb.StageKind.MAP,
        "status": rb.StageStatus.RUNNING,
    }
    values.update(fields)
    return rb.StageRun(**values)


def make_letter(run_id: str, **fields: Any) -> rb.DeadLetterRecord:
    """A dead letter of stage ``parse``; ``fields`` override."""
    values: dict[str, Any] = {
        "id": None,
        "run_id": run_id,
        "flow": "flow",
        "stage": "parse",
        "event": b"\x80event",
        "event_repr": "'event'",
        "error_type": "ValueError",
        "message": "bad",
        "traceback": "Traceback...",
        "attempts": 3,
        "at": NOW,
    }
    values.update(fields)
    return rb.DeadLetterRecord(**values)
