"""What PostgreSQL itself counts: commits of one database (``pg_stat_database``), WAL
records and syncs of the server (``pg_stat_wal``), and the settings that decide what a
commit costs. W5 reads them from outside the systems it measures.

Two facts of PostgreSQL 15's statistics shape how they are read:

- A backend publishes its counts when it ends, or when it is idle: at most once a second
  while busy, and otherwise within ``IDLE_FLUSH_SECONDS`` of going idle. So a reading
  before a timed section is taken after every backend has been idle that long, and a
  reading after it once the measured process has closed its connections and its
  backends are gone.
- ``pg_stat_wal`` is server-wide: WAL written for other databases in the same window
  (other people's tests on a shared server) lands in it too. ``other_commits`` says how
  much that was, so a reader can tell whether the WAL figures are clean.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from typing import Any

import psycopg

IDLE_FLUSH_SECONDS = 11.0
"""PostgreSQL 15 publishes an idle backend's pending statistics within 10 s
(PGSTAT_IDLE_INTERVAL); one more second of margin."""

SETTINGS = (
    "server_version",
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "commit_delay",
    "commit_siblings",
    "full_page_writes",
    "wal_level",
    "wal_writer_delay",
    "wal_buffers",
    "shared_buffers",
    "max_connections",
)
"""The server settings recorded beside W5's figures (those that decide a commit's cost)."""

WAL_COLUMNS = ("wal_records", "wal_fpi", "wal_bytes", "wal_write", "wal_sync")


def settings(url: str) -> dict[str, str]:
    """The server's values of ``SETTINGS``."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in SETTINGS}  # type: ignore[index]


def with_database(url: str, database: str) -> str:
    """``url`` with its database name replaced."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


def create_database(admin_url: str, prefix: str) -> str:
    """Create a fresh, empty database named ``<prefix>_<random>``; its name. A database
    of its own means its commit count is the measured process's alone."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def drop_database(admin_url: str, name: str) -> None:
    """Drop ``name``, ending any connection still open to it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def read(conn: psycopg.Connection[Any], database: str) -> dict[str, float]:
    """One reading: ``commits`` and ``rollbacks`` of ``database``, ``other_commits`` (every
    other database's), and the server's WAL counters. ``conn`` is in autocommit mode and
    connected to another database, so that reading does not count itself."""
    rows = conn.execute("SELECT datname, xact_commit, xact_rollback FROM pg_stat_database")
    reading: dict[str, float] = {"commits": 0, "rollbacks": 0, "other_commits": 0}
    for name, commits, rollbacks in rows.fetchall():
        if name == database:
            reading["commits"] += commits
            reading["rollbacks"] += rollbacks
        else:
            reading["other_commits"] += commits
    wal = conn.execute(f"SELECT {', '.join(WAL_COLUMNS)} FROM pg_stat_wal").fetchone()
    if wal is not None:
        reading.update({name: float(value) for name, value in zip(WAL_COLUMNS, wal, strict=True)})
    return reading


def wait_for_backends_gone(conn: psycopg.Connection[Any], database: str, timeout: float) -> bool:
    """Wait until no backend is connected to ``database`` (a backend that ends publishes
    its counts); False if some still are after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
    while True:
        row = conn.execute(query, (database,)).fetchone()
        if row is None or row[0] == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """``after - before`` for every counter both readings have."""
    return {name: after[name] - before[name] for name in before if name in after}
