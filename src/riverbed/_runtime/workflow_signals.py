"""How a claimed workflow run stops when its worker is told to (SIGTERM, Ctrl-C): at the
next step boundary, back into the queue."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, Protocol

__all__ = ["released_on_signal"]


class _Stoppable(Protocol):
    """What of a workflow run's execution the signals reach."""

    spec: Any
    stop: str | None
    observers: Any


@contextlib.contextmanager
def released_on_signal(execution: _Stoppable) -> Iterator[None]:
    """While a worker runs a claimed workflow in the main thread, SIGTERM and Ctrl-C stop
    it at the next step boundary and put it back into the queue. The handlers are
    Python's own, which run between two bytecodes even while a synchronous step keeps the
    event loop busy; observers are told (the worker stops after this run)."""
    if not execution.spec.claimed or threading.current_thread() is not threading.main_thread():
        yield
        return
    outer = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def release(number: int, frame: FrameType | None) -> None:
        execution.stop = "released"
        execution.observers.tell("stopping", signal.Signals(number).name)

    for number in outer:
        signal.signal(number, release)
    try:
        yield
    finally:
        for number, handler in outer.items():
            signal.signal(number, handler)
