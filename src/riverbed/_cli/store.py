"""The store a command works on: ``--store URL``, else $RIVERBED_STORE, else ./.riverbed.

A URL that names no store is a wrong command (exit 2, said at once); a store that fails to
open (unreachable, damaged, not writable) is a riverbed error of the command (exit 1).
"""

from __future__ import annotations

import riverbed as rb
from riverbed._cli.exits import ExitCode, fail

__all__ = ["open_store"]


def open_store(url: str | None, *, read_only: bool = False) -> rb.Store:
    """The store at ``url`` (or the default one), opened; close it (``with``) when done.
    ``read_only`` for commands that only look: they never write to the store."""
    try:
        resolved = rb.store_url(url)
    except rb.StoreError as error:
        fail(str(error), ExitCode.USAGE)
    return rb.open_store(resolved, read_only=read_only)
