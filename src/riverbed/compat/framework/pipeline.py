"""framework's ``Pipeline``: processors routed by their ``match`` patterns in one dispatch
stage, builders resolved from targets, run in phases."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import riverbed as rb
from riverbed.compat.framework.builders import LoadBalancerCollector, RendezvousReceiver, _Provider
from riverbed.compat.framework.processors import AbstractProcessor, ReactiveEvent, _Handler

# -- the pipeline ---------------------------------------------------------------------------


def _drop(event: Any) -> None:
    """The pipeline's end: processors act by side effects and by what they submit."""


class _Announce:
    """An artifact of ``target`` as ``ReactiveEvent(name="built", ...)``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self, artifact: Any) -> ReactiveEvent:
        return ReactiveEvent(name="built", target=self.target, artifact=artifact)


class Pipeline:
    """Processors and builders run as one riverbed flow: ``submit`` events, then ``run()``.

    ``strict_interest_inference=True`` routes only by inferred ``match`` patterns (and a
    processor whose patterns cannot be inferred is an error when the flow is built);
    otherwise such a processor gets the events no other processor wants. ``max_workers``
    is accepted for compatibility (see the module docstring). ``workspace=Path(...)`` keeps
    runs and persisted artifacts in a store in that directory; ``store=`` names one directly.
    """

    def __init__(
        self,
        processors: Iterable[AbstractProcessor],
        strict_interest_inference: bool = False,
        max_workers: int | None = None,
        workspace: Path | str | None = None,
        *,
        name: str = "framework-pipeline",
        store: Any = None,
    ) -> None:
        self.processors = list(processors)
        self.strict = strict_interest_inference
        self.max_workers = max_workers
        self.name = name
        self.store = store
        if workspace is not None:
            Path(workspace).mkdir(parents=True, exist_ok=True)
            self.store = self.store or f"sqlite:///{Path(workspace).resolve() / 'riverbed.db'}"
        self.events: list[Any] = []
        self._handlers = [
            rb.Handler(_Handler(p), priority=getattr(p, "priority", 0), match=type(p).process)
            for p in self._plain()
        ]
        if self.strict and self._handlers:  # a processor strict routing cannot read: now
            rb.Flow(name).source([]).dispatch(*self._handlers, strict=True)

    def _plain(self) -> list[AbstractProcessor]:
        skip = (_Provider, RendezvousReceiver, LoadBalancerCollector)
        return [p for p in self.processors if not isinstance(p, skip)]

    def _builders(self) -> list[_Provider]:
        return [p for p in self.processors if isinstance(p, _Provider)]

    def submit(self, event: Any) -> int:
        """Queue ``event`` for the next ``run()``; return how many processors it reaches."""
        self.events.append(event)
        wants = [handler.wants(event) for handler in self._handlers]
        count = sum(1 for w in wants if w)
        if not count and not self.strict:
            count = sum(1 for w in wants if w is None)
        if _is_resolve(event) and any(b.provides == event.target for b in self._builders()):
            count += 1
        return count

    def flow(self) -> rb.Flow:
        """The riverbed flow of the submitted events through the processors."""
        flow = rb.Flow(self.name)
        builders = [b.as_builder() for b in self._builders()]
        streams: dict[str, rb.Stream] = {}
        for event in self.events:
            if _is_resolve(event) and event.target not in streams:
                streams.update(flow.resolve(event.target, builders))
        inputs = [flow.source(list(self.events), name="submitted")]
        for target, stream in streams.items():
            inputs.append(stream.map(_Announce(target), name=f"{target}.built"))
        merged = rb.merge(*inputs, name="events") if len(inputs) > 1 else inputs[0]
        if self._handlers:
            merged = merged.dispatch(*self._handlers, strict=self.strict, name="processors")
        merged.sink(_drop, name="end")
        return flow

    def run(self, **options: Any) -> rb.RunResult:
        """Run every submitted event to quiescence, the phases, then shutdown; return the
        run's result. ``options`` go to ``Flow.run`` (e.g. ``resume=RUN``)."""
        if self.store is not None:
            options.setdefault("store", self.store)
        options.setdefault("progress", False)
        result = self.flow().run(**options)
        self.events = []
        return result


def _is_resolve(event: Any) -> bool:
    return isinstance(event, ReactiveEvent) and event.name == "resolve"
