"""Records and statuses: what a run is, as every layer sees it (see docs/architecture.md).

They sit at the bottom: the model, the runners, the store and the interfaces all import
them, and they import nothing of riverbed but its errors.
"""

from riverbed._records.kinds import OnError, StageKind
from riverbed._records.queues import DEFAULT_QUEUE, check_queue, check_queues
from riverbed._records.records import (
    Checkpoint,
    DeadLetter,
    DeadLetterRecord,
    ErrorInfo,
    Lease,
    RunRecord,
    RunTransition,
    StageError,
    StepCommit,
    StepRecord,
    new_run_id,
)
from riverbed._records.stages import COUNTS, StageCounts, StageRun, StageStats
from riverbed._records.status import RunStatus, StageStatus, check_transition

__all__ = [
    "COUNTS",
    "DEFAULT_QUEUE",
    "Checkpoint",
    "DeadLetter",
    "DeadLetterRecord",
    "ErrorInfo",
    "Lease",
    "OnError",
    "RunRecord",
    "RunStatus",
    "RunTransition",
    "StageCounts",
    "StageError",
    "StageKind",
    "StageRun",
    "StageStats",
    "StageStatus",
    "StepCommit",
    "StepRecord",
    "check_queue",
    "check_queues",
    "check_transition",
    "new_run_id",
]
