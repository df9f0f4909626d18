"""The stream handles that build a flow: ``Stream``, ``KeyedStream`` (per-key operators),
and what ``branch`` and ``route`` return.

Each builder method adds one frozen stage to the handle's flow and returns a handle on its
output; it checks what it can at once (callables, parameter counts, names).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Unpack

from riverbed._errors import FlowDefinitionError
from riverbed._model import callables
from riverbed._model.ops.builders import StreamOperators
from riverbed._model.process import ProcessorSpec
from riverbed._model.settings import StageOptions
from riverbed._model.settings import stage_settings as _policy_fields
from riverbed._model.sinks import is_sink_object
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
    from riverbed._model.flow import Flow

__all__ = ["Branch", "KeyedStream", "Routes", "Stream"]


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
