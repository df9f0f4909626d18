"""The builder methods of windows, joins, collecting and sampling, mixed into ``Stream``.

Each method checks its settings, describes the operator as a spec (``ops.*``) and adds it
with ``Stream.process``; joins first tag and merge their inputs. Kept apart from
``flow.py`` so that the core builder stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Unpack

from riverbed._errors import FlowDefinitionError
from riverbed._model import callables
from riverbed._model.ops.aggregate import Collect, Count, agg_fields
from riverbed._model.ops.collect import CollectSpec, GroupSpec, KeyedCollectSpec
from riverbed._model.ops.dispatch import DispatchSpec, build_routes
from riverbed._model.ops.joins import (
    MAX_INPUTS,
    ExpireAfter,
    JoinSpec,
    MaxPending,
    RendezvousSpec,
    WaitForever,
    tag_of,
)
from riverbed._model.ops.lookup import KeyedLookupSpec, LookupSpec
from riverbed._model.ops.sample import (
    KeyedReservoirSpec,
    KeyedSampleSpec,
    ReservoirSpec,
    SampleSpec,
)
from riverbed._model.ops.time import LatePolicy
from riverbed._model.ops.windows import (
    KeyedWindowSpec,
    Session,
    Tumbling,
    WindowSpec,
    window_fields,
)
from riverbed._model.settings import StageOptions
from riverbed._model.stages import StageKind

if TYPE_CHECKING:
    from riverbed._model.flow import Flow
    from riverbed._model.stages import Port
    from riverbed._model.streams import KeyedStream, Stream

__all__ = ["StreamOperators"]


def _seconds(value: Any, what: str, where: str, *, zero: bool = False) -> float:
    low_ok = value >= 0 if zero else value > 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not low_ok:
        raise FlowDefinitionError(
            f"{where}: {what} must be a number of seconds {'>=' if zero else '>'} 0, got {value!r}"
        )
    if value == math.inf:
        raise FlowDefinitionError(f"{where}: {what} must be finite")
    return float(value)


def _late_fields(where: str, kind: str, late: Any, allowed_lateness: Any) -> dict[str, Any]:
    """A window's ``late`` policy and ``allowed_lateness``, checked."""
    if not isinstance(late, LatePolicy):
        raise FlowDefinitionError(f"{where}: late must be an rb.LatePolicy, got {late!r}")
    if allowed_lateness is not None and late is not LatePolicy.UPDATE:
        raise FlowDefinitionError(
            f"{where}: allowed_lateness keeps closed windows for late updates: it goes "
            "with late=rb.LatePolicy.UPDATE"
        )
    if kind == "count" and late is not LatePolicy.DROP:
        raise FlowDefinitionError(f"{where}: CountWindow has no late events; remove late=")
    return {
        "late": late.value,
        "allowed_lateness": None
        if allowed_lateness is None
        else _seconds(allowed_lateness, "allowed_lateness", where, zero=True),
    }


def _early_fields(where: str, kind: str, early_every: Any, early_interval: Any) -> dict[str, Any]:
    """A window's early results settings, ``early_every`` and ``early_interval``, checked."""
    if early_interval is not None and kind in ("session", "count"):
        raise FlowDefinitionError(
            f"{where}: early_interval works with Tumbling and Sliding windows; for "
            "sessions and count windows, use early_every=n"
        )
    if early_every is not None and (
        isinstance(early_every, bool) or not isinstance(early_every, int) or early_every < 1
    ):
        raise FlowDefinitionError(f"{where}: early_every must be an int >= 1")
    return {
        "early_every": early_every,
        "early_interval": None
        if early_interval is None
        else _seconds(early_interval, "early_interval", where),
    }


