"""What riverbed needs to know about a user's callable: its name, where it lives, whether it
is async, whether it takes the right parameters, and a fingerprint of its code.

Everything here works from the object alone; nothing is called.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any

from riverbed._errors import NotCallableError, SignatureError


def unwrap(fn: Any) -> Any:
    """The function behind ``functools.partial`` and decorators that set ``__wrapped__``."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif hasattr(fn, "__wrapped__") and inspect.isfunction(fn):
            fn = getattr(fn, "__wrapped__")  # noqa: B009 - mypy narrows fn to FunctionType
        else:
            return fn


def short_name(fn: Any) -> str:
    """The name a stage gets from its callable: ``parse`` for ``def parse``, the class name
    in snake case for a class or an instance of one; ``None``-like for lambdas ("lambda")."""
    target = unwrap(fn)
    name = getattr(target, "__name__", None)
    if name is None:  # an instance with __call__, or a source object
        name = type(target).__name__
    if name == "<lambda>":
        return "lambda"
    if inspect.isclass(target) or not (inspect.isfunction(target) or inspect.ismethod(target)):
        name = _snake(name)
    return re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "stage"


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def describe(fn: Any) -> str:
    """Where a callable comes from, for error messages: ``app.parse (app.py, line 12)``."""
    target = unwrap(fn)
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None) or type(target).__module__
    where = ""
    code = getattr(target, "__code__", None)
    if code is None:
        # A class: where its __init__ is (what a wrong signature is about); an object with
        # __call__: where that is.
        own = vars(target).get("__init__") if inspect.isclass(target) else None
        if own is None and not inspect.isclass(target):
            own = getattr(type(target), "__call__", None)  # noqa: B004 - the method itself
        code = getattr(own, "__code__", None)
    if isinstance(code, CodeType):
        where = f" ({os.path.basename(code.co_filename)}, line {code.co_firstlineno})"
    return f"{module}.{qualname}{where}"


def import_ref(fn: Any) -> str | None:
    """``module:qualname`` if importing that gives back the very same object, else None
    (lambdas, closures, local functions, bound methods of instances, partials)."""
    qualname = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    if not qualname or not module or "<" in qualname:
        return None
    try:
        obj: Any = __import__(module, fromlist=["_"])
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if obj is fn else None


def resolve_ref(ref: str) -> Any:
    """Import ``module:qualname`` (or ``module.attr``) and return the object."""
    module, sep, qualname = ref.partition(":")
    if not sep:
        module, _, qualname = ref.rpartition(".")
    obj: Any = __import__(module, fromlist=["_"])
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def is_async(fn: Any) -> bool:
    """True for ``async def`` functions, partials of them, and objects whose ``__call__``
    is one. Decorators are judged by the wrapper itself, not by what it wraps (an async
    wrapper of a sync function is async; a sync wrapper of an async one is not)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isclass(fn):
        return False
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the method itself
    return call is not None and inspect.iscoroutinefunction(call)


@dataclass(frozen=True)
class StartingValue:
    """A plain value given where a state factory is expected (``fold(0, add)``,
    ``stateful(fn, initial=[])``): every key starts from its own deep copy, so a mutable
    value is never shared between keys."""

    value: Any

    def __call__(self) -> Any:
        return copy.deepcopy(self.value)


def as_factory(initial: Any) -> Any:
    """``initial`` as a zero-argument factory: callables (and ``None``) as they are, any
    other value wrapped in ``StartingValue``."""
    if initial is None or callable(initial):
        return initial
    return StartingValue(initial)


def fingerprint(fn: Any) -> str:
    """A short digest of a callable's code: it changes when the function body changes.

    Used for stage versions: a flow's version hash changes when any stage's code does.
    """
    return _fingerprint(fn, set())


def _fingerprint(fn: Any, seen: set[int]) -> str:
    """``fingerprint``, ``seen`` holding the ids of the objects being fingerprinted
    further up (callable dataclasses may refer to each other)."""
    digest = hashlib.sha256()
    target = unwrap(fn)
    if isinstance(target, StartingValue):  # the value is the code: fold(0) is not fold(1)
        digest.update(repr(target.value).encode())
    elif inspect.isclass(target):
        digest.update(target.__qualname__.encode())
        for attr in sorted(vars(target)):
            value = vars(target)[attr]
            if inspect.isfunction(value):
                digest.update(attr.encode())
                _feed_code(digest, value.__code__)
    else:
        code = getattr(target, "__code__", None)
        if code is None:
            code = getattr(getattr(target, "__call__", None), "__code__", None)  # noqa: B004
        if isinstance(code, CodeType):
            _feed_code(digest, code)
        else:  # a builtin or C function: its name is all we have
            digest.update(describe(target).encode())
        _feed_delegates(digest, target, seen)
    return digest.hexdigest()[:16]


def _feed_delegates(digest: Any, target: Any, seen: set[int]) -> None:
    """The code a callable dataclass instance calls (its callable fields, such as a graph
    node's handler) is part of its code: another handler, another fingerprint."""
    if not dataclasses.is_dataclass(target) or inspect.isclass(target) or id(target) in seen:
        return
    seen.add(id(target))
    for field in dataclasses.fields(target):
        value = getattr(target, field.name)
        if callable(value):
            digest.update(field.name.encode())
            digest.update(_fingerprint(value, seen).encode())
    seen.discard(id(target))


def _feed_code(digest: Any, code: CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, CodeType):
            _feed_code(digest, const)
        else:
            digest.update(_const_text(const).encode())


def _const_text(const: Any) -> str:
    """``repr`` of a code constant, but with set members sorted: ``x in {"a", "b"}`` stores
    a frozenset, whose repr order follows the per-process string hash (PYTHONHASHSEED)."""
    if isinstance(const, frozenset):
        return "frozenset({" + ", ".join(sorted(_const_text(item) for item in const)) + "})"
    if isinstance(const, tuple):
        return "(" + ", ".join(_const_text(item) for item in const) + ",)"
    return repr(const)


def require_callable(obj: Any, *, stage: str, role: str, flow: str | None = None) -> None:
    """Raise NotCallableError unless ``obj`` can be called."""
    if not callable(obj):
        raise NotCallableError(
            f"stage {stage!r}: {role} must be callable, got {type(obj).__name__} {obj!r:.80}; "
            f"pass a function or a class, not the result of calling it",
            flow=flow,
            stage=stage,
        )


def check_arity(
    fn: Callable[..., Any], count: int, *, stage: str, role: str, flow: str | None = None
) -> None:
    """Raise SignatureError unless ``fn`` can be called with ``count`` positional arguments.

    Builtins without a signature are accepted as they are: Python cannot tell.
    """
    require_callable(fn, stage=stage, role=role, flow=flow)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*range(count))
    except TypeError:
        params = ", ".join(signature.parameters) or "no parameters"
        plural = "argument" if count == 1 else "arguments"
        raise SignatureError(
            f"stage {stage!r}: {role} {describe(fn)} takes ({params}), but riverbed calls it "
            f"with {count} positional {plural}; change its parameters to take exactly {count}",
            flow=flow,
            stage=stage,
        ) from None
