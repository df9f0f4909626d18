"""Every error riverbed raises, in one place.

The hierarchy::

    RiverbedError                       base of everything riverbed raises on purpose
    ├── FlowDefinitionError (ValueError)    the flow is wrong; raised while it is built
    │   ├── NotCallableError (TypeError)    a stage was given something that cannot be called
    │   ├── SignatureError (TypeError)      a callable takes the wrong number of parameters
    │   ├── DuplicateStageError             two stages share one name
    │   ├── DanglingStreamError             a stream goes nowhere
    │   └── CycleError                      the graph loops back on itself
    ├── FlowSerializationError (ValueError) the flow cannot be written to or read from JSON
    ├── StageFailedError (RuntimeError)     a stage's error stopped the run (policy STOP)
    ├── StageTimeoutError (TimeoutError)    one call of a stage ran past its timeout
    ├── RunFailedError (RuntimeError)       ``Flow.run`` ended FAILED; carries the result
    ├── RunNotResumableError (RuntimeError) a run that cannot be resumed (and why)
    │   └── FlowVersionError                its flow changed since its checkpoint
    ├── LeaseLostError (RuntimeError)       this process no longer holds the run it ran
    ├── SourceError (RuntimeError)          a source broke its protocol
    ├── EndOfStream                         raised by a producer function: its stream ended
    ├── TargetError (ValueError)            a CLI TARGET (app:flow) that leads to no flow
    ├── StoreError (RuntimeError)           the store cannot be opened, read or written
    │   ├── StoreVersionError               its schema is newer than this riverbed knows
    │   ├── StoreUnavailableError           the store stayed unreachable past its retries
    │   └── DuplicateRunError               a run with this id is already stored
    ├── RunNotFoundError (LookupError)      no stored run has this id (or unique prefix)
    ├── InvalidTransitionError (ValueError) a run status change that the rules forbid
    └── InternalError (RuntimeError)        a bug in riverbed itself; please report it

Errors carry structured context (``flow``, ``stage``, ``attempt``...) as attributes, and
their messages name the culprit and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from riverbed._records import RunStatus
    from riverbed._runtime.result import RunResult

__all__ = [
    "CycleError",
    "DanglingStreamError",
    "DuplicateRunError",
    "DuplicateStageError",
    "EndOfStream",
    "FlowDefinitionError",
    "FlowSerializationError",
    "FlowVersionError",
    "InternalError",
    "InvalidTransitionError",
    "LeaseLostError",
    "NotCallableError",
    "RiverbedError",
    "RunFailedError",
    "RunNotFoundError",
    "RunNotResumableError",
    "SignatureError",
    "SourceError",
    "StageFailedError",
    "StageTimeoutError",
    "StoreError",
    "StoreUnavailableError",
    "StoreVersionError",
    "TargetError",
]


class RiverbedError(Exception):
    """Base class of every error riverbed raises on purpose."""

    __module__ = "riverbed"


class FlowDefinitionError(RiverbedError, ValueError):
    """The flow is malformed; raised while it is built, before anything runs."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, flow: str | None = None, stage: str | None = None):
        super().__init__(message)
        self.flow = flow
        self.stage = stage


class NotCallableError(FlowDefinitionError, TypeError):
    """A stage was given an object that cannot be called."""

    __module__ = "riverbed"


class SignatureError(FlowDefinitionError, TypeError):
    """A stage's callable does not take the parameters the operator passes it."""

    __module__ = "riverbed"


class DuplicateStageError(FlowDefinitionError):
    """Two stages of one flow have the same name."""

    __module__ = "riverbed"


class DanglingStreamError(FlowDefinitionError):
    """A stream's events go nowhere: nothing consumes it and it is not a sink."""

    __module__ = "riverbed"


class CycleError(FlowDefinitionError):
    """The flow's graph has a cycle."""

    __module__ = "riverbed"


class FlowSerializationError(RiverbedError, ValueError):
    """A flow cannot be serialized to JSON, or JSON cannot be built back into a flow."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, flow: str | None = None, stage: str | None = None):
        super().__init__(message)
        self.flow = flow
        self.stage = stage


class StageFailedError(RiverbedError, RuntimeError):
    """A stage raised, its retries (if any) ran out, and its policy said STOP."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, stage: str, attempts: int, event: Any = None):
        super().__init__(message)
        self.stage = stage
        self.attempts = attempts
        self.event = event


