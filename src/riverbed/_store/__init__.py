"""The storage layer: runs, checkpoints, dead letters, the step cache, workflow steps and
the run queue, in SQLite or PostgreSQL behind one ``Store`` protocol.

It sits below the model and the runners and imports neither.
"""

from riverbed._store.protocol import Store
from riverbed._store.records import (
    Checkpoint,
    DeadLetterRecord,
    ErrorInfo,
    Lease,
    RunRecord,
    RunStatus,
    RunTransition,
    StageRun,
    StageStatus,
    StepCommit,
    StepRecord,
    check_transition,
)
from riverbed._store.schema import SCHEMA_VERSION
from riverbed._store.url import open_store

__all__ = [
    "SCHEMA_VERSION",
    "Checkpoint",
    "DeadLetterRecord",
    "ErrorInfo",
    "Lease",
    "RunRecord",
    "RunStatus",
    "RunTransition",
    "StageRun",
    "StageStatus",
    "StepCommit",
    "StepRecord",
    "Store",
    "check_transition",
    "open_store",
]