class StreamOperators:
    """Windows, joins, collecting and sampling: the methods ``Stream`` gets from here."""

    if TYPE_CHECKING:
        flow: Flow
        port: Port

        @property
        def _keyed(self) -> bool: ...

        def process(
            self, spec: Any, *, name: str | None = None, **policy: Unpack[StageOptions]
        ) -> Stream: ...

        def _needs_keys(self, operator: str, fn: Any) -> FlowDefinitionError: ...

        def _then(
            self, kind: StageKind, fn: Any, name: str | None, policy: Any, *, keyed: bool
        ) -> Stream: ...

    def _where(self, operator: str) -> str:
        return f"{operator} after stage {self.port.stage!r}"

    def _time_fields(
        self,
        where: str,
        event_time: Any,
        max_delay: float,
        idle_timeout: float | None,
    ) -> dict[str, Any]:
        if event_time is not None:
            callables.check_arity(
                event_time, 1, stage=where, role="the event_time getter", flow=self.flow.name
            )
        return {
            "event_time": event_time,
            "max_delay": _seconds(max_delay, "max_delay", where, zero=True),
            "idle_timeout": None
            if idle_timeout is None
            else _seconds(idle_timeout, "idle_timeout", where),
        }

    def window(
        self,
        window: Any,
        aggregate: Any = None,
        *,
        event_time: Callable[[Any], Any] | None = None,
        max_delay: float = 0.0,
        idle_timeout: float | None = None,
        late: LatePolicy = LatePolicy.DROP,
        allowed_lateness: float | None = None,
        early_every: int | None = None,
        early_interval: float | None = None,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Stream:
        """Aggregate events in windows: per key on a ``KeyedStream`` (emits ``(key,
        (rb.Window(start, end), value))``), all together on a ``Stream`` (emits ``(window,
        value)``); early results come as ``rb.Early``, late updates as ``rb.Updated``.

        ``window`` is ``rb.Tumbling``, ``rb.Sliding``, ``rb.Session`` or
        ``rb.CountWindow``; ``aggregate`` is ``rb.Count()`` (default), ``rb.Collect()``,
        ``rb.Fold``, ``rb.Reduce``, ``rb.Min``, ``rb.Max``, ``rb.Reservoir`` or a class
        with ``add(value)`` and ``result()``. Time is ``event_time(event)`` (seconds or a
        datetime) with a watermark ``max_delay`` behind the latest time seen, moving with
        the clock after ``idle_timeout`` seconds without events; or, without a getter,
        processing time. See docs/windows-and-joins.md.

        >>> import riverbed as rb
        >>> flow = rb.Flow("clicks")
        >>> per_minute = flow.source([]).key_by(len).window(rb.Tumbling(60.0), rb.Count())
        """
        where = self._where("window")
        fields = window_fields(window, where)
        fields.update(agg_fields(Count() if aggregate is None else aggregate, where))
        fields.update(self._time_fields(where, event_time, max_delay, idle_timeout))
        if fields["kind"] == "count" and event_time is not None:
            raise FlowDefinitionError(
                f"{where}: CountWindow counts events and needs no event_time; remove it"
            )
        fields.update(_late_fields(where, fields["kind"], late, allowed_lateness))
        fields.update(_early_fields(where, fields["kind"], early_every, early_interval))
        spec_class = KeyedWindowSpec if self._keyed else WindowSpec
        return self.process(spec_class(**fields), name=name, **policy)

    def join(
        self,
        *others: Stream,
        window: Tumbling | Session,
        how: str = "inner",
        event_time: Callable[[Any], Any] | None = None,
        max_delay: float = 0.0,
        idle_timeout: float | None = None,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> KeyedStream:
        """Join this keyed stream with ``others`` by key, within each ``window``
        (``rb.Tumbling`` or ``rb.Session``): when a window closes, emit ``(key, row)`` per
        row, a tuple of one value per input. ``how`` is ``inner`` (every combination),
        ``left`` (input 0 required, ``None`` for the missing others) or ``outer``.

        >>> import riverbed as rb
        >>> flow = rb.Flow("orders")
        >>> orders = flow.source([], name="orders").key_by(len)
        >>> payments = flow.source([], name="payments").key_by(len)
        >>> paid = orders.join(payments, window=rb.Tumbling(60.0), how="left")
        """
        where = self._where("join")
        if how not in ("inner", "left", "outer"):
            raise FlowDefinitionError(f"{where}: how must be 'inner', 'left' or 'outer'")
        if not isinstance(window, Tumbling | Session):
            raise FlowDefinitionError(
                f"{where}: window must be rb.Tumbling(size) or rb.Session(gap), got {window!r}"
            )
        fields = window_fields(window, where)
        fields.update(agg_fields(Collect(), where))
        fields.update(self._time_fields(where, event_time, max_delay, idle_timeout))
        return self._joined("join", others, name, policy, JoinSpec, how=how, **fields)

    def rendezvous(
        self,
        *others: Stream,
        orphans: WaitForever | MaxPending | ExpireAfter = WaitForever(),  # noqa: B008 - frozen
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> KeyedStream:
        """Meet this keyed stream and ``others`` by key: as soon as every input has a
        value for a key, emit ``(key, row)`` with the oldest value of each, in stream
        order. ``orphans`` bounds the keys left waiting: ``rb.WaitForever()``,
        ``rb.MaxPending(n)`` or ``rb.ExpireAfter(seconds)``.

        >>> import riverbed as rb
        >>> flow = rb.Flow("assemble")
        >>> heads = flow.source([], name="heads").key_by(len)
        >>> tails = flow.source([], name="tails").key_by(len)
        >>> pairs = heads.rendezvous(tails, orphans=rb.MaxPending(1000))
        """
        where = self._where("rendezvous")
        fields: dict[str, Any] = {}
        if isinstance(orphans, MaxPending):
            if isinstance(orphans.keys, bool) or not isinstance(orphans.keys, int):
                raise FlowDefinitionError(f"{where}: MaxPending(keys) takes an int >= 1")
            if orphans.keys < 1:
                raise FlowDefinitionError(f"{where}: MaxPending(keys) takes an int >= 1")
            fields["max_pending"] = orphans.keys
        elif isinstance(orphans, ExpireAfter):
            fields["expire_after"] = _seconds(orphans.seconds, "ExpireAfter", where)
        elif not isinstance(orphans, WaitForever):
            raise FlowDefinitionError(
                f"{where}: orphans must be rb.WaitForever(), rb.MaxPending(n) or "
                f"rb.ExpireAfter(seconds), got {orphans!r}"
            )
        return self._joined("rendezvous", others, name, policy, RendezvousSpec, **fields)

    def _joined(
        self,
        operator: str,
        others: tuple[Stream, ...],
        name: str | None,
        policy: StageOptions,
        spec_class: Any,
        **fields: Any,
    ) -> KeyedStream:
        streams = (self, *others)
        for stream in streams:
            if not getattr(stream, "_keyed", False):
                raise stream._needs_keys(operator, None)
        if not 2 <= len(streams) <= MAX_INPUTS:
            raise FlowDefinitionError(
                f"{self._where(operator)}: joins take 2 to {MAX_INPUTS} keyed streams, got "
                f"{len(streams)}"
            )
        base = self.flow._claim_name(name or operator, explicit=name is not None)
        tagged = [
            stream._then(StageKind.MAP, tag_of(i), f"{base}.in{i}", {}, keyed=True)
            for i, stream in enumerate(streams)
        ]
        merged = tagged[0].merge(*tagged[1:], name=f"{base}.inputs")
        spec = spec_class(inputs=len(streams), **fields)
        joined = merged.process(spec, name=base, **policy)
        return joined  # type: ignore[return-value]

    def collect(
        self,
        *,
        max_size: int | None = None,
        max_wait: float | None = None,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Stream:
        """Batch events into lists of at most ``max_size``, flushed also when the oldest
        has waited ``max_wait`` seconds, and at the end of the stream. On a keyed stream,
        per key: ``(key, list)``.

        >>> import riverbed as rb
        >>> flow = rb.Flow("batches")
        >>> batches = flow.source([]).collect(max_size=100, max_wait=1.0)
        """
        where = self._where("collect")
        if max_size is None and max_wait is None:
            raise FlowDefinitionError(f"{where}: give max_size=, max_wait= or both")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1
        ):
            raise FlowDefinitionError(f"{where}: max_size must be an int >= 1")
        wait = None if max_wait is None else _seconds(max_wait, "max_wait", where)
        spec_class = KeyedCollectSpec if self._keyed else CollectSpec
        return self.process(spec_class(max_size=max_size, max_wait=wait), name=name, **policy)

    def group(
        self, *, until: str = "key_change", name: str | None = None, **policy: Unpack[StageOptions]
    ) -> Stream:
        """Per key lists of events: ``until="key_change"`` emits a key's group when an
        event of another key arrives (runs of one key), ``until="end"`` emits every
        key's group at the end of the stream. Emits ``(key, list)``.

        >>> import riverbed as rb
        >>> flow = rb.Flow("runs")
        >>> runs = flow.source([]).key_by(len).group(until="key_change")
        """
        if not self._keyed:
            raise self._needs_keys("group", None)
        if until not in ("key_change", "end"):
            raise FlowDefinitionError(
                f"{self._where('group')}: until must be 'key_change' or 'end' (for the end "
                "of a window, use .window(..., rb.Collect()))"
            )
        return self.process(GroupSpec(until=until), name=name, **policy)

    def sample(
        self,
        fraction: float,
        *,
        seed: int = 0,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Stream:
        """Keep each event with probability ``fraction`` (the same events for the same
        ``seed``, also across a resume).

        >>> import riverbed as rb
        >>> flow = rb.Flow("some")
        >>> tenth = flow.source([]).sample(0.1, seed=42)
        """
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise FlowDefinitionError(f"{self._where('sample')}: fraction must be a number")
        if not 0 <= fraction <= 1:
            raise FlowDefinitionError(f"{self._where('sample')}: fraction must be in [0, 1]")
        spec_class = KeyedSampleSpec if self._keyed else SampleSpec
        return self.process(spec_class(fraction=float(fraction), seed=seed), name=name, **policy)

    def reservoir(
        self, size: int, *, seed: int = 0, name: str | None = None, **policy: Unpack[StageOptions]
    ) -> Stream:
        """A uniform random sample of at most ``size`` events, emitted as one list at
        the end of the stream (per key on a keyed stream: ``(key, list)``). For a sample
        per window, use ``.window(..., rb.Reservoir(size, seed=...))``.

        >>> import riverbed as rb
        >>> flow = rb.Flow("some")
        >>> ten = flow.source([]).reservoir(10, seed=42)
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise FlowDefinitionError(f"{self._where('reservoir')}: size must be an int >= 1")
        spec_class = KeyedReservoirSpec if self._keyed else ReservoirSpec
        return self.process(spec_class(size=size, seed=seed), name=name, **policy)

    def lookup(
        self,
        table: Mapping[Any, Any] | Callable[[Any], Any],
        *,
        key: Callable[[Any], Any] | None = None,
        how: str = "inner",
        cache_size: int | None = 10_000,
        ttl: float | None = None,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Stream:
        """Enrich each event from ``table`` (a dict) or a function of the lookup key
        (None for "not found"; its answers cached, LRU of ``cache_size``, each for ``ttl``
        seconds). Emits ``(event, found)``; on a keyed stream ``(key, (value, found))``,
        looked up by the stream's key unless ``key=`` is given. ``how="left"`` keeps
        events with nothing found (``found`` None); ``inner`` drops them.

        >>> import riverbed as rb
        >>> flow = rb.Flow("enrich")
        >>> named = flow.source([]).lookup({1: "one"}, how="left")
        """
        where = self._where("lookup")
        if how not in ("inner", "left"):
            raise FlowDefinitionError(f"{where}: how must be 'inner' or 'left'")
        if key is not None:
            callables.check_arity(key, 1, stage=where, role="the key", flow=self.flow.name)
        fields: dict[str, Any] = {"key": key, "how": how, "cache_size": cache_size}
        fields["ttl"] = None if ttl is None else _seconds(ttl, "ttl", where)
        if isinstance(table, Mapping):
            fields["table"] = dict(table)
        elif callable(table):
            callables.check_arity(table, 1, stage=where, role="the lookup", flow=self.flow.name)
            fields["fn"] = table
        else:
            raise FlowDefinitionError(
                f"{where}: lookup takes a dict or a function of the key, got {table!r:.60}"
            )
        spec_class = KeyedLookupSpec if self._keyed else LookupSpec
        return self.process(spec_class(**fields), name=name, **policy)

    def dispatch(
        self,
        *handlers: Any,
        strict: bool = False,
        max_depth: int = 1000,
        max_phases: int = 100,
        name: str | None = None,
        **policy: Unpack[StageOptions],
    ) -> Stream:
        """One stage of ``handlers`` that route events by their ``match`` patterns: each
        event reaches the handlers whose ``case`` patterns can match it; what a handler
        returns (an iterable of events, or None) is routed the same way and also emitted
        downstream. With ``strict=True`` every handler's interests must be inferable; by
        default one without them gets the events that no other handler wants. When every
        input has ended, phases run (``end_phase()`` of each handler, repeated while they
        emit), then ``close()``. See docs/routing.md.

        >>> import riverbed as rb
        >>> def shout(event):
        ...     match event:
        ...         case str(text):
        ...             yield text.upper()
        >>> flow = rb.Flow("routed")
        >>> loud = flow.source(["hi", 3]).dispatch(shout)
        """
        where = self._where("dispatch")
        for what, value in (("max_depth", max_depth), ("max_phases", max_phases)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FlowDefinitionError(f"{where}: {what} must be an int >= 1, got {value!r}")
        routes = build_routes(handlers, strict=strict, where=where)
        spec = DispatchSpec(handlers=routes, max_depth=max_depth, max_phases=max_phases)
        return self.process(spec, name=name, **policy)
