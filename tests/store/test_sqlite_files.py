"""The SQLite store's file: created private, and refused with a clear error (naming the file
and what to do) when it is damaged, is not a database, or cannot be written; opened
``read_only`` it never writes to the file."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

import riverbed as rb
from riverbed._store.schema import SCHEMA_VERSION
from riverbed._store.sqlite import SQLiteStore
from tests.store.conftest import make_letter, make_run


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _store_with_runs(path: Path, runs: int = 40) -> list[str]:
    """A store at ``path`` holding ``runs`` runs (big enough to span many pages)."""
    ids = []
    with rb.open_store(f"sqlite:///{path}") as store:
        for _ in range(runs):
            run = make_run(params={"padding": "x" * 2000})
            store.create_run(run)
            store.add_dead_letters([make_letter(run.run_id)])
            ids.append(run.run_id)
    return ids


def _read_everything(url: str, *, read_only: bool) -> None:
    with rb.open_store(url, read_only=read_only) as store:
        store.list_runs(limit=1000)
        store.dead_letters()


def test_new_store_directory_and_files_are_private(tmp_path: Path) -> None:
    """A new store's directory is created 0700 and its database file 0600, and so are the
    WAL and shared-memory files SQLite adds beside it: runs hold pickles, which only the
    owner may read or write."""
    old = os.umask(0o022)  # the usual umask, which would otherwise leave them world-readable
    try:
        with rb.open_store(f"sqlite:///{tmp_path}/private/runs.db") as store:
            store.create_run(make_run())
            assert _mode(tmp_path / "private") == 0o700
            for name in ("runs.db", "runs.db-wal", "runs.db-shm"):
                assert _mode(tmp_path / "private" / name) == 0o600, name
    finally:
        os.umask(old)


def test_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    """A directory that exists already is the user's: its mode is left as it is."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with rb.open_store(f"sqlite:///{shared}/runs.db"):
        pass
    assert _mode(shared) == 0o755
    assert _mode(shared / "runs.db") == 0o600


@pytest.mark.parametrize("read_only", [False, True], ids=["write", "read-only"])
def test_a_file_that_is_not_a_database_is_named_with_the_fix(
    tmp_path: Path, read_only: bool
) -> None:
    """Garbage where the store should be: a StoreError naming the file, saying it is not a
    SQLite database and what to do; no raw sqlite3 error, and the file is left alone."""
    path = tmp_path / "runs.db"
    path.write_bytes(b"these are not the pages you are looking for\n" * 100)
    before = path.read_bytes()
    with pytest.raises(rb.StoreError) as caught:
        rb.open_store(f"sqlite:///{path}", read_only=read_only)
    message = str(caught.value)
    assert str(path) in message
    assert "not a SQLite database" in message
    assert "--store" in message
    assert "RIVERBED_STORE" in message
    assert not isinstance(caught.value, rb.StoreUnavailableError)
    assert path.read_bytes() == before


@pytest.mark.parametrize("read_only", [False, True], ids=["write", "read-only"])
def test_a_truncated_store_is_named_as_damaged(tmp_path: Path, read_only: bool) -> None:
    """A store cut short (a full disk, a partial copy): opening or listing it is a StoreError
    that names the file, says it is damaged and how to recover what is left."""
    path = tmp_path / "runs.db"
    _store_with_runs(path)
    size = path.stat().st_size
    os.truncate(path, size // 2)
    with pytest.raises(rb.StoreError) as caught:
        _read_everything(f"sqlite:///{path}", read_only=read_only)
    message = str(caught.value)
    assert str(path) in message
    assert "damaged" in message
    assert ".recover" in message


def test_read_only_store_never_writes_the_file(tmp_path: Path) -> None:
    """``read_only=True`` reads runs, stage runs and dead letters without changing a byte of
    the database file, and refuses writes with a StoreError saying it was opened so."""
    path = tmp_path / "runs.db"
    ids = _store_with_runs(path, runs=3)
    before = path.read_bytes()
    with rb.open_store(f"sqlite:///{path}", read_only=True) as store:
        assert {run.run_id for run in store.list_runs()} == set(ids)
        assert len(store.dead_letters()) == 3
        with pytest.raises(rb.StoreError, match="read-only"):
            store.create_run(make_run())
    assert path.read_bytes() == before


def test_read_only_open_of_an_old_schema_upgrades_it_first(tmp_path: Path) -> None:
    """A store of an older schema is upgraded once (that needs write access), then read."""
    path = tmp_path / "runs.db"
    SQLiteStore(path, schema_version=2).close()
    with rb.open_store(f"sqlite:///{path}", read_only=True) as store:
        assert store.list_runs() == []
    conn = sqlite3.connect(path)
    try:
        found = conn.execute("SELECT value FROM riverbed_meta").fetchone()[0]
    finally:
        conn.close()
    assert int(found) == SCHEMA_VERSION


def test_newer_schema_is_refused_read_only_too(tmp_path: Path) -> None:
    """Read-only or not, a schema newer than this riverbed knows is StoreVersionError."""
    path = tmp_path / "runs.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE riverbed_meta SET value = ?", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(rb.StoreVersionError):
        rb.open_store(f"sqlite:///{path}", read_only=True)


def test_an_in_memory_store_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sqlite:///:memory:`` is SQLite's in-memory database: it works, and leaves no file
    named ``:memory:`` in the working directory."""
    monkeypatch.chdir(tmp_path)
    with rb.open_store("sqlite:///:memory:") as store:
        run = make_run()
        store.create_run(run)
        assert store.get_run(run.run_id).run_id == run.run_id
    assert list(tmp_path.iterdir()) == []


def test_an_in_memory_store_cannot_be_opened_read_only() -> None:
    """Nothing could ever be read from it: refused, saying why."""
    with pytest.raises(rb.StoreError, match="in-memory"):
        rb.open_store("sqlite:///:memory:", read_only=True)
