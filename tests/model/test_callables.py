"""What riverbed reads from a user's callable without calling it: its name, where it
lives, whether it is async, its parameters, its import reference and its code fingerprint."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

import pytest

from riverbed import NotCallableError, SignatureError
from riverbed._model import callables
from tests.model import flowlib


def _compile(source: str, module: str = "generated") -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": module}
    exec(compile(source, f"{module}.py", "exec"), namespace)
    return namespace


def _decorated(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        return fn(*args)

    return wrapper


# -- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (flowlib.double, "double"),
        (lambda x: x, "lambda"),
        (flowlib.MyMapper, "my_mapper"),
        (flowlib.MyMapper(), "my_mapper"),
        (functools.partial(flowlib.add, 1), "add"),
        (_decorated(flowlib.double), "double"),
        (print, "print"),
        (flowlib.Average.add, "add"),
        (flowlib.Average().add, "add"),
        (flowlib.Printer(), "printer"),
        (_compile("def __weird__(x): return x")["__weird__"], "weird"),
    ],
)
def test_short_name(fn: Any, expected: str) -> None:
    """Derived names: def name, 'lambda', snake-cased classes, the function inside wrappers."""
    assert callables.short_name(fn) == expected


def test_describe_gives_module_qualname_file_and_line() -> None:
    """``describe`` locates a def as ``module.qualname (file, line N)``."""
    line = flowlib.double.__code__.co_firstlineno
    assert callables.describe(flowlib.double) == (
        f"tests.model.flowlib.double (flowlib.py, line {line})"
    )


def test_describe_sees_through_partials_and_decorators() -> None:
    """A partial or a ``functools.wraps`` decorator is described as the function inside."""
    expected = callables.describe(flowlib.double)
    assert callables.describe(functools.partial(flowlib.double)) == expected
    assert callables.describe(_decorated(flowlib.double)) == expected


def test_describe_a_lambda_shows_where_it_is() -> None:
    """A lambda is described by its enclosing scope, file and line."""
    fn = lambda x: x  # noqa: E731 - the point is a lambda
    text = callables.describe(fn)
    assert text.startswith(
        "tests.model.test_callables.test_describe_a_lambda_shows_where_it_is.<locals>.<lambda>"
    )
    assert text.endswith(f"(test_callables.py, line {fn.__code__.co_firstlineno})")


def test_describe_a_class_points_at_its_init() -> None:
    """A class is located at its ``__init__`` (what a signature error is about)."""
    line = vars(flowlib.NeedsArg)["__init__"].__code__.co_firstlineno
    assert callables.describe(flowlib.NeedsArg) == (
        f"tests.model.flowlib.NeedsArg (flowlib.py, line {line})"
    )


def test_describe_a_callable_object_points_at_its_call() -> None:
    """A callable instance is located at its class's ``__call__``."""
    line = flowlib.MyMapper.__call__.__code__.co_firstlineno
    assert callables.describe(flowlib.MyMapper()) == (
        f"tests.model.flowlib.MyMapper (flowlib.py, line {line})"
    )


def test_describe_builtins_and_plain_objects() -> None:
    """Builtins and objects without code are described by module and name only."""
    assert callables.describe(len) == "builtins.len"
    assert callables.describe(flowlib.Printer()) == "tests.model.flowlib.Printer"


def test_describe_uses_the_file_name_only() -> None:
    """The file is shown by its base name, whatever the path separator."""
    fn = _compile("def f(x):\n    return x\n", module=os.path.join("deep", "dir", "mod"))["f"]
    assert callables.describe(fn).endswith("(mod.py, line 1)")


# -- import references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "ref"),
    [
        (flowlib.double, "tests.model.flowlib:double"),
        (flowlib.Average, "tests.model.flowlib:Average"),
        (flowlib.Average.add, "tests.model.flowlib:Average.add"),
        (print, "builtins:print"),
    ],
)
def test_import_ref_of_importable_objects(fn: Any, ref: str) -> None:
    """Module-level defs, classes, methods and builtins import back by module:qualname."""
    assert callables.import_ref(fn) == ref
    assert callables.resolve_ref(ref) is fn


def test_import_ref_of_what_cannot_be_imported() -> None:
    """Lambdas, local functions, partials, bound methods and instances have none."""

    def local(x: int) -> int:
        return x

    for fn in (
        lambda x: x,
        local,
        functools.partial(flowlib.add, 1),
        flowlib.Average().add,
        flowlib.MyMapper(),
    ):
        assert callables.import_ref(fn) is None


def test_import_ref_of_a_shadowed_name() -> None:
    """An object whose module attribute is now something else has no reference."""
    namespace = _compile("def f(x): return x\n", module="tests.model.flowlib")
    assert callables.import_ref(namespace["f"]) is None


def test_resolve_ref_accepts_dotted_form() -> None:
    """``module.attr`` works like ``module:attr``."""
    assert callables.resolve_ref("tests.model.flowlib.double") is flowlib.double


def test_resolve_ref_of_missing_names_raises() -> None:
    """Unknown modules or attributes raise the import errors Python gives."""
    with pytest.raises(ImportError):
        callables.resolve_ref("no_such_module_anywhere:f")
    with pytest.raises(AttributeError):
        callables.resolve_ref("tests.model.flowlib:missing")


# -- async -------------------------------------------------------------------------------


class _AsyncCall:
    async def __call__(self, x: int) -> int:
        return x


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (flowlib.slow_double, True),
        (flowlib.anumbers, True),
        (functools.partial(flowlib.slow_double), True),
        (_AsyncCall(), True),
        (flowlib.double, False),
        (flowlib.numbers, False),
        (flowlib.MyMapper(), False),
        (print, False),
    ],
)
def test_is_async(fn: Any, expected: bool) -> None:
    """async defs, async generators and async __call__ objects are async; others are not."""
    assert callables.is_async(fn) is expected


