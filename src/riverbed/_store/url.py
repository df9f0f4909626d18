"""Which store to open: the URL given, else ``$RIVERBED_STORE``, else a SQLite file in
``./.riverbed``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from riverbed._errors import StoreError

if TYPE_CHECKING:
    from riverbed._store.postgres import PostgresStore
    from riverbed._store.protocol import Store

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "check_url",
    "open_store",
    "redact",
    "resolve_url",
    "sqlite_path",
]

ENV_VAR = "RIVERBED_STORE"
DEFAULT_URL = "sqlite:///.riverbed/riverbed.db"
SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


def resolve_url(url: str | None = None) -> str:
    """The store URL to use: ``url`` if given, else ``$RIVERBED_STORE`` if set and not
    empty, else ``sqlite:///.riverbed/riverbed.db``."""
    if url:
        return url
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def redact(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages and logs).

    >>> redact("postgresql://app:s3cret@db:5432/runs")
    'postgresql://app:***@db:5432/runs'
    """
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL: three slashes and a relative path, four and an
    absolute one (``sqlite:////var/lib/riverbed.db``), as SQLAlchemy writes them."""
    path = url.removeprefix("sqlite:///")
    if not path or path.endswith("/"):
        raise StoreError(
            f"store URL {url!r} names no file; write sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db",
            url=url,
        )
    return Path(path)


def open_store(url: str | None = None, *, read_only: bool = False) -> Store:
    """Open the store at ``url``, or at ``$RIVERBED_STORE``, or in ``./.riverbed``.

    ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` open (and create) a
    SQLite file, creating its directory (``sqlite:///:memory:``: SQLite's in-memory
    database, this process's only, gone when closed);
    ``postgresql://user:password@host:5432/db`` (or ``postgres://``) a PostgreSQL
    database. Either way the schema is created or upgraded. A new SQLite file is readable
    by its owner only (0600), in a directory of its own created 0700: whoever may write a
    store can run code in the processes that use it.
    Close the store (or use it in a ``with`` block) when done.

    ``read_only=True`` opens a store that will only be read (``riverbed runs list``): it
    never writes to it (SQLite's ``mode=ro``; a read-only PostgreSQL session), and it
    works where this process may not write, e.g. a store in a read-only directory. A
    store that does not exist yet, or has an older schema, is created or upgraded first,
    which needs write access once.

    >>> import tempfile
    >>> with open_store(f"sqlite:///{tempfile.mkdtemp()}/runs.db") as store:
    ...     store.list_runs()
    []
    """
    url = resolve_url(url)
    if url.startswith("sqlite:///"):
        from riverbed._store.sqlite import SQLiteStore

        path = sqlite_path(url)
        _make_directory(path.parent, url)
        return SQLiteStore(path, read_only=read_only)
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres_store(url)(url, read_only=read_only)
    raise _unknown_scheme(url)


open_store.__module__ = "riverbed"  # it is public as riverbed.open_store


def check_url(url: str) -> None:
    """Raise the ``StoreError`` that ``open_store`` would for a URL that names no store
    (an unknown scheme, a SQLite URL without a file), without opening anything: the
    error of a wrong command, not of a store."""
    if url.startswith("sqlite:///"):
        sqlite_path(url)
    elif not url.startswith(SCHEMES):
        raise _unknown_scheme(url)


def _postgres_store(url: str) -> type[PostgresStore]:
    """The PostgreSQL store's class, imported only now (``import riverbed`` stays light);
    a ``StoreError`` naming the extra that installs psycopg if it is missing."""
    try:
        from riverbed._store.postgres import PostgresStore
    except ImportError as exc:
        # Only psycopg's absence (or its libpq's: no name) is the user's to fix by installing.
        if exc.name is not None and not exc.name.startswith("psycopg"):
            raise
        raise StoreError(
            f"cannot open the PostgreSQL store at {redact(url)}: riverbed talks to PostgreSQL "
            f"through psycopg, which is not installed ({exc}); install riverbed with its "
            "PostgreSQL extra: pip install 'riverbed[postgres]'",
            url=redact(url),
        ) from exc
    return PostgresStore


def _unknown_scheme(url: str) -> StoreError:
    url = redact(url)
    scheme = url.partition(":")[0] if ":" in url else url
    return StoreError(
        f"unknown store URL {url!r} (scheme {scheme!r}); riverbed stores are "
        "sqlite:///path/to/file.db (one machine) or postgresql://user@host:5432/db "
        f"(many); set the URL as an argument or in ${ENV_VAR}",
        url=url,
    )


def _make_directory(directory: Path, url: str) -> None:
    """Create a SQLite store's directory, 0700 (its parents as ``mkdir -p`` would); one
    that exists is the user's and keeps its mode."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the directory of the SQLite store {url!r}: {exc}; create it, "
            "or point --store (or RIVERBED_STORE) elsewhere",
            url=url,
        ) from exc
