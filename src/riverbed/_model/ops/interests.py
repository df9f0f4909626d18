"""What events a handler wants, read from the ``case`` patterns of its ``match`` statement.

``interests(handler)`` parses the handler's source (``ast``; nothing is run) and finds the
``match`` statements whose subject is the handler's event parameter (its last positional
parameter: ``fn(event)``, ``__call__(self, event)``, ``process(self, context, event)``).
Each ``case`` pattern becomes an ``Interest``, a test an event passes or not:

- a class pattern ``Event(name="greet", who=who)``: ``isinstance(event, Event)`` (so
  subclasses match: the MRO counts) and, for every keyword or positional sub-pattern that is
  a literal (``"greet"``, ``3``, ``None``, a dotted constant), the attribute equal to it;
  capture sub-patterns (``who``) constrain nothing. The class is resolved in the handler's
  globals; a class that cannot be resolved is matched by name against the event's MRO;
- a literal ``case "stop":`` / ``case 3:``: the event equal to it (``None`` / ``True`` /
  ``False`` by identity);
- ``case {...}:`` a mapping; ``case ("say", text):`` a sequence (not a string) of that
  length (unless it has a ``*rest``) whose literal items are equal;
- ``case _:`` or a bare capture: every event; ``a | b``: either.

Guards (``case X() if ...``) are ignored: routing over-approximates, the guard still
decides inside the handler. A handler whose source cannot be read, or that has no ``match``
on its event, has no inferable interests (``None``).
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Interest", "InterestsUnknown", "handler_function", "interests"]

_ANY = "any"


@dataclass(frozen=True)
class Interest:
    """One ``case`` pattern as a test on events: ``kind`` is ``"any"``, ``"class"``,
    ``"value"``, ``"identity"``, ``"mapping"`` or ``"sequence"``; ``cls`` the class (or its
    name when unresolvable) of a class pattern; ``attrs`` its literal attributes (a
    sequence's: ``(index, value)``); ``value`` the literal, or a sequence's length."""

    kind: str
    cls: Any = None
    attrs: tuple[tuple[Any, Any], ...] = ()
    value: Any = None

    def accepts(self, event: Any) -> bool:
        """True if an event like ``event`` can match the pattern."""
        if self.kind == _ANY:
            return True
        if self.kind == "value":
            return bool(event == self.value)
        if self.kind == "identity":
            return event is self.value
        if self.kind == "mapping":
            return isinstance(event, Mapping)
        if self.kind == "sequence":
            return self._sequence(event)
        if isinstance(self.cls, str):
            if self.cls not in {c.__name__ for c in type(event).__mro__}:
                return False
        elif not isinstance(event, self.cls):
            return False
        missing = object()
        return all(getattr(event, a, missing) == v for a, v in self.attrs)

    def _sequence(self, event: Any) -> bool:
        if not isinstance(event, Sequence) or isinstance(event, str | bytes | bytearray):
            return False
        if self.value is not None and len(event) != self.value:
            return False
        if len(event) < max((index + 1 for index, _ in self.attrs), default=0):
            return False
        return all(event[index] == v for index, v in self.attrs)

    def __str__(self) -> str:
        if self.kind == "class":
            name = self.cls if isinstance(self.cls, str) else self.cls.__name__
            return f"{name}({', '.join(f'{a}={v!r}' for a, v in self.attrs)})"
        if self.kind in ("value", "identity"):
            return repr(self.value)
        if self.kind == "sequence":
            return f"sequence{self.value if self.value is not None else ''}{dict(self.attrs)}"
        return self.kind


class InterestsUnknown(Exception):  # noqa: N818 (a reason, raised and caught inside)
    """Why a handler's interests cannot be inferred (its message says)."""


def handler_function(handler: Any, method: str | None = None) -> Callable[..., Any]:
    """The function whose ``match`` says what ``handler`` wants: the function itself, a
    bound method's function, or ``method`` (default ``__call__``) of a class or instance."""
    target = handler if inspect.isclass(handler) else type(handler)
    if method is not None:
        return getattr(target, method)  # type: ignore[no-any-return]
    if inspect.isfunction(handler) or inspect.ismethod(handler):
        return getattr(handler, "__func__", handler)
    return target.__call__


def interests(fn: Callable[..., Any]) -> tuple[Interest, ...]:
    """The interests of the function ``fn`` (see the module docstring); raises
    ``InterestsUnknown`` saying why when there are none to infer."""
    fn = inspect.unwrap(fn)  # a decorated method: its own source and globals
    source: str | None
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        source = _command_line_source(fn)
    if source is None:
        raise InterestsUnknown("its source cannot be read")
    tree = ast.parse(source)
    func = next(
        (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
        None,
    )
    if func is None:  # a lambda: no statements, so no match
        raise InterestsUnknown("it is a lambda, which cannot hold a match statement")
    params = [*func.args.posonlyargs, *func.args.args]
    if not params:
        raise InterestsUnknown("it takes no event parameter")
    event = params[-1].arg
    scope = _scope(fn)
    found: list[Interest] = []
    for node in ast.walk(func):
        if isinstance(node, ast.Match) and _names(node.subject, event):
            for case in node.cases:
                found.extend(_pattern(case.pattern, scope))
    if not found:
        raise InterestsUnknown(f"it has no `match {event}:` statement on its event")
    return tuple(dict.fromkeys(found)) if _hashable(found) else tuple(found)


def _command_line_source(fn: Callable[..., Any]) -> str | None:
    """The source of a function defined by ``python -c CODE``, which ``inspect`` cannot
    find: CODE is in ``sys.orig_argv``. Taken only if the lines there define ``fn``."""
    code = getattr(fn, "__code__", None)
    argv = getattr(sys, "orig_argv", [])
    if code is None or code.co_filename != "<string>" or "-c" not in argv[:-1]:
        return None
    lines = argv[argv.index("-c") + 1].splitlines(keepends=True)
    block = lines[code.co_firstlineno - 1 :]
    if not block or not re.match(rf"\s*(async\s+)?def\s+{re.escape(fn.__name__)}\b", block[0]):
        return None  # exec'd code, or another -c: not this function's source
    return textwrap.dedent("".join(inspect.getblock(block)))


def _hashable(found: list[Interest]) -> bool:
    try:
        hash(tuple(found))
    except TypeError:
        return False
    return True


def _names(subject: ast.expr, event: str) -> bool:
    return isinstance(subject, ast.Name) and subject.id == event


def _scope(fn: Callable[..., Any]) -> dict[str, Any]:
    scope = dict(getattr(fn, "__globals__", {}))
    closure = getattr(fn, "__closure__", None) or ()
    names = getattr(getattr(fn, "__code__", None), "co_freevars", ())
    for name, cell in zip(names, closure, strict=False):
        try:
            scope[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return scope


def _pattern(pattern: ast.pattern, scope: dict[str, Any]) -> list[Interest]:
    if isinstance(pattern, ast.MatchOr):
        return [i for p in pattern.patterns for i in _pattern(p, scope)]
    if isinstance(pattern, ast.MatchAs):
        return _pattern(pattern.pattern, scope) if pattern.pattern else [Interest(_ANY)]
    if isinstance(pattern, ast.MatchValue):
        found, value = _literal(pattern.value, scope)
        return [Interest("value", value=value)] if found else [Interest(_ANY)]
    if isinstance(pattern, ast.MatchSingleton):
        return [Interest("identity", value=pattern.value)]
    if isinstance(pattern, ast.MatchMapping):
        return [Interest("mapping")]
    if isinstance(pattern, ast.MatchSequence):
        return [_sequence_pattern(pattern, scope)]
    if isinstance(pattern, ast.MatchClass):
        return [_class_pattern(pattern, scope)]
    return [Interest(_ANY)]  # MatchStar cannot stand alone; anything else: over-approximate


def _sequence_pattern(pattern: ast.MatchSequence, scope: dict[str, Any]) -> Interest:
    """A sequence of that length (none if it has a star) with its literal items; items
    after a star are left unconstrained."""
    items: list[tuple[Any, Any]] = []
    for index, sub in enumerate(pattern.patterns):
        if isinstance(sub, ast.MatchStar):
            return Interest("sequence", attrs=tuple(items))
        known, value = _constant(sub, scope)
        if known:
            items.append((index, value))
    return Interest("sequence", attrs=tuple(items), value=len(pattern.patterns))


def _class_pattern(pattern: ast.MatchClass, scope: dict[str, Any]) -> Interest:
    found, cls = _literal(pattern.cls, scope)
    if not found or not isinstance(cls, type):
        cls = _dotted(pattern.cls) or "?"
    names = list(pattern.kwd_attrs)
    subs = list(pattern.kwd_patterns)
    match_args = getattr(cls, "__match_args__", ()) if isinstance(cls, type) else ()
    for index, sub in enumerate(pattern.patterns):
        if index < len(match_args):
            names.append(match_args[index])
            subs.append(sub)
    attrs = []
    for attr, sub in zip(names, subs, strict=True):
        known, value = _constant(sub, scope)
        if known:
            attrs.append((attr, value))
    return Interest("class", cls=cls, attrs=tuple(attrs))


def _constant(sub: ast.pattern, scope: dict[str, Any]) -> tuple[bool, Any]:
    """A sub-pattern's constant (a known literal, or None, True, False), if it is one."""
    if isinstance(sub, ast.MatchValue):
        return _literal(sub.value, scope)
    if isinstance(sub, ast.MatchSingleton):
        return True, sub.value
    return False, None


def _literal(node: ast.expr, scope: dict[str, Any]) -> tuple[bool, Any]:
    """``(True, value)`` of a constant or a dotted name resolvable in ``scope``."""
    if isinstance(node, ast.Constant):
        return True, node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        known, value = _literal(node.operand, scope)
        return known, -value if known else None
    dotted = _dotted(node)
    if dotted is None:
        return False, None
    head, *rest = dotted.split(".")
    if head not in scope:
        return False, None
    value = scope[head]
    for part in rest:
        if not hasattr(value, part):
            return False, None
        value = getattr(value, part)
    return True, value


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None
