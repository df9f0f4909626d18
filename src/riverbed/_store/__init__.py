"""The storage layer: runs, checkpoints, dead letters, the step cache, workflow steps and
the run queue, in SQLite or PostgreSQL behind one ``Store`` protocol, composed of one
protocol per concern (``RunStore``, ``CheckpointStore``, ``DeadLetterStore``,
``StepStore``, ``RunQueue``).

It sits below the runners and imports neither them nor the model; its records and
statuses are ``riverbed._records``.
"""

from riverbed._store.protocol import (
    CheckpointStore,
    DeadLetterStore,
    RunQueue,
    RunStore,
    StepStore,
    Store,
)
from riverbed._store.schema import SCHEMA_VERSION
from riverbed._store.url import open_store

__all__ = [
    "SCHEMA_VERSION",
    "CheckpointStore",
    "DeadLetterStore",
    "RunQueue",
    "RunStore",
    "StepStore",
    "Store",
    "open_store",
]
