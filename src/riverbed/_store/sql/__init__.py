"""The store's logic in SQL that SQLite and PostgreSQL share, one module per concern.

``SQLStore`` (``store``) composes one part per concern of the ``Store`` protocol: runs
and stage runs (``runs``), checkpoints (``checkpoints``), dead letters
(``dead_letters``), workflow steps and the step cache (``steps``), the run queue and
workflow commits (``queue``). Every part shares one ``SQLCore`` (``core``): the backend's
``Database`` (its transactions and the little SQL only it speaks), the codec, retries
through transient errors and fenced writes. Statements are written once, with ``?``
placeholders (``statements``); the PostgreSQL backend turns them into ``%s``. What only
one database can do well (claiming from the queue with ``SKIP LOCKED``, the database's
clock for leases, one-statement group commits) lives in that backend.

Every method is retried through transient errors (``retry``), and every write a run makes
is fenced by its lease and recorded in its history (``fencing``).
"""

from riverbed._store.fencing import Tx
from riverbed._store.sql.core import Database, SQLCore
from riverbed._store.sql.queue import SQLQueue
from riverbed._store.sql.store import SQLStore

__all__ = ["Database", "SQLCore", "SQLQueue", "SQLStore", "Tx"]
