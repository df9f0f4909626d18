"""riverbed: event-driven flows of plain Python functions and classes.

>>> import riverbed as rb
>>> flow = rb.Flow("hello")
>>> flow.source(["a", "b"]).map(str.upper).sink(print)

Build a ``Flow`` from sources and operators on ``Stream``; run it with ``flow.run()``. A
workflow (``flow.input()`` ... ``.output()``) runs with ``rb.run(flow, input)``, every step
recorded in the store.
"""

from riverbed._errors import (
    CycleError,
    DanglingStreamError,
    DuplicateRunError,
    DuplicateStageError,
    FlowDefinitionError,
    FlowSerializationError,
    InternalError,
    InvalidTransitionError,
    NotCallableError,
    RiverbedError,
    RunFailedError,
    RunNotFoundError,
    SignatureError,
    SourceError,
    StageFailedError,
    StageTimeoutError,
    StoreError,
    StoreVersionError,
    TargetError,
)
from riverbed._model.flow import Branch, Flow, KeyedStream, Routes, Stream
from riverbed._model.keys import stable_hash
from riverbed._model.policy import OnError, Retry
from riverbed._model.sinks import Sink
from riverbed._model.sources import PartitionReader, Source
from riverbed._model.stages import Port, SinkMode, Stage, StageKind
from riverbed._runtime.result import DeadLetter, RunResult, StageError, StageStats
from riverbed._runtime.workflow import WorkflowResult, arun, run
from riverbed._store import (
    Checkpoint,
    DeadLetterRecord,
    ErrorInfo,
    RunRecord,
    RunStatus,
    StageRun,
    StageStatus,
    StepCommit,
    StepRecord,
    Store,
    check_transition,
    open_store,
)

__version__ = "0.1.0"

__all__ = [
    "Branch",
    "Checkpoint",
    "CycleError",
    "DanglingStreamError",
    "DeadLetter",
    "DeadLetterRecord",
    "DuplicateRunError",
    "DuplicateStageError",
    "ErrorInfo",
    "Flow",
    "FlowDefinitionError",
    "FlowSerializationError",
    "InternalError",
    "InvalidTransitionError",
    "KeyedStream",
    "NotCallableError",
    "OnError",
    "PartitionReader",
    "Port",
    "Retry",
    "RiverbedError",
    "Routes",
    "RunFailedError",
    "RunNotFoundError",
    "RunRecord",
    "RunResult",
    "RunStatus",
    "SignatureError",
    "Sink",
    "SinkMode",
    "Source",
    "SourceError",
    "Stage",
    "StageError",
    "StageFailedError",
    "StageKind",
    "StageRun",
    "StageStats",
    "StageStatus",
    "StageTimeoutError",
    "StepCommit",
    "StepRecord",
    "Store",
    "StoreError",
    "StoreVersionError",
    "Stream",
    "TargetError",
    "WorkflowResult",
    "__version__",
    "arun",
    "check_transition",
    "merge",
    "open_store",
    "run",
    "stable_hash",
]


def merge(*streams: Stream, name: str | None = None) -> Stream:
    """One stream of the events of all ``streams`` (fan-in), e.g. ``rb.merge(a, b)``."""
    if not streams:
        raise FlowDefinitionError("rb.merge needs at least one stream")
    return streams[0].merge(*streams[1:], name=name)