class StageTimeoutError(RiverbedError, TimeoutError):
    """One call of a stage's function ran longer than the stage's ``timeout``."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, stage: str, timeout: float):
        super().__init__(message)
        self.stage = stage
        self.timeout = timeout


class RunFailedError(RiverbedError, RuntimeError):
    """``Flow.run`` ended with status FAILED. ``.result`` holds the whole run result."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, result: RunResult):
        super().__init__(message)
        self.result = result


class SourceError(RiverbedError, RuntimeError):
    """A source did not keep the source protocol (e.g. returned a non-list batch)."""

    __module__ = "riverbed"


class EndOfStream(RiverbedError):  # noqa: N818 - a signal, named as StopIteration is
    """Raised by a producer function (see ``rb.Producer``) to say that its stream has
    ended: the source finishes, and the run drains. Not an error of the run."""

    __module__ = "riverbed"


class TargetError(RiverbedError, ValueError):
    """A TARGET (``module:attr`` or ``file.py:attr``) that does not lead to a flow; the
    message says what to write instead."""

    __module__ = "riverbed"


class RunNotResumableError(RiverbedError, RuntimeError):
    """A run cannot be resumed: it succeeded, it belongs to another flow, or it is still
    running elsewhere. The message says which, and what to do."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, run_id: str):
        super().__init__(message)
        self.run_id = run_id


class FlowVersionError(RunNotResumableError):
    """The flow changed since the run's checkpoint; ``changed`` names the stages. Resume
    with ``compatible=True`` if the new code can carry on from the old state."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, run_id: str, changed: tuple[str, ...]):
        super().__init__(message, run_id=run_id)
        self.changed = changed


class StoreError(RiverbedError, RuntimeError):
    """The store cannot be opened, read or written (bad URL, unreachable server, a
    database error). ``url`` names the store, without its password."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, url: str | None = None):
        super().__init__(message)
        self.url = url


class StoreUnavailableError(StoreError):
    """The store could not be reached (a database restarting, a network cut, a locked
    file) and stayed so through every retry. Nothing was written by the failed call; the
    run it belonged to stays resumable once the store is back."""

    __module__ = "riverbed"


class LeaseLostError(RiverbedError, RuntimeError):
    """This process no longer holds the lease of run ``run_id``: the run was cancelled
    (``riverbed runs cancel``), or its lease expired (the process was paused, or cut off
    from the store, for longer than the lease) and another process took the run over.
    Nothing this process wrote after losing the lease was kept; it stops working on the
    run. ``status`` and ``holder`` say where the run stands now."""

    __module__ = "riverbed"

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        status: RunStatus | None = None,
        holder: str | None = None,
    ):
        super().__init__(message)
        self.run_id = run_id
        self.status = status
        self.holder = holder


class StoreVersionError(StoreError):
    """The store's schema is newer than this riverbed knows: another process with a newer
    riverbed migrated it. Upgrade riverbed; an older one must not write to it."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, url: str, found: int, known: int):
        super().__init__(message, url=url)
        self.found = found
        self.known = known


class DuplicateRunError(StoreError):
    """A run with this id is already stored; run ids are unique."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, run_id: str, url: str | None = None):
        super().__init__(message, url=url)
        self.run_id = run_id


class RunNotFoundError(RiverbedError, LookupError):
    """No stored run has this id, or the prefix given matches none or several.
    ``candidates`` lists the ids an ambiguous prefix matched."""

    __module__ = "riverbed"

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        url: str | None = None,
        candidates: tuple[str, ...] = (),
    ):
        super().__init__(message)
        self.run_id = run_id
        self.url = url
        self.candidates = candidates


class InvalidTransitionError(RiverbedError, ValueError):
    """A run status change that the rules forbid (e.g. from SUCCEEDED to anything).
    ``old`` and ``new`` are the two ``RunStatus`` members; ``run_id`` the run, if known."""

    __module__ = "riverbed"

    def __init__(self, message: str, *, old: RunStatus, new: RunStatus, run_id: str | None = None):
        super().__init__(message)
        self.old = old
        self.new = new
        self.run_id = run_id


class InternalError(RiverbedError, RuntimeError):
    """A bug in riverbed itself, not in the user's flow. Please report it."""

    __module__ = "riverbed"
