"""A run's configuration, declared once: every option of ``Flow.run`` / ``rb.run``, its
default, its check and its documentation live in ``RunConfig``'s fields. ``Flow.run``'s
docstring is written from them, ``RunOptions`` (the typed keywords) is checked against
them by a test, and every runner reads the same frozen object.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from riverbed._runtime.clock import Clock

if TYPE_CHECKING:
    from riverbed._runtime.observer import RunObserver
    from riverbed._runtime.runner import Runner
    from riverbed._store.protocol import Store

__all__ = [
    "DEFAULT",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "Default",
    "RunConfig",
    "RunOptions",
    "options_doc",
]


class Default(enum.Enum):
    """The type of ``DEFAULT``: "not given", where None means something (no checkpoints)."""

    DEFAULT = "default"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = Default.DEFAULT

DEFAULT_CHECKPOINT_INTERVAL = 5.0
"""Seconds between checkpoints of a run recorded in a store, unless it says otherwise:
such a run is resumable after a crash by default. Five seconds bounds what a crash costs
(at most five seconds of input read again) at a cost benchmark W2C measures at about 1% of
throughput for W2's state."""


def _doc(text: str, default: str) -> dict[str, str]:
    return {"doc": text, "default": default}


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Every option of a run (see the module docstring). Built from ``Flow.run``'s
    keywords; invalid values raise ``ValueError`` or ``TypeError`` naming the option."""

    batch_size: int = field(
        default=1000, metadata=_doc("most events a source reads into one batch", "1000")
    )
    progress: bool | None = field(
        default=None,
        metadata=_doc("live progress per stage; None shows it on a terminal only", "None"),
    )
    clock: Clock | None = field(
        default=None,
        metadata=_doc(
            "the clock for retries' backoff, source polling and timers (a test's "
            "``TestClock``); a run on a test's clock takes no checkpoints unasked",
            "the system clock",
        ),
    )
    concurrency: int = field(
        default=16,
        metadata=_doc(
            "calls of an async stage in flight at once, unless the stage sets its own", "16"
        ),
    )
    channel_capacity: int = field(
        default=4,
        metadata=_doc("batches each writer of an edge may have in it before it waits", "4"),
    )
    raise_on_failure: bool = field(
        default=True,
        metadata=_doc(
            "raise ``RunFailedError`` when the run FAILED, or just return the result", "True"
        ),
    )
    run_id: str | None = field(default=None, metadata=_doc("the run's id", "a new random one"))
    max_errors: int = field(
        default=1000,
        metadata=_doc("handled errors the result keeps in full (counters count all)", "1000"),
    )
    seed: int | None = field(
        default=None,
        metadata=_doc("seed of the random jitter of retries, for repeatable tests", "None"),
    )
    store: Store | str | bool | None = field(
        default=None,
        metadata=_doc(
            "where the run is recorded: a ``Store``, a store URL, None for the default store "
            "(RIVERBED_STORE, else ``./.riverbed``), or False for nowhere",
            "None",
        ),
    )
    checkpoint_interval: float | Default | None = field(
        default=DEFAULT,
        metadata=_doc(
            "seconds of the run's clock between checkpoints; None for none by time",
            f"{DEFAULT_CHECKPOINT_INTERVAL:g} for a run recorded in a store, else none",
        ),
    )
    checkpoint_events: int | None = field(
        default=None,
        metadata=_doc("source events between checkpoints; None for none by volume", "None"),
    )
    resume: str | None = field(
        default=None,
        metadata=_doc("resume this run (its id) from its last checkpoint or step", "None"),
    )
    rerun_of: str | None = field(
        default=None,
        metadata=_doc(
            "start a new run from the last checkpoint of this run, recorded as ``rerun_of``",
            "None",
        ),
    )
    compatible: bool = field(
        default=False,
        metadata=_doc(
            "resume even though the flow's version changed since the checkpoint", "False"
        ),
    )
    renamed: Mapping[str, str] = field(
        default_factory=dict,
        metadata=_doc(
            "on a resume or re-run: old stage name -> new one, for stages renamed since the "
            "checkpoint, whose state goes to the new name",
            "{}",
        ),
    )
    params: Mapping[str, Any] = field(
        default_factory=dict, metadata=_doc("parameters recorded with the run (JSON-able)", "{}")
    )
    target: str | None = field(
        default=None,
        metadata=_doc(
            "``module:attr`` of the flow, recorded so that workers and ``riverbed runs`` can "
            "load it again",
            "found by itself when the flow is a module's attribute",
        ),
    )
    claimed: str | None = field(
        default=None,
        metadata=_doc(
            "a run this process (a worker) claimed from the queue; interrupted, it goes back "
            "to the queue rather than being cancelled",
            "None",
        ),
    )
    observers: Sequence[RunObserver] = field(
        default=(),
        metadata=_doc("told what the run does (``RunObserver``)", "()"),
    )
    metrics_port: int | None = field(
        default=None,
        metadata=_doc(
            "serve the run's Prometheus metrics at ``http://127.0.0.1:PORT/metrics`` while it "
            "runs (needs ``riverbed[serve]``; docs/serve.md lists them)",
            "None",
        ),
    )
    runner: Runner | None = field(
        default=None,
        metadata=_doc(
            "what executes the run: None for this process (the local runner), or "
            "``rb.RayRunner(...)`` for a Ray cluster",
            "None",
        ),
    )

    def __post_init__(self) -> None:
        for name, minimum in (("batch_size", 1), ("concurrency", 1), ("channel_capacity", 1)):
            _check_int(name, getattr(self, name), minimum)
        _check_int("max_errors", self.max_errors, 0)
        if self.metrics_port is not None:
            _check_int("metrics_port", self.metrics_port, 1)
        if self.checkpoint_events is not None:
            _check_int("checkpoint_events", self.checkpoint_events, 1)
        interval = self.checkpoint_interval
        if not isinstance(interval, Default | None) and (
            isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0
        ):
            raise ValueError(
                f"checkpoint_interval must be a number of seconds > 0 (or None for no "
                f"checkpoints by time), got {interval!r}"
            )
        if sum(x is not None for x in (self.resume, self.rerun_of, self.claimed)) > 1:
            raise ValueError("give at most one of resume=, rerun_of= (and a claimed run)")
        _check_renamed(self.renamed, self.resume or self.rerun_of)
        object.__setattr__(self, "observers", tuple(self.observers))
        object.__setattr__(self, "renamed", dict(self.renamed or {}))
        object.__setattr__(self, "params", dict(self.params or {}))

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> RunConfig:
        """The configuration of ``options`` (``Flow.run``'s keywords); an unknown option is
        a ``TypeError`` listing the known ones."""
        unknown = sorted(set(options) - set(OPTION_NAMES))
        if unknown:
            raise TypeError(
                f"unknown run option(s) {', '.join(unknown)}; the options are "
                f"{', '.join(OPTION_NAMES)}"
            )
        return cls(**options)

    @property
    def recorded(self) -> bool:
        """True if the run is recorded in a store."""
        return self.store is not False

    @property
    def checkpoint_every(self) -> float | None:
        """Seconds between checkpoints, the default resolved: recorded runs are resumable
        by default; a run on a test's clock, whose time only moves when told, takes none
        unasked."""
        if not isinstance(self.checkpoint_interval, Default):
            return self.checkpoint_interval
        chosen = not self.recorded or self.checkpoint_events is not None or self.clock is not None
        return None if chosen else DEFAULT_CHECKPOINT_INTERVAL

    def but(self, **changes: Any) -> RunConfig:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(RunConfig))

WORKFLOW_OPTIONS = frozenset(
    {
        "store",
        "run_id",
        "resume",
        "rerun_of",
        "target",
        "claimed",
        "observers",
        "runner",
        "params",
        # A workflow's FAILED run is returned, never raised: False asks for what it does.
        "raise_on_failure",
        # A workflow commits every step, which meets any interval or volume asked for.
        "checkpoint_interval",
        "checkpoint_events",
    }
)
"""The options that mean something for a workflow run, or that ask only for what a
workflow does anyway; so that whoever runs a stored run again (the CLI, a worker) needs
not ask which kind of flow it holds. A workflow has no sources to batch, no keyed state
to rename and no live progress display (``progress=False`` is taken, ``True`` is not)."""

_WORKFLOW_DOES = {"progress": (False,)}
"""Values of other options that a workflow takes, being what it does."""


def stream_only_options(options: Mapping[str, Any]) -> list[str]:
    """The options in ``options`` that only a stream can take, given other than their
    default (for a clear error when a workflow is given them)."""
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    return sorted(
        name
        for name, value in options.items()
        if name not in WORKFLOW_OPTIONS
        and value != defaults.get(name, value)
        and value not in _WORKFLOW_DOES.get(name, ())
    )


def options_doc() -> str:
    """The options as the docstrings of ``Flow.run`` and ``rb.run`` list them."""
    lines = []
    for option in dataclasses.fields(RunConfig):
        lines.append(
            f"``{option.name}``: {option.metadata['doc']} (default: {option.metadata['default']})."
        )
    return "\n".join(lines)


class RunOptions(TypedDict, total=False):
    """The keywords of ``Flow.run`` / ``Flow.arun``, for type checkers: ``RunConfig``'s
    fields (a test keeps the two equal). Their meaning: see ``RunConfig``."""

    batch_size: int
    progress: bool | None
    clock: Clock
    concurrency: int
    channel_capacity: int
    raise_on_failure: bool
    run_id: str
    max_errors: int
    seed: int
    store: Store | str | bool | None
    checkpoint_interval: float | None
    checkpoint_events: int | None
    resume: str
    rerun_of: str
    compatible: bool
    renamed: Mapping[str, str]
    params: Mapping[str, Any]
    target: str
    claimed: str
    observers: Sequence[RunObserver]
    metrics_port: int | None
    runner: Runner | None


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_renamed(renamed: Mapping[str, str] | None, restored: str | None) -> None:
    if not renamed:
        return
    if restored is None:
        raise ValueError(
            "renamed= says where the state of renamed stages goes when a run is resumed or "
            "re-run: pass it with resume= or rerun_of="
        )
    if not all(isinstance(old, str) and isinstance(new, str) for old, new in renamed.items()):
        raise ValueError(f"renamed= maps old stage names to new ones (str), got {renamed!r}")
