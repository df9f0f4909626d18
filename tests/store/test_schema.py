"""The schema: created on first open, migrated in order, refused when newer; on every
backend, with processes opening one store at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import riverbed as rb
from riverbed._store.postgres import PostgresStore
from riverbed._store.schema import MIGRATIONS, SCHEMA_VERSION
from riverbed._store.sql import SQLStore
from riverbed._store.sqlite import SQLiteStore
from riverbed._store.url import sqlite_path
from tests.store.conftest import NOW, make_run

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "riverbed_meta",
    "riverbed_runs",
    "riverbed_stage_runs",
    "riverbed_checkpoints",
    "riverbed_checkpoint_states",
    "riverbed_checkpoint_keys",
    "riverbed_dead_letters",
    "riverbed_step_cache",
    "riverbed_steps",
    "riverbed_run_history",
}


def _open(url: str, schema_version: int = SCHEMA_VERSION) -> SQLStore:
    """The store at ``url``, migrated no further than ``schema_version``."""
    if url.startswith("sqlite"):
        return SQLiteStore(sqlite_path(url), schema_version=schema_version)
    return PostgresStore(url, schema_version=schema_version)


def _query(store: SQLStore, sql: str, *params: object) -> list[tuple[object, ...]]:
    with store.core.database.statement() as tx:
        tx.execute(sql, params)
        return [tuple(row) for row in tx.fetchall()]


def _tables(store: SQLStore) -> set[str]:
    if isinstance(store, SQLiteStore):
        rows = _query(store, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = _query(
            store,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()",
        )
    return {str(row[0]) for row in rows if str(row[0]).startswith("riverbed_")}


def _version(store: SQLStore) -> int:
    [(value,)] = _query(store, "SELECT value FROM riverbed_meta WHERE key = 'schema_version'")
    return int(str(value))


def test_migrations_are_numbered_in_order() -> None:
    """Migrations run 1, 2, 3... with no gap; SCHEMA_VERSION is the last."""
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[-1].version == SCHEMA_VERSION


def test_opening_creates_the_schema(store_url: str) -> None:
    """A first open creates every table and records the current schema version."""
    with _open(store_url) as store:
        assert _tables(store) == TABLES
        assert _version(store) == SCHEMA_VERSION


def test_reopening_keeps_data_and_version(store_url: str) -> None:
    """Opening an up-to-date store again changes nothing."""
    run = make_run()
    with _open(store_url) as store:
        store.create_run(run)
    with _open(store_url) as store:
        assert store.get_run(run.run_id) == run
        assert _version(store) == SCHEMA_VERSION


def test_version_1_store_is_migrated(store_url: str) -> None:
    """A version-1 store is migrated on open, and its runs survive."""
    with _open(store_url, schema_version=1) as old:
        assert _version(old) == 1
        assert "riverbed_steps" not in _tables(old)
        created = old.core.codec.time_in(NOW, "created_at")
        with old.core.database.write() as tx:
            tx.execute(
                "INSERT INTO riverbed_runs (run_id, flow, flow_version, status, params, "
                "created_at, attempt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ("old-run", "flow", "v1", "failed", '{"n": 1}', created, 1),
            )
    with _open(store_url) as store:
        assert _version(store) == SCHEMA_VERSION
        assert _tables(store) == TABLES
        run = store.get_run("old-run")
        assert run == make_run(
            run_id="old-run", status=rb.RunStatus.FAILED, params={"n": 1}, created_at=NOW
        )
        assert run.worker is None
        store.transition("old-run", rb.RunStatus.SCHEDULED)
        claimed = store.claim("w", 10)
        assert claimed is not None
        assert claimed.run_id == "old-run"


def test_version_2_store_keeps_its_stage_runs_and_gets_a_history(store_url: str) -> None:
    """Migrating a version-2 store keeps its stage runs (filed under their run's attempt,
    nothing dropped yet) and starts each run's history at its current status."""
    with _open(store_url, schema_version=2) as old:
        created = old.core.codec.time_in(NOW, "created_at")
        with old.core.database.write() as tx:
            tx.execute(
                "INSERT INTO riverbed_runs (run_id, flow, flow_version, status, params, "
                "created_at, attempt, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ("run-2", "flow", "v1", "crashed", "{}", created, 3, "host:1"),
            )
            tx.execute(
                "INSERT INTO riverbed_stage_runs (run_id, stage, kind, status, events_in, "
                "events_out, errors, retries, skipped, dead_lettered, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ("run-2", "parse", "map", "running", 10, 9, 1, 0, 0, 0, 0.5),
            )
    with _open(store_url) as store:
        [stage] = store.stage_runs("run-2")
        assert (stage.stage, stage.events_in, stage.attempt, stage.dropped) == ("parse", 10, 3, 0)
        assert store.stage_runs("run-2", attempt=3) == [stage]
        assert [(t.status, t.attempt, t.worker) for t in store.history("run-2")] == [
            (rb.RunStatus.CRASHED, 3, "host:1")
        ]


def test_newer_store_is_refused(store_url: str) -> None:
    """A store with a newer schema is refused with StoreVersionError and the fix."""
    with _open(store_url) as store, store.core.database.write() as tx:
        tx.execute(
            "UPDATE riverbed_meta SET value = ? WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
    with pytest.raises(rb.StoreVersionError) as caught:
        rb.open_store(store_url)
    assert str(caught.value) == (
        f"the store at {caught.value.url} has schema version {SCHEMA_VERSION + 1}, but this "
        f"riverbed ({rb.__version__}) knows up to {SCHEMA_VERSION}: upgrade riverbed"
    )
    assert (caught.value.found, caught.value.known) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert caught.value.url == store_url


def test_processes_opening_a_new_store_at_once_migrate_it_once(store_url: str) -> None:
    """Four processes opening a fresh store at once create its schema once."""
    code = (
        "import sys, riverbed as rb\n"
        "sys.stdin.readline()\n"
        "rb.open_store(sys.argv[1]).close()\n"
        "print('opened')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate("go\n", timeout=60) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "opened"
    with _open(store_url) as store:
        assert _version(store) == SCHEMA_VERSION
        assert _query(store, "SELECT count(*) FROM riverbed_meta") == [(1,)]


def test_riverbed_version_in_messages_is_current() -> None:
    """The version the schema module names in errors is riverbed's own."""
    from riverbed._store.schema import RIVERBED_VERSION

    assert rb.__version__ == RIVERBED_VERSION


def test_the_version_is_declared_once() -> None:
    """The installed package's version is the one riverbed declares (read from
    ``riverbed/_version.py`` by the build), and no other file declares one."""
    import importlib.metadata
    import re
    from pathlib import Path

    assert importlib.metadata.version("riverbed") == rb.__version__
    root = Path(__file__).resolve().parents[2]
    pyproject = (root / "pyproject.toml").read_text()
    assert re.search(r"(?m)^version\s*=", pyproject) is None
    declared = [
        path.relative_to(root).as_posix()
        for path in (root / "src" / "riverbed").rglob("*.py")
        if re.search(r"(?m)^__version__\s*=", path.read_text())
    ]
    assert declared == ["src/riverbed/_version.py"]
