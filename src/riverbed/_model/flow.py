"""``Flow``: a named graph of frozen ``Stage`` records.

The builder methods of its stream handles (``streams.py``) add stages; each call checks
what it can at once, and ``Flow.validate`` checks the whole (streams that go nowhere,
cycles) before a flow runs, is drawn or is serialized.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Unpack

from riverbed._errors import DuplicateStageError, FlowDefinitionError
from riverbed._model import callables, graph
from riverbed._model.data import check_declared
from riverbed._model.origin import caller_module
from riverbed._model.policy import OnError, Retry
from riverbed._model.settings import CACHEABLE as _CACHEABLE
from riverbed._model.sources import as_source, is_source
from riverbed._model.stages import (
    Port,
    Stage,
    StageKind,
)
from riverbed._model.streams import KeyedStream, Stream

if TYPE_CHECKING:
    from riverbed._model.reactive import Builder
    from riverbed._runtime.config import RunOptions
    from riverbed._runtime.result import RunResult

__all__ = ["Flow"]

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class Flow:
    """A named graph of stages: a description of work, which runs only when asked.

    >>> import riverbed as rb
    >>> flow = rb.Flow("doubles")
    >>> flow.source([1, 2, 3]).map(lambda x: x * 2).sink(print)  # doctest: +ELLIPSIS
    >>> result = flow.run(progress=False)  # doctest: +SKIP

    ``on_error`` and ``retry`` set the failure policy of every stage that sets none itself.
    """

    __module__ = "riverbed"

    def __init__(
        self, name: str, *, on_error: OnError | None = None, retry: Retry | None = None
    ) -> None:
        if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
            raise FlowDefinitionError(
                f"flow name {name!r} is not valid: use letters, digits, '_', '-' or '.'"
            )
        if on_error is not None and not isinstance(on_error, OnError):
            raise TypeError(f"Flow(on_error=...) takes an rb.OnError, got {on_error!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"Flow(retry=...) takes an rb.Retry, got {retry!r}")
        self.name = name
        self.on_error = on_error
        self.retry = retry
        self.module = caller_module()
        """The module that built the flow: where ``riverbed`` looks for it to record its
        TARGET with a run (see ``riverbed._model.origin``)."""
        self._stages: dict[str, Stage] = {}
        self._built: dict[str, Stream] = {}
        """The streams of the targets ``resolve`` built so far: a target is built once."""

    # -- building -------------------------------------------------------------------------

    def source(self, source: Any, *, name: str | None = None) -> Stream:
        """Add a source: a list or other iterable, an async iterable, a generator function
        (called anew for each run), or an object keeping the ``rb.Source`` protocol."""
        derived = None
        if name is None:
            derived = (
                callables.short_name(source) if callable(source) or is_source(source) else "source"
            )
            if derived == "lambda":
                derived = "source"
        stage_name = self._claim_name(
            name if name is not None else derived, explicit=name is not None
        )
        try:
            resolved = as_source(source)
        except TypeError as error:
            raise FlowDefinitionError(
                f"stage {stage_name!r}: {error}", flow=self.name, stage=stage_name
            ) from None
        stage = Stage(name=stage_name, kind=StageKind.SOURCE, fn=resolved)
        return self._add(stage)

    def resolve(self, target: str, builders: Iterable[Builder]) -> dict[str, Stream]:
        """Add the stages of the ``builders`` that ``target`` needs, dependencies first,
        and return the stream of every target built, by name (``target``'s among them):
        see docs/routing.md. A target no builder provides and a cycle of requirements are
        errors here.

        >>> import riverbed as rb
        >>> def numbers():
        ...     yield from [1, 2, 3]
        >>> flow = rb.Flow("numbers")
        >>> flow.resolve("numbers", [rb.Builder("numbers", numbers)])["numbers"].sink(print)
        """
        from riverbed._model.reactive import resolve

        return resolve(self, target, builders)

    def input(self, *, name: str = "input", keys: Sequence[str] = ()) -> Stream:
        """The input of a workflow: a stream whose one event is the ``input`` given to
        ``rb.run(flow, input)``. A workflow's steps follow it, and ``.output()`` ends it.
        ``keys``: the context keys the input brings, for steps that declare ``reads=``
        (the input must then be a dict holding them; see docs/workflows.md).

        >>> import riverbed as rb
        >>> flow = rb.Flow("greet")
        >>> flow.input().map(str.upper).output()
        >>> rb.run(flow, "hi", store=False).output  # doctest: +SKIP
        'HI'
        """
        from riverbed._model.settings import context_keys
        from riverbed._model.workflow import WorkflowInput

        stage_name = self._claim_name(name, explicit=True)
        writes = context_keys(keys, f"flow {self.name!r}: input(keys=...)")
        return self._add(
            Stage(name=stage_name, kind=StageKind.SOURCE, fn=WorkflowInput(), writes=writes)
        )

    def merge(self, *streams: Stream, name: str | None = None) -> Stream:
        """One stream of the events of all ``streams`` (fan-in); see ``Stream.merge``."""
        if not streams:
            raise FlowDefinitionError("merge needs at least one stream", flow=self.name)
        return streams[0].merge(*streams[1:], name=name)

    def add_stage(self, stage: Stage) -> Stream:
        """Add a ready-made stage (used by operator extensions and ``Flow.from_json``).

        Its inputs must name stages already in the flow.
        """
        if stage.name in self._stages:
            raise self._duplicate(stage.name)
        for port in stage.inputs:
            upstream = self._stages.get(port.stage)
            if upstream is None:
                raise FlowDefinitionError(
                    f"stage {stage.name!r} reads from {port.stage!r}, which is not a stage "
                    f"of flow {self.name!r}; add that stage first",
                    flow=self.name,
                    stage=stage.name,
                )
            if port.name not in upstream.outputs:
                raise FlowDefinitionError(
                    f"stage {stage.name!r} reads output {port.name!r} of {port.stage!r}, "
                    f"which has outputs {list(upstream.outputs)}",
                    flow=self.name,
                    stage=stage.name,
                )
        return self._add(stage)

    def _add(self, stage: Stage) -> Stream:
        if stage.cache and stage.kind not in _CACHEABLE:
            raise FlowDefinitionError(
                f"stage {stage.name!r} ({graph.summary(stage)}): cache=True memoizes a pure "
                "function of one event, which a "
                f"{stage.kind.value} is not; it applies to "
                f"{', '.join(sorted(kind.value for kind in _CACHEABLE))}: remove cache=True",
                flow=self.name,
                stage=stage.name,
            )
        check_declared(self.name, self._stages, stage)
        self._stages[stage.name] = stage
        port = Port(stage.name, stage.outputs[0]) if stage.outputs else Port(stage.name)
        return (KeyedStream if stage.keyed else Stream)(self, port)

    def _claim_name(self, name: str | None, *, explicit: bool, base: str = "stage") -> str:
        """A unique stage name: the explicit one (which must be free) or one derived from
        ``name``, numbered ``_2``, ``_3``... in building order, which keeps it stable."""
        if explicit:
            assert name is not None
            if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
                raise FlowDefinitionError(
                    f"stage name {name!r} is not valid: use letters, digits, '_', '-' or '.'",
                    flow=self.name,
                )
            if name in self._stages:
                raise self._duplicate(name)
            return name
        candidate = name or base
        number = 1
        unique = candidate
        while unique in self._stages:
            number += 1
            unique = f"{candidate}_{number}"
        return unique

    def _duplicate(self, name: str) -> DuplicateStageError:
        existing = graph.summary(self._stages[name])
        return DuplicateStageError(
            f"flow {self.name!r} already has a stage named {name!r} ({existing}); stage "
            "names key state and records, so each must be unique: pass another name=...",
            flow=self.name,
            stage=name,
        )

    # -- reading --------------------------------------------------------------------------

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages in the order they were added."""
        return tuple(self._stages.values())

    def stage(self, name: str) -> Stage:
        """The stage called ``name``; LookupError naming the known ones otherwise."""
        try:
            return self._stages[name]
        except KeyError:
            raise LookupError(
                f"flow {self.name!r} has no stage {name!r}; it has {list(self._stages)}"
            ) from None

    def validate(self) -> None:
        """Check the whole graph: sources exist, every stream leads somewhere, no cycles.

        Raises a ``FlowDefinitionError`` subclass naming the stage and its function.
        """
        graph.validate(self.name, self.stages)
        if not self.is_workflow:
            queued = next((stage for stage in self.stages if stage.queue is not None), None)
            if queued is not None:
                raise FlowDefinitionError(
                    f"stage {queued.name!r} has queue={queued.queue!r}, which is for the steps "
                    "of a workflow (flow.input() ... .output()): a stream's stages run where "
                    "its runner puts them; remove queue=",
                    flow=self.name,
                    stage=queued.name,
                )

    @property
    def version(self) -> str:
        """A hash of the flow's structure and every stage's code: it changes when either
        changes. State and records of a run are tied to it."""
        from riverbed._model.serialize import flow_version

        return flow_version(self)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The flow as JSON; callables by import reference (``module:qualname``).

        Raises ``FlowSerializationError`` naming the stage whose callable cannot be
        referenced (a lambda, a closure, a local function).
        """
        from riverbed._model.serialize import to_json

        return to_json(self, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Flow:
        """Build a flow back from ``to_json`` output, importing each callable."""
        from riverbed._model.serialize import from_json

        return from_json(text)

    @property
    def is_workflow(self) -> bool:
        """True if the flow starts at ``flow.input()``: run it with ``rb.run(flow, input)``."""
        from riverbed._model.workflow import is_workflow_input

        return any(is_workflow_input(stage) for stage in self._stages.values())

    def replay(self, stage: str, events: list[Any]) -> Flow:
        """A flow that feeds ``events`` into ``stage`` and runs what is downstream of it:
        how dead letters are replayed into the stage that failed them."""
        from riverbed._model.replay import replay_flow

        return replay_flow(self, stage, events)

    def to_mermaid(self) -> str:
        """A Mermaid ``flowchart`` of the flow (what ``riverbed graph`` prints)."""
        self.validate()
        return graph.to_mermaid(self.name, self.stages)

    def describe(self) -> str:
        """A readable listing: one line per stage with its kind, function and inputs."""
        return graph.describe(self.name, self.stages)

    def __repr__(self) -> str:
        return f"<Flow {self.name!r}: {len(self._stages)} stages>"

    def __str__(self) -> str:
        return self.describe()

    # -- running (the local runner; imported late so the model does not depend on it) -----

    def run(self, **options: Unpack[RunOptions]) -> RunResult:
        """Run the flow on the local engine until its sources end, and return the result.

        A FAILED run raises ``RunFailedError`` (its ``.result`` holds everything) unless
        ``raise_on_failure=False``. Ctrl-C stops the sources and drains what is in flight
        (status CANCELLED, with each source's position); a second Ctrl-C stops at once.
        Inside a running event loop (a notebook's), use ``await flow.arun(...)``.
        """
        # The front door, above the runtime: a flow is data, and running it is the
        # facade's to arrange (the one import of the model upwards; see architecture.md).
        from riverbed._run import run_stream

        return run_stream(self, **options)

    async def arun(self, **options: Unpack[RunOptions]) -> RunResult:
        """``run`` for code already inside an event loop (no Ctrl-C handling: cancel the
        task instead, which cancels the run)."""
        from riverbed._run import arun_stream

        return await arun_stream(self, **options)