# -- fingerprints ------------------------------------------------------------------------


def test_fingerprint_is_stable_for_one_function() -> None:
    """The same function gives the same short hex fingerprint every time."""
    first = callables.fingerprint(flowlib.double)
    assert first == callables.fingerprint(flowlib.double)
    assert len(first) == 16
    assert int(first, 16) >= 0


def test_fingerprint_follows_code_not_identity() -> None:
    """Two functions compiled from the same source have the same fingerprint."""
    source = "def step(x):\n    return x + 1\n"
    one, two = _compile(source)["step"], _compile(source, module="elsewhere")["step"]
    assert one is not two
    assert callables.fingerprint(one) == callables.fingerprint(two)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("def step(x):\n    return x + 1\n", "def step(x):\n    return x + 2\n"),
        ("def step(x):\n    return x + 1\n", "def step(x):\n    return x - 1\n"),
        ("def step(x):\n    return len(x)\n", "def step(x):\n    return abs(x)\n"),
        ("def step(x):\n    return x in {'a'}\n", "def step(x):\n    return x in {'b'}\n"),
        (
            "def step(x):\n    def inner(y):\n        return y * 2\n    return inner(x)\n",
            "def step(x):\n    def inner(y):\n        return y * 3\n    return inner(x)\n",
        ),
        (
            "class Step:\n    def add(self, x):\n        return x\n",
            "class Step:\n    def add(self, x):\n        return -x\n",
        ),
    ],
)
def test_fingerprint_changes_with_the_body(before: str, after: str) -> None:
    """Any change to a body (operator, constant, name, nested def, method) shows."""
    name = "Step" if before.startswith("class") else "step"
    old, new = _compile(before)[name], _compile(after)[name]
    assert callables.fingerprint(old) != callables.fingerprint(new)


def test_fingerprint_of_partials_and_callable_objects() -> None:
    """A partial is fingerprinted by its function; a callable object by its ``__call__``."""
    assert callables.fingerprint(functools.partial(flowlib.double)) == callables.fingerprint(
        flowlib.double
    )
    assert callables.fingerprint(flowlib.MyMapper()) == callables.fingerprint(flowlib.MyMapper())


def test_fingerprint_of_builtins_is_by_name() -> None:
    """Builtins have no Python code: their fingerprint comes from their name."""
    assert callables.fingerprint(len) == callables.fingerprint(len)
    assert callables.fingerprint(len) != callables.fingerprint(abs)


# -- checks ------------------------------------------------------------------------------


def test_require_callable_refuses_values() -> None:
    """A non-callable is a NotCallableError carrying the stage and flow."""
    with pytest.raises(
        NotCallableError, match=r"stage 's': the fn must be callable, got int 3"
    ) as caught:
        callables.require_callable(3, stage="s", role="the fn", flow="f")
    assert (caught.value.stage, caught.value.flow) == ("s", "f")


@pytest.mark.parametrize(
    ("fn", "count"),
    [
        (flowlib.double, 1),
        (flowlib.add, 2),
        (flowlib.zero, 0),
        (lambda *args: args, 0),
        (lambda *args: args, 3),
        (lambda x, y=1: x, 1),
        (lambda x, y=1: x, 2),
        (functools.partial(flowlib.add, 1), 1),
        (flowlib.Average, 0),
        (flowlib.MyMapper(), 1),
        (str, 1),
    ],
)
def test_check_arity_accepts_fitting_callables(fn: Callable[..., Any], count: int) -> None:
    """Callables that can be called with ``count`` positional arguments pass."""
    callables.check_arity(fn, count, stage="s", role="the fn")


@pytest.mark.parametrize(
    ("fn", "count"),
    [
        (flowlib.double, 2),
        (flowlib.add, 1),
        (flowlib.zero, 1),
        (lambda *, key: key, 1),
        (functools.partial(flowlib.add, 1, 2), 1),
        (flowlib.NeedsArg, 0),
    ],
)
def test_check_arity_refuses_misfits(fn: Callable[..., Any], count: int) -> None:
    """A callable that cannot take ``count`` positional arguments is a SignatureError."""
    with pytest.raises(SignatureError, match=rf"stage 's': the fn .* with {count} positional"):
        callables.check_arity(fn, count, stage="s", role="the fn")


def _asyncify(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(fn)
    async def wrapper(x: Any) -> Any:
        return fn(x)

    return wrapper


def _sync_wrapper(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(fn)
    def wrapper(x: Any) -> Any:
        return fn(x)

    return wrapper


def test_is_async_judges_a_decorator_by_its_wrapper() -> None:
    """A functools.wraps wrapper is async if it is an async def, whatever it wraps."""
    assert callables.is_async(_asyncify(flowlib.double))
    assert not callables.is_async(_sync_wrapper(flowlib.slow_double))
    assert not callables.is_async(_sync_wrapper(flowlib.double))


@dataclasses.dataclass(eq=False)
class _Calls:
    """A callable dataclass that calls another (or itself, through ``then``)."""

    then: Any = None

    def __call__(self, x: Any) -> Any:
        return self.then(x) if self.then is not None else x


def test_fingerprint_covers_what_a_callable_dataclass_calls() -> None:
    """Another callable field, another fingerprint; two that call each other still have
    one (no endless walk)."""
    assert callables.fingerprint(_Calls(abs)) != callables.fingerprint(_Calls(len))
    first, second = _Calls(), _Calls()
    first.then, second.then = second, first
    assert len(callables.fingerprint(first)) == 16
