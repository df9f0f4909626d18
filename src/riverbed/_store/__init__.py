"""The storage layer: runs, checkpoints, dead letters, the step cache, workflow steps and
the run queue, in SQLite or PostgreSQL behind one ``Store`` protocol.

It sits below the runners and imports neither them nor the model; its records and
statuses are ``riverbed._records``.
"""

from riverbed._store.protocol import Store
from riverbed._store.schema import SCHEMA_VERSION
from riverbed._store.url import open_store

__all__ = ["SCHEMA_VERSION", "Store", "open_store"]
