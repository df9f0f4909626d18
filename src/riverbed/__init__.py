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
    EndOfStream,
    FlowDefinitionError,
    FlowSerializationError,
    FlowVersionError,
    InternalError,
    InvalidTransitionError,
    LeaseLostError,
    NotCallableError,
    RiverbedError,
    RunFailedError,
    RunNotFoundError,
    RunNotResumableError,
    SignatureError,
    SourceError,
    StageFailedError,
    StageTimeoutError,
    StoreError,
    StoreUnavailableError,
    StoreVersionError,
    TargetError,
)
from riverbed._liveness import crashed_if_dead, interruption
from riverbed._model.dag import workflow_from_graph
from riverbed._model.endpoints import HTTPSource, Reply, ReplySink, Request, http, reply
from riverbed._model.flow import Flow
from riverbed._model.keys import stable_hash
from riverbed._model.ops.aggregate import Collect, Count, Fold, Max, Min, Reduce, Reservoir
from riverbed._model.ops.dispatch import Handler
from riverbed._model.ops.joins import ExpireAfter, MaxPending, WaitForever
from riverbed._model.ops.time import Late, LatePolicy
from riverbed._model.ops.windows import (
    CountWindow,
    Early,
    Session,
    Sliding,
    Tumbling,
    Updated,
    Window,
)
from riverbed._model.policy import OnError, Retry
from riverbed._model.producers import Producer
from riverbed._model.reactive import Builder
from riverbed._model.routines import Emission, Message, Routines
from riverbed._model.sinks import Sink, TransactionalSink
from riverbed._model.sources import PartitionReader, Source
from riverbed._model.stages import (
    FoldStage,
    KeyedStateStage,
    Port,
    SinkMode,
    SinkStage,
    Stage,
    StageKind,
    StatefulStage,
)
from riverbed._model.streams import Branch, KeyedStream, Routes, Stream
from riverbed._records import (
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
from riverbed._run import Worker, arun, run, store_url
from riverbed._runtime.metrics import MetricsObserver
from riverbed._runtime.observer import RunObserver
from riverbed._runtime.ray.runner import RayRunner, StageResources
from riverbed._runtime.result import DeadLetter, RunResult, StageError, StageStats
from riverbed._schedule import schedule
from riverbed._store import Store, open_store
from riverbed._version import __version__  # declared there only

__all__ = [
    "Branch",
    "Builder",
    "Checkpoint",
    "Collect",
    "Count",
    "CountWindow",
    "CycleError",
    "DanglingStreamError",
    "DeadLetter",
    "DeadLetterRecord",
    "DuplicateRunError",
    "DuplicateStageError",
    "Early",
    "Emission",
    "EndOfStream",
    "ErrorInfo",
    "ExpireAfter",
    "Flow",
    "FlowDefinitionError",
    "FlowSerializationError",
    "FlowVersionError",
    "Fold",
    "FoldStage",
    "HTTPSource",
    "Handler",
    "InternalError",
    "InvalidTransitionError",
    "KeyedStateStage",
    "KeyedStream",
    "Late",
    "LatePolicy",
    "Lease",
    "LeaseLostError",
    "Max",
    "MaxPending",
    "Message",
    "MetricsObserver",
    "Min",
    "NotCallableError",
    "OnError",
    "PartitionReader",
    "Port",
    "Producer",
    "RayRunner",
    "Reduce",
    "Reply",
    "ReplySink",
    "Request",
    "Reservoir",
    "Retry",
    "RiverbedError",
    "Routes",
    "Routines",
    "RunFailedError",
    "RunNotFoundError",
    "RunNotResumableError",
    "RunObserver",
    "RunRecord",
    "RunResult",
    "RunStatus",
    "RunTransition",
    "Session",
    "SignatureError",
    "Sink",
    "SinkMode",
    "SinkStage",
    "Sliding",
    "Source",
    "SourceError",
    "Stage",
    "StageError",
    "StageFailedError",
    "StageKind",
    "StageResources",
    "StageRun",
    "StageStats",
    "StageStatus",
    "StageTimeoutError",
    "StatefulStage",
    "StepCommit",
    "StepRecord",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "StoreVersionError",
    "Stream",
    "TargetError",
    "TransactionalSink",
    "Tumbling",
    "Updated",
    "WaitForever",
    "Window",
    "Worker",
    "WorkflowResult",
    "__version__",
    "arun",
    "check_transition",
    "crashed_if_dead",
    "http",
    "interruption",
    "merge",
    "open_store",
    "reply",
    "run",
    "schedule",
    "stable_hash",
    "store_url",
    "workflow_from_graph",
]


WorkflowResult = RunResult
"""What ``rb.run`` returns: a ``RunResult`` (kept under this name for earlier code)."""


def merge(*streams: Stream, name: str | None = None) -> Stream:
    """One stream of the events of all ``streams`` (fan-in), e.g. ``rb.merge(a, b)``."""
    if not streams:
        raise FlowDefinitionError("rb.merge needs at least one stream")
    return streams[0].merge(*streams[1:], name=name)
