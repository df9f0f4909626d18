"""FlowForge's routines: slots (handlers called with the seed's flexible signatures and
merge strategies), events, connections, and the error handlers that map onto riverbed's
policies."""

from __future__ import annotations

import contextvars
import enum
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import riverbed as rb

_EMITTED: contextvars.ContextVar[list[tuple[str, dict[str, Any]]]] = contextvars.ContextVar(
    "flowforge_emitted"
)


class ErrorStrategy(enum.Enum):
    """What a routine's failure does."""

    STOP = "stop"
    """The job fails (riverbed: ``OnError.STOP``)."""
    CONTINUE = "continue"
    """The job goes on without the call's events; the routine is "error_continued"."""
    RETRY = "retry"
    """The call is made again, up to ``max_retries`` more times, then the job fails."""
    SKIP = "skip"
    """The job goes on without the call's events; the routine is "skipped"."""


class ErrorHandler:
    """A routine's (or a flow's) error strategy and its retry settings."""

    def __init__(
        self,
        strategy: ErrorStrategy | str = ErrorStrategy.STOP,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        retryable_exceptions: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        self.strategy = ErrorStrategy(strategy)
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        self.retryable_exceptions = retryable_exceptions

    def policy(self) -> dict[str, Any]:
        """The riverbed failure policy of this handler (``on_error``, ``retry``)."""
        if self.strategy is ErrorStrategy.RETRY:
            retry = rb.Retry(
                attempts=self.max_retries + 1,
                backoff=self.retry_delay,
                multiplier=self.retry_backoff,
                max_backoff=max(30.0, self.retry_delay),
                jitter=False,
                on=self.retryable_exceptions,
            )
            return {"on_error": rb.OnError.STOP, "retry": retry}
        if self.strategy is ErrorStrategy.STOP:
            return {"on_error": rb.OnError.STOP}
        return {"on_error": rb.OnError.SKIP}

    def serialize(self) -> dict[str, Any]:
        """The handler as JSON data (exception types by import name)."""
        return {
            "strategy": self.strategy.value,
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay,
            "retry_backoff": self.retry_backoff,
            "retryable_exceptions": [_ref(t) for t in self.retryable_exceptions],
        }

    @classmethod
    def deserialize(cls, data: Mapping[str, Any]) -> ErrorHandler:
        """A handler from ``serialize``'s data."""
        types = tuple(_load(ref) for ref in data.get("retryable_exceptions", []))
        fields = {k: v for k, v in data.items() if k != "retryable_exceptions"}
        return cls(**fields, retryable_exceptions=types or (Exception,))


class Event:
    """An output event of a routine, with the names of its parameters."""

    def __init__(self, name: str, routine: Routine, output_params: list[str]) -> None:
        self.name = name
        self.routine = routine
        self.output_params = list(output_params)

    def __repr__(self) -> str:
        return f"Event[{self.routine._id}.{self.name}]"


class Slot:
    """An input slot of a routine: what arrives is merged with what arrived before (by
    ``merge_strategy``) and handed to ``handler``."""

    def __init__(
        self,
        name: str,
        routine: Routine,
        handler: Callable[..., Any] | None,
        merge_strategy: str | Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.name = name
        self.routine = routine
        self.handler = handler
        self.merge_strategy = merge_strategy
        self._data: dict[str, Any] = {}

    def receive(self, data: dict[str, Any]) -> None:
        """Merge ``data`` in and call the handler with the merged data."""
        merged = self._merge(data)
        if self.handler is not None:
            _call_flexibly(self.handler, merged)

    def _merge(self, new: dict[str, Any]) -> dict[str, Any]:
        if self.merge_strategy == "override":
            self._data = dict(new)
        elif self.merge_strategy == "append":
            for key, value in new.items():
                old = self._data.get(key, [])
                self._data[key] = [*(old if isinstance(old, list) else [old]), value]
        elif callable(self.merge_strategy):
            self._data = self.merge_strategy(dict(self._data), dict(new))
        else:
            raise ValueError(
                f"slot {self.name!r}: merge_strategy is 'override', 'append' or a function, "
                f"got {self.merge_strategy!r}"
            )
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Slot[{self.routine._id}.{self.name}]"


def _call_flexibly(handler: Callable[..., Any], data: dict[str, Any]) -> Any:
    """The seed's handler signatures: ``**kwargs`` gets the data unpacked; one parameter
    named ``data`` gets the dict; one other parameter gets its value (or the dict);
    several get the values they name (or the dict)."""
    parameters = inspect.signature(handler).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return handler(**data)
    names = [p.name for p in parameters]
    if len(names) == 1:
        name = names[0]
        return handler(data[name] if name != "data" and name in data else data)
    matched = {name: data[name] for name in names if name in data}
    return handler(**matched) if matched else handler(data)


class Routine:
    """A FlowForge routine: define slots and events in ``__init__`` (which takes no
    parameters; settings go in ``set_config``), emit events from the slot handlers."""

    def __init__(self) -> None:
        self._id = hex(id(self))
        self._slots: dict[str, Slot] = {}
        self._events: dict[str, Event] = {}
        self._stats: dict[str, Any] = {}
        self._config: dict[str, Any] = {}
        self._error_handler: ErrorHandler | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}[{self._id}]"

    def define_slot(
        self,
        name: str,
        handler: Callable[..., Any] | None = None,
        merge_strategy: str | Callable[..., dict[str, Any]] = "override",
    ) -> Slot:
        """Add input slot ``name``."""
        if name in self._slots:
            raise ValueError(f"Slot '{name}' already exists in {self}")
        self._slots[name] = Slot(name, self, handler, merge_strategy)
        return self._slots[name]

    def define_event(self, name: str, output_params: list[str] | None = None) -> Event:
        """Add output event ``name`` with the names of its parameters."""
        if name in self._events:
            raise ValueError(f"Event '{name}' already exists in {self}")
        self._events[name] = Event(name, self, output_params or [])
        return self._events[name]

    def emit(self, event_name: str, flow: Any = None, **kwargs: Any) -> None:
        """Send ``event_name`` with ``kwargs`` to the slots connected to it (once this
        call of the routine has succeeded)."""
        if event_name not in self._events:
            raise ValueError(f"Event '{event_name}' does not exist in {self}")
        buffer = _EMITTED.get(None)
        if buffer is None:
            raise RuntimeError(
                f"{self}.emit({event_name!r}) outside a flow's execution: events are sent "
                "while flow.execute(...) runs the routine"
            )
        buffer.append((event_name, kwargs))

    def get_slot(self, name: str) -> Slot | None:
        """The slot ``name``, or None."""
        return self._slots.get(name)

    def get_event(self, name: str) -> Event | None:
        """The event ``name``, or None."""
        return self._events.get(name)

    def stats(self) -> dict[str, Any]:
        """A copy of the routine's statistics (what its handlers put in ``_stats``)."""
        return dict(self._stats)

    def set_stat(self, key: str, value: Any) -> None:
        """Set one statistic."""
        self._stats[key] = value

    def get_stat(self, key: str, default: Any = None) -> Any:
        """One statistic, or ``default``."""
        return self._stats.get(key, default)

    def increment_stat(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to a numeric statistic; its new value."""
        self._stats[key] = self._stats.get(key, 0) + amount
        return int(self._stats[key])

    def reset_stats(self, keys: list[str] | None = None) -> None:
        """Forget the statistics ``keys``, or all."""
        for key in list(self._stats) if keys is None else keys:
            self._stats.pop(key, None)

    def set_config(self, **kwargs: Any) -> None:
        """Set configuration values (kept when the flow is serialized)."""
        self._config.update(kwargs)

    def get_config(self, key: str, default: Any = None) -> Any:
        """One configuration value, or ``default``."""
        return self._config.get(key, default)

    def config(self) -> dict[str, Any]:
        """A copy of the configuration."""
        return dict(self._config)

    def set_error_handler(self, error_handler: ErrorHandler) -> None:
        """This routine's error handler (it beats the flow's)."""
        self._error_handler = error_handler

    def get_error_handler(self) -> ErrorHandler | None:
        """This routine's error handler, or None."""
        return self._error_handler

    def __call__(self, **kwargs: Any) -> None:
        """The entry call of a routine that overrides it; the base one counts calls."""
        self._stats["called"] = True
        self._stats["call_count"] = self._stats.get("call_count", 0) + 1


class _Handler:
    """A slot (or an entry ``__call__``) as a riverbed routine handler: the data in, the
    events the call emitted out. A class at module level, so that Ray can ship it."""

    def __init__(self, target: Slot | Routine) -> None:
        self.target = target

    def __call__(self, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        emitted: list[tuple[str, dict[str, Any]]] = []
        token = _EMITTED.set(emitted)
        try:
            if isinstance(self.target, Slot):
                self.target.receive(params)
            else:
                self.target(**params)
        finally:
            _EMITTED.reset(token)
        return emitted


class Connection:
    """An event of one routine sent to a slot of another, its parameters renamed by
    ``param_mapping`` (``{event_param: slot_param}``)."""

    def __init__(
        self, source_event: Event, target_slot: Slot, param_mapping: dict[str, str] | None = None
    ) -> None:
        self.source_event = source_event
        self.target_slot = target_slot
        self.param_mapping = dict(param_mapping or {})

    def __repr__(self) -> str:
        return f"Connection[{self.source_event} -> {self.target_slot}]"


def _ref(obj: type) -> str:
    """``module:qualname`` of a class defined at a module's top level."""
    if "<locals>" in obj.__qualname__:
        raise ValueError(
            f"{obj.__qualname__} is defined inside a function: a serialized flow names its "
            "classes by import path, so define it at a module's top level"
        )
    return f"{obj.__module__}:{obj.__qualname__}"


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    value: Any = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return value
