"""Routines for the FlowForge dialect's tests, at a module's top level (so that a
serialized flow can import them again)."""

from __future__ import annotations

from typing import Any

from riverbed.compat.flowforge import Routine

FAILURES: dict[str, int] = {}
"""Routine id -> how many more calls of it fail."""

PAUSING: list[Any] = []
"""Flows that Upper pauses, from inside its call (as another thread would), once each."""


class Source(Routine):
    """Splits a line into words: event 'word' per word, 'done' with the count."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("line", handler=self.split)
        self.define_event("word", ["word"])
        self.define_event("done", ["count"])

    def split(self, line: str) -> None:
        words = line.split()
        for word in words:
            self.emit("word", word=word)
        self.emit("done", count=len(words))


class Upper(Routine):
    """Upper-cases a word; fails while FAILURES says so."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.upper)
        self.define_event("output", ["word"])

    def upper(self, word: str) -> None:
        key = self.get_config("name", "upper")
        if FAILURES.get(key, 0) > 0:
            FAILURES[key] -= 1
            raise ConnectionError(f"{key} is down")
        if PAUSING:
            PAUSING.pop().pause()
        self.increment_stat("upper_count")
        self.emit("output", word=word.upper())


class Collect(Routine):
    """Collects what arrives, with the 'append' merge strategy."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.collect, merge_strategy="append")

    def collect(self, **data: Any) -> None:
        self.set_stat("seen", data)


class Starter(Routine):
    """An entry routine with its own __call__."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("go", ["n"])

    def __call__(self, **kwargs: Any) -> None:
        super().__call__(**kwargs)
        for n in range(kwargs["times"]):
            self.emit("go", n=n)
