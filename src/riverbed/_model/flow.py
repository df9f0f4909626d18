"""``Flow`` and the stream handles that build it.

A flow is a named graph of frozen ``Stage`` records. Builder methods on ``Stream`` add
stages and return new handles; each call checks what it can at once (callables, parameter
counts, names), and ``Flow.validate`` checks the whole (streams that go nowhere, cycles)
before a flow runs, is drawn or is serialized.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Unpack

from riverbed._errors import DuplicateStageError, FlowDefinitionError
from riverbed._model import callables, graph
from riverbed._model.data import check_declared
from riverbed._model.ops.builders import StreamOperators
from riverbed._model.origin import caller_module
from riverbed._model.policy import OnError, Retry
from riverbed._model.process import ProcessorSpec
from riverbed._model.settings import CACHEABLE as _CACHEABLE
from riverbed._model.settings import StageOptions
from riverbed._model.settings import stage_settings as _policy_fields
from riverbed._model.sinks import is_sink_object
from riverbed._model.sources import as_source, is_source
from riverbed._model.stages import (
    KINDS,
    Port,
    SinkMode,
    SinkStage,
    Stage,
    StageKind,
    StatefulStage,
)

if TYPE_CHECKING:
    from riverbed._model.reactive import Builder
    from riverbed._runtime.config import RunOptions
    from riverbed._runtime.result import RunResult

__all__ = ["Branch", "Flow", "KeyedStream", "Routes", "Stream"]

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


class Stream(StreamOperators):
    """The output of one stage; its methods add stages downstream and return their output.

    Events are any Python values. Every method takes ``name=`` (default: the function's
    name) and the failure settings ``on_error=``, ``retry=``, ``timeout=`` (seconds per
    call), and ``cache=True`` to memoize a pure step's outputs in the store. Async
    functions are awaited, up to ``concurrency`` calls at once, outputs kept in input order.
    """

    __module__ = "riverbed"

    def __init__(self, flow: Flow, port: Port) -> None:
        self.flow = flow
        self.port = port

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.port} of flow {self.flow.name!r}>"

    # -- stateless operators --------------------------------------------------------------

    def map(
        self, fn: Callable[[Any], Any], *, name: str | None = None, **policy: Unpack[StageOptions]
    ) -> Stream:
        """One output per event: ``fn(event)``."""
        return self._then(StageKind.MAP, fn, name, policy, keyed=False)

    def flat_map(
        self,
        fn: Callable[[Any], Iterable[Any]],
        *,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Stream:
        """Zero or more outputs per event: every item of the iterable ``fn(event)``."""
        return self._then(StageKind.FLAT_MAP, fn, name, policy, keyed=False)

    def filter(
        self,
        predicate: Callable[[Any], Any],
        *,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Stream:
        """Keep the events for which ``predicate(event)`` is true."""
        return self._then(StageKind.FILTER, predicate, name, policy, keyed=self._keyed)

    def inspect(
        self, fn: Callable[[Any], Any], *, name: str | None = None, **policy: Unpack[StageOptions]
    ) -> Stream:
        """Call ``fn(event)`` for its side effect (logging, metrics); events pass unchanged."""
        return self._then(StageKind.INSPECT, fn, name, policy, keyed=self._keyed)

    def key_by(
        self, key: Callable[[Any], Any], *, name: str | None = None, **policy: Unpack[StageOptions]
    ) -> KeyedStream:
        """A keyed stream of ``(key(event), event)`` pairs, for ``stateful``, ``fold``...

        Keys are routed by a stable hash of their value, the same in every process.
        """
        stream = self._then(StageKind.KEY_BY, key, name, policy, keyed=True)
        assert isinstance(stream, KeyedStream)
        return stream

    def stateful(self, fn_or_class: Any = None, *args: Any, **kwargs: Any) -> KeyedStream:
        """Per-key state needs keys: see ``KeyedStream.stateful``."""
        raise self._needs_keys("stateful", fn_or_class)

    def fold(self, initial: Any = None, fn: Any = None, *args: Any, **kwargs: Any) -> KeyedStream:
        """Per-key state needs keys: see ``KeyedStream.fold``."""
        raise self._needs_keys("fold", fn)

    def reduce(self, fn: Any = None, *args: Any, **kwargs: Any) -> KeyedStream:
        """Per-key state needs keys: see ``KeyedStream.reduce``."""
        raise self._needs_keys("reduce", fn)

    def _needs_keys(self, operator: str, fn: Any) -> FlowDefinitionError:
        what = f"({callables.describe(fn)})" if callable(fn) else ""
        return FlowDefinitionError(
            f"{operator}{what} after stage {self.port.stage!r} needs a keyed stream: call "
            ".key_by(fn) first (or .key_by(lambda event: None) for one state shared by all "
            "events)",
            flow=self.flow.name,
            stage=self.port.stage,
        )

    def process(
        self, spec: Any, *, name: str | None = None, **policy: Unpack[StageOptions]
    ) -> Stream:
        """Add a processor stage described by ``spec`` (a ``ProcessorSpec``): the way
        windows, joins, collecting and sampling are built. Returns a keyed stream when the
        processor emits ``(key, output)`` pairs."""
        if not isinstance(spec, ProcessorSpec):
            raise FlowDefinitionError(
                f"process() takes a ProcessorSpec, got {type(spec).__name__} {spec!r:.60}",
                flow=self.flow.name,
                stage=self.port.stage,
            )
        if spec.keyed and not self._keyed:
            raise self._needs_keys(spec.operator, None)
        stage_name = self.flow._claim_name(
            name if name is not None else spec.operator, explicit=name is not None
        )
        stage = Stage(
            name=stage_name,
            kind=StageKind.PROCESS,
            inputs=(self.port,),
            fn=spec,
            keyed=spec.emits_keyed,
            **_policy_fields(policy, stage_name, self.flow.name, spec),
        )
        return self.flow._add(stage)

    def parallel_map(
        self,
        fn: Callable[[Any], Any],
        *,
        workers: int = 4,
        mode: str = "thread",
        ordered: bool = True,
        gap: str = "wait",
        max_buffered: int = 1000,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Stream:
        """One output per event, ``fn(event)``, on ``workers`` workers at once: threads
        (``mode="thread"``, for blocking I/O), processes (``"process"``, for CPU-bound
        Python; ``fn`` must be importable by name) or coroutines (``"async"``).

        ``ordered=True`` emits in input order (and so keeps per-key order); ``gap="skip"``
        lets up to ``max_buffered`` results wait behind a slow event, then emits them and
        the slow one when it comes. ``ordered=False`` emits as results arrive. ``timeout=``
        is per event; failures follow ``on_error`` / ``retry``. See docs/operators.md.

        >>> import riverbed as rb
        >>> rb.Flow("f").source([1, 2]).parallel_map(abs, workers=2)  # doctest: +ELLIPSIS
        <Stream abs of flow 'f'>
        """
        from riverbed._model.parallel import add_parallel_map

        settings = {"workers": workers, "mode": mode, "ordered": ordered, "gap": gap}
        return add_parallel_map(self, fn, name, policy, max_buffered=max_buffered, **settings)

    def batch_map(
        self,
        fn: Callable[[list[Any]], Any],
        *,
        max_size: int = 100,
        max_wait: float | None = 1.0,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Stream:
        """Call ``fn(events)`` with a list of up to ``max_size`` events, or fewer once the
        first has waited ``max_wait`` seconds (the run's clock); it returns one output per
        event, in order. What waits at the end of the stream is called too. Sync or async.

        >>> import riverbed as rb
        >>> rb.Flow("f").source([1, 2]).batch_map(sorted, max_size=10)  # doctest: +ELLIPSIS
        <Stream sorted of flow 'f'>
        """
        from riverbed._model.parallel import add_batch_map

        settings = {"max_size": max_size, "max_wait": max_wait}
        return add_batch_map(self, fn, name, policy, **settings)

    # -- shape ----------------------------------------------------------------------------

    def branch(
        self,
        predicate: Callable[[Any], Any],
        *,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Branch:
        """Split in two by ``predicate``: ``.trues`` gets the events for which it is true,
        ``.falses`` the others. Both must be used (or use ``filter``)."""
        stage = self._stage(StageKind.BRANCH, predicate, name, policy, outputs=("true", "false"))
        self.flow._add(stage)
        cls = KeyedStream if self._keyed else Stream
        return Branch(
            cls(self.flow, Port(stage.name, "true")), cls(self.flow, Port(stage.name, "false"))
        )

    def route(
        self,
        router: Callable[[Any], str],
        outputs: Sequence[str],
        *,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Routes:
        """Split into several named outputs: each event goes to the output whose name
        ``router(event)`` returns (a ``match`` statement reads well here). An unknown name
        is an error of this stage, handled by its policy."""
        names = tuple(outputs)
        if (
            not names
            or len(set(names)) != len(names)
            or not all(isinstance(n, str) and n for n in names)
        ):
            raise FlowDefinitionError(
                f"route outputs must be distinct non-empty strings, got {list(outputs)!r}",
                flow=self.flow.name,
            )
        stage = self._stage(StageKind.ROUTE, router, name, policy, outputs=names)
        self.flow._add(stage)
        cls = KeyedStream if self._keyed else Stream
        return Routes({n: cls(self.flow, Port(stage.name, n)) for n in names})

    def merge(self, *others: Stream, name: str | None = None) -> Stream:
        """One stream of this stream's events and those of ``others``, interleaved as they
        arrive; each input's own order is kept."""
        streams = (self, *others)
        for other in streams:
            if not isinstance(other, Stream):
                raise FlowDefinitionError(
                    f"merge takes streams, got {type(other).__name__}", flow=self.flow.name
                )
            if other.flow is not self.flow:
                raise FlowDefinitionError(
                    f"cannot merge {other} of flow {other.flow.name!r} into flow "
                    f"{self.flow.name!r}: streams of different flows",
                    flow=self.flow.name,
                )
        ports = tuple(s.port for s in streams)
        if len(set(ports)) != len(ports):
            raise FlowDefinitionError(
                f"merge got the same stream twice ({[str(p) for p in ports]}); every event "
                "would arrive twice",
                flow=self.flow.name,
            )
        stage_name = self.flow._claim_name(name, explicit=name is not None, base="merge")
        keyed = all(s._keyed for s in streams)
        stage = Stage(name=stage_name, kind=StageKind.MERGE, inputs=ports, keyed=keyed)
        return self.flow._add(stage)

    # -- sinks ----------------------------------------------------------------------------

    def sink(self, target: Any, *, name: str | None = None, **policy: Unpack[StageOptions]) -> None:
        """End the stream in ``target``: a callable called once per event, or a sink object
        with ``write_batch(events)`` (and optionally ``close()``)."""
        mode = SinkMode.OBJECT if is_sink_object(target) else SinkMode.EVENT
        self._add_sink(target, mode, name, policy)

    def output(self, *, name: str = "output") -> None:
        """End a workflow: the events reaching here are the run's output
        (``RunResult.output``, and ``outputs`` for all of them), stored with the run.
        See ``Flow.input``."""
        from riverbed._model.workflow import WorkflowOutput

        stage_name = self.flow._claim_name(name, explicit=True)
        self.flow._add(
            SinkStage(
                name=stage_name,
                kind=StageKind.SINK,
                inputs=(self.port,),
                fn=WorkflowOutput(),
                sink_mode=SinkMode.OBJECT,
            )
        )

    def sink_batch(
        self,
        target: Callable[[list[Any]], Any],
        *,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> None:
        """End the stream in ``target``, called once per batch with a list of events."""
        self._add_sink(target, SinkMode.BATCH, name, policy)

    def _add_sink(self, target: Any, mode: SinkMode, name: str | None, policy: Any) -> None:
        stage: Stage
        if mode is SinkMode.OBJECT:
            stage_name = self.flow._claim_name(
                name if name is not None else callables.short_name(target),
                explicit=name is not None,
            )
            stage = SinkStage(
                name=stage_name,
                kind=StageKind.SINK,
                inputs=(self.port,),
                fn=target,
                sink_mode=mode,
                **_policy_fields(policy, stage_name, self.flow.name, target),
            )
        else:
            stage = self._stage(StageKind.SINK, target, name, policy, sink_mode=mode)
        self.flow._add(stage)

    # -- helpers --------------------------------------------------------------------------

    @property
    def _keyed(self) -> bool:
        return isinstance(self, KeyedStream)

    def _then(
        self, kind: StageKind, fn: Any, name: str | None, policy: Any, *, keyed: bool
    ) -> Stream:
        stage = self._stage(kind, fn, name, policy)
        return self.flow._add(_replace(stage, keyed=keyed))

    def _stage(
        self,
        kind: StageKind,
        fn: Any,
        name: str | None,
        policy: StageOptions,
        *,
        arity: int = 1,
        **fields: Any,
    ) -> Stage:
        """A stage of ``kind``, of the record its kind uses, calling ``fn``; ``fields`` are
        the record's other fields."""
        derived = None if name is not None else _derived_name(fn, kind)
        stage_name = self.flow._claim_name(
            name if name is not None else derived, explicit=name is not None
        )
        callables.check_arity(
            fn, arity, stage=stage_name, role=f"the {kind.value} function", flow=self.flow.name
        )
        return KINDS[kind].record(
            name=stage_name,
            kind=kind,
            inputs=(self.port,),
            fn=fn,
            **fields,
            **_policy_fields(policy, stage_name, self.flow.name, fn),
        )


class KeyedStream(Stream):
    """A stream of ``(key, value)`` pairs, made by ``key_by``. Per-key operators live here;
    each key has its own state, and events of one key are processed in order."""

    __module__ = "riverbed"

    def stateful(  # type: ignore[override]
        self,
        fn_or_class: Any,
        method: Any = None,
        *,
        initial: Any = None,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> KeyedStream:
        """Keep per-key state and emit ``(key, output)``; an output of ``None`` emits nothing.

        Two forms:

        - a class and a method: ``stateful(Average, Average.add)`` (or ``"add"``): one
          instance per key, made with ``Average()`` on the key's first event, then
          ``output = instance.add(value)``;
        - a function of ``(state, value)`` returning ``(state, output)``:
          ``stateful(count, initial=int)``; the state starts as ``initial()`` (or ``None``),
          and a returned state of ``None`` forgets the key. ``initial`` may also be a
          plain value (``initial=0``): each key starts from its own copy of it.
        """
        if inspect.isclass(fn_or_class):
            stage = self._state_class_stage(fn_or_class, method, name, policy)
        else:
            stage = self._state_function_stage(fn_or_class, method, initial, name, policy)
        stream = self.flow._add(stage)
        assert isinstance(stream, KeyedStream)
        return stream

    def _state_class_stage(
        self, cls: type, method: Any, name: str | None, policy: StageOptions
    ) -> Stage:
        """The stage of ``stateful(cls, method)``: one instance of ``cls`` per key."""
        if method is None:
            raise FlowDefinitionError(
                f"stateful({cls.__name__}) needs the method to call per event, e.g. "
                f"stateful({cls.__name__}, {cls.__name__}.update)",
                flow=self.flow.name,
            )
        if isinstance(method, str):
            bound = getattr(cls, method, None)
            if bound is None:
                raise FlowDefinitionError(
                    f"stateful: class {cls.__qualname__} has no method {method!r}",
                    flow=self.flow.name,
                )
            method = bound
        stage_name = self.flow._claim_name(
            name if name is not None else _derived_name(method, StageKind.STATEFUL),
            explicit=name is not None,
        )
        flow = self.flow.name
        callables.check_arity(cls, 0, stage=stage_name, role="the state class", flow=flow)
        callables.check_arity(
            method, 2, stage=stage_name, role="the state method (self, value)", flow=flow
        )
        return StatefulStage(
            name=stage_name,
            kind=StageKind.STATEFUL,
            inputs=(self.port,),
            fn=cls,
            method=method,
            keyed=True,
            **_policy_fields(policy, stage_name, flow, method),
        )

    def _state_function_stage(
        self,
        fn: Any,
        method: Any,
        initial: Any,
        name: str | None,
        policy: StageOptions,
    ) -> Stage:
        """The stage of ``stateful(fn, initial=...)``: ``(state, output) = fn(state,
        value)``."""
        initial = callables.as_factory(initial)
        if method is not None:
            raise FlowDefinitionError(
                "stateful(fn, method): a method goes with a class, but "
                f"{callables.describe(fn)} is not a class; pass "
                "stateful(fn, initial=...) for the function form",
                flow=self.flow.name,
            )
        stage = self._stage(
            StageKind.STATEFUL, fn, name, policy, arity=2, initial=initial, keyed=True
        )
        if initial is not None:
            callables.check_arity(initial, 0, stage=stage.name, role="initial", flow=self.flow.name)
        return stage

    def fold(  # type: ignore[override]
        self,
        initial: Any,
        fn: Callable[[Any, Any], Any],
        *,
        running: bool = False,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> KeyedStream:
        """Per-key accumulator: ``acc = fn(acc, value)``, starting from ``initial()`` (a
        factory such as ``int`` or ``list``) or from a copy of ``initial`` when it is a plain
        value (``fold(0, add)``).

        Emits ``(key, acc)`` for every key when the stream ends, or after every event when
        ``running=True`` (use that on endless streams).
        """
        initial = callables.as_factory(initial)
        stage = self._stage(
            StageKind.FOLD, fn, name, policy, arity=2, initial=initial, keyed=True, running=running
        )
        callables.check_arity(initial, 0, stage=stage.name, role="initial", flow=self.flow.name)
        stream = self.flow._add(stage)
        assert isinstance(stream, KeyedStream)
        return stream

    def reduce(  # type: ignore[override]
        self,
        fn: Callable[[Any, Any], Any],
        *,
        running: bool = False,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> KeyedStream:
        """Per-key ``acc = fn(acc, value)``, the first value of a key being its start.
        Emits like ``fold``."""
        stage = self._stage(
            StageKind.FOLD, fn, name, policy, arity=2, initial=None, keyed=True, running=running
        )
        stream = self.flow._add(stage)
        assert isinstance(stream, KeyedStream)
        return stream

    def values(self, *, name: str | None = None) -> Stream:
        """The stream of values alone, keys dropped."""
        # Claimed here so that a second ``values()`` gets ``values_2``, as derived names do.
        stage_name = self.flow._claim_name(
            name if name is not None else "values", explicit=name is not None
        )
        return self.map(_value_of, name=stage_name)


def _value_of(pair: tuple[Any, Any]) -> Any:
    return pair[1]


class Branch(NamedTuple):
    """The two outputs of ``Stream.branch``."""

    trues: Stream
    """Events for which the predicate was true."""
    falses: Stream
    """Events for which it was false."""


Branch.__module__ = "riverbed"  # a NamedTuple body cannot set it


class Routes(Mapping[str, Stream]):
    """The named outputs of ``Stream.route``: ``routes["hot"]`` or ``routes.hot``."""

    __module__ = "riverbed"

    def __init__(self, streams: dict[str, Stream]) -> None:
        self._streams = streams

    def __getitem__(self, name: str) -> Stream:
        try:
            return self._streams[name]
        except KeyError:
            raise KeyError(f"no route {name!r}; the routes are {list(self._streams)}") from None

    def __getattr__(self, name: str) -> Stream:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._streams[name]
        except KeyError:
            raise AttributeError(
                f"no route {name!r}; the routes are {list(self._streams)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._streams)

    def __len__(self) -> int:
        return len(self._streams)


def _derived_name(fn: Any, kind: StageKind) -> str:
    if not callable(fn):
        return kind.value
    derived = callables.short_name(fn)
    return kind.value if derived == "lambda" else derived


def _replace(stage: Stage, **changes: Any) -> Stage:
    from dataclasses import replace

    return replace(stage, **changes)
