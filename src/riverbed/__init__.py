"""riverbed: event-driven flows of plain Python functions and classes.

>>> import riverbed as rb
>>> flow = rb.Flow("hello")
>>> flow.source(["a", "b"]).map(str.upper).sink(print)

Build a ``Flow`` from sources and operators on ``Stream``; run it with ``flow.run()``.
"""

from riverbed._errors import (
    CycleError,
    DanglingStreamError,
    DuplicateStageError,
    FlowDefinitionError,
    FlowSerializationError,
    InternalError,
    NotCallableError,
    RiverbedError,
    RunFailedError,
    SignatureError,
    SourceError,
    StageFailedError,
    StageTimeoutError,
    TargetError,
)
from riverbed._model.flow import Branch, Flow, KeyedStream, Routes, Stream
from riverbed._model.keys import stable_hash
from riverbed._model.policy import OnError, Retry
from riverbed._model.sinks import Sink
from riverbed._model.sources import PartitionReader, Source
from riverbed._model.stages import Port, SinkMode, Stage, StageKind
from riverbed._runtime.result import (
    DeadLetter,
    RunResult,
    RunStatus,
    StageError,
    StageStats,
)

__version__ = "0.1.0"

__all__ = [
    "Branch",
    "CycleError",
    "DanglingStreamError",
    "DeadLetter",
    "DuplicateStageError",
    "Flow",
    "FlowDefinitionError",
    "FlowSerializationError",
    "InternalError",
    "KeyedStream",
    "NotCallableError",
    "OnError",
    "PartitionReader",
    "Port",
    "Retry",
    "RiverbedError",
    "Routes",
    "RunFailedError",
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
    "StageStats",
    "StageTimeoutError",
    "Stream",
    "TargetError",
    "__version__",
    "merge",
    "stable_hash",
]


def merge(*streams: Stream, name: str | None = None) -> Stream:
    """One stream of the events of all ``streams`` (fan-in), e.g. ``rb.merge(a, b)``."""
    if not streams:
        raise FlowDefinitionError("rb.merge needs at least one stream")
    return streams[0].merge(*streams[1:], name=name)
