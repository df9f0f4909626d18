"""The SQLite store's file: created private, and what SQLite's errors about it mean for
the user (what went wrong, and what to do)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from riverbed._errors import StoreError

__all__ = ["advice", "create_private"]


def advice(code: int | None, path: Path) -> str | None:
    """What an error with SQLite's primary result ``code`` means for the store at ``path``,
    and what to do; None for errors that need no more than SQLite's own words."""
    elsewhere = "point --store (or RIVERBED_STORE) at another file"
    if code == sqlite3.SQLITE_NOTADB:
        return (
            f"{path} is not a SQLite database: it is some other file, or its header is "
            f"overwritten. Check the path; {elsewhere}, or move the file away and riverbed "
            "creates a new store there"
        )
    if code == sqlite3.SQLITE_CORRUPT:
        return (
            f"the SQLite store {path} is damaged (truncated or partly overwritten: a full "
            "disk, an incomplete copy). Restore it from a backup, or save what is left with "
            f"`sqlite3 {path} .recover | sqlite3 recovered.db` and use that file; or move "
            f"it away and riverbed creates a new store there"
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return (
            f"the SQLite store {path} cannot be written by this process: the file or its "
            f"directory {path.parent} is read-only for it (SQLite also writes {path.name}-wal "
            f"and {path.name}-shm beside the file). Commands that only read (`riverbed runs "
            "list`, `runs show`, `dead-letters list`) work on it; to run or change runs, "
            f"give this user write access to both, or {elsewhere}"
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        return (
            f"cannot open the SQLite store {path}: check that its directory {path.parent} "
            f"exists and that this user may read it (and write it, to record runs), or "
            f"{elsewhere}"
        )
    return None


def create_private(path: Path, url: str) -> None:
    """Create the store's file, empty and readable by its owner only (0600), unless it
    exists: SQLite would create it with the umask's mode, often world-readable."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(
            f"cannot create the SQLite store {path}: {exc.strerror}; check that its "
            f"directory {path.parent} exists and this user may write it, or point --store "
            "(or RIVERBED_STORE) at another file",
            url=url,
        ) from exc
    os.close(descriptor)
