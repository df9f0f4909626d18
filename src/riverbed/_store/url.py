"""Which store to open: the URL given, else ``$RIVERBED_STORE``, else a SQLite file in
``./.riverbed``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from riverbed._errors import StoreError

if TYPE_CHECKING:
    from riverbed._store.protocol import Store

__all__ = ["DEFAULT_URL", "ENV_VAR", "open_store", "redact", "resolve_url", "sqlite_path"]

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


def open_store(url: str | None = None) -> Store:
    """Open the store at ``url``, or at ``$RIVERBED_STORE``, or in ``./.riverbed``.

    ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` open (and create) a
    SQLite file, creating its directory; ``postgresql://user:password@host:5432/db`` (or
    ``postgres://``) a PostgreSQL database. Either way the schema is created or upgraded.
    Close the store (or use it in a ``with`` block) when done.

    >>> import tempfile
    >>> with open_store(f"sqlite:///{tempfile.mkdtemp()}/runs.db") as store:
    ...     store.list_runs()
    []
    """
    url = resolve_url(url)
    if url.startswith("sqlite:///"):
        from riverbed._store.sqlite import SQLiteStore

        path = sqlite_path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory of the SQLite store {url!r}: {exc}", url=url
            ) from exc
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        # psycopg is imported only now: ``import riverbed`` stays light.
        from riverbed._store.postgres import PostgresStore

        return PostgresStore(url)
    url = redact(url)
    scheme = url.partition(":")[0] if ":" in url else url
    raise StoreError(
        f"unknown store URL {url!r} (scheme {scheme!r}); riverbed stores are "
        "sqlite:///path/to/file.db (one machine) or postgresql://user@host:5432/db "
        f"(many); set the URL as an argument or in ${ENV_VAR}",
        url=url,
    )


open_store.__module__ = "riverbed"  # it is public as riverbed.open_store
