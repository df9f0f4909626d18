"""Finding a flow by its TARGET (``module:attr`` or ``path/to/file.py:attr``): what
``riverbed run``, ``riverbed runs resume`` and workers use. Uses only the public API.

A target typed by the user is theirs to choose. A target read from the store (a queued
run's, a crashed run's) is checked first (``check_stored_target``): whoever can write the
store could otherwise make every worker import a file of their choosing. Stored targets
are ``module:attr`` of identifiers (not of Python's standard library), or a ``.py`` file
under the current directory or a directory listed in ``RIVERBED_TARGET_ROOTS``."""

from __future__ import annotations

import importlib
import inspect
import os
import reprlib
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import riverbed as rb

__all__ = [
    "ROOTS_VAR",
    "as_flow",
    "check_stored_target",
    "find_target",
    "load_flow",
    "target_roots",
]

_FORMS = "write TARGET as module:attr or path/to/file.py:attr, e.g. app:flow"

ROOTS_VAR = "RIVERBED_TARGET_ROOTS"
"""Directories (separated by ``os.pathsep``) besides the current one from which a stored
target may load a ``.py`` file."""


def load_flow(
    target: str, *, stored: bool = False, params: Mapping[str, Any] | None = None
) -> rb.Flow:
    """The flow that ``target`` names, found the way ``riverbed run`` finds it.

    ``target`` is ``module:attr`` or ``path/to/file.py:attr``. ``attr`` (dotted for a
    nested attribute) is a ``riverbed.Flow``, or a function returning one, called with
    ``params`` as keyword arguments (a run's parameters: ``riverbed schedule -p day=3``)::

        load_flow("app:flow")                          # the Flow `flow` in app.py
        load_flow("pipelines.daily:make_flow")         # calls make_flow()
        load_flow("jobs/etl.py:flows.nightly")         # a file, then an attribute of one
        load_flow("app:make_flow", params={"day": 3})  # calls make_flow(day=3)

    A Flow takes no parameters: given some, they are only recorded with its runs (the CLI
    says so). The current directory goes on ``sys.path`` first (as uvicorn does). A file
    is imported under its own name with its directory first on ``sys.path``, as ``python
    file.py`` would see its neighbours, so its functions keep importable names.

    Raises ``rb.TargetError`` (one line: what is wrong, what to write) when the target does not
    lead to a flow, or its function does not take ``params``; errors raised by the module's
    own code, e.g. a ``FlowDefinitionError`` while it builds its flow, propagate unchanged.

    ``stored=True`` for a target read from the store rather than typed by the user (a
    worker's claimed run, ``riverbed runs resume`` without a TARGET, ``runs recover``):
    it is refused unless ``check_stored_target`` accepts it.
    """
    return as_flow(find_target(target, stored=stored), target, params or {})


def find_target(target: str, *, stored: bool = False) -> Any:
    """What ``target`` names, imported (a Flow, a function returning one, or anything
    else, which ``as_flow`` refuses); see ``load_flow``."""
    if stored:
        check_stored_target(target)
    location, colon, attr = target.rpartition(":")
    if not colon or not location or not attr:
        raise rb.TargetError(f"TARGET {target!r} names no attribute; {_FORMS}")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise rb.TargetError(f"{attr!r} in TARGET {target!r} is not an attribute name; {_FORMS}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written a moment ago must be found
    if _names_a_file(location):
        module = _import_file(location, target)
    else:
        module = _import_module(location, target)
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise rb.TargetError(
                f"module {module.__name__!r} has no attribute {attr!r}{_flows_in(module, location)}"
            ) from None
    return found


def check_stored_target(target: str) -> None:
    """Refuse (``rb.TargetError``) a target read from the store unless it is
    ``module:attr`` of identifiers, outside Python's standard library, or a ``.py`` file
    (``file.py:attr``) inside ``target_roots()``. The store's rows are not trusted to pick
    which code a process imports.

    >>> check_stored_target("app:flow")
    >>> check_stored_target("/tmp/elsewhere/evil.py:flow")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    riverbed.TargetError: stored target '/tmp/elsewhere/evil.py:flow' refused: ...
    """
    location, colon, attr = target.rpartition(":")
    if not colon or not _dotted(attr):
        _refuse(target, "it is not module:attr nor path/to/file.py:attr")
    if not _names_a_file(location):
        if not _dotted(location):
            _refuse(target, f"{location!r} is not a module name")
        if location.partition(".")[0] in sys.stdlib_module_names:
            _refuse(target, f"{location!r} is a module of Python's standard library")
        return
    path = Path(location)
    if path.suffix != ".py":
        _refuse(target, f"{location!r} is not a .py file")
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in target_roots()):
        _refuse(target, f"the file {resolved} is outside {_shown_roots()}")


def target_roots() -> list[Path]:
    """The directories under which a stored target may name a ``.py`` file: the current
    one, and those listed in ``RIVERBED_TARGET_ROOTS`` (separated by ``os.pathsep``)."""
    listed = os.environ.get(ROOTS_VAR, "").split(os.pathsep)
    return [Path.cwd().resolve(), *(Path(root).resolve() for root in listed if root)]


def _refuse(target: str, why: str) -> NoReturn:
    raise rb.TargetError(
        f"stored target {target!r} refused: {why}. A run's target is read from the store, "
        "which must not choose what code this process imports: riverbed loads a stored "
        f"target only as module:attr, or as a .py file under {_shown_roots()} (add "
        f"directories to {ROOTS_VAR}, separated by {os.pathsep!r}); or give the target "
        "yourself: riverbed runs resume RUN path/to/file.py:flow"
    )


def _shown_roots() -> str:
    return "the current directory" + "".join(f", {root}" for root in target_roots()[1:])


def _dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _names_a_file(location: str) -> bool:
    return location.endswith(".py") or "/" in location or os.sep in location


def as_flow(found: Any, target: str, params: Mapping[str, Any]) -> rb.Flow:
    """``found`` if it is a Flow, else what it returns when called with ``params`` as
    keyword arguments."""
    if isinstance(found, rb.Flow):
        return found
    fix = "point TARGET at a Flow or at a function that returns one"
    if not callable(found):
        raise rb.TargetError(f"{target!r} is {_shown(found)}, not a riverbed.Flow; {fix}")
    try:
        inspect.signature(found).bind(**params)
    except TypeError as error:
        raise rb.TargetError(_unfit(target, params, error)) from None
    except ValueError:  # no signature to read (some builtins): let the call decide
        pass
    made = found(**params)
    if not isinstance(made, rb.Flow):
        raise rb.TargetError(
            f"{target!r} returned {_shown(made)}, not a riverbed.Flow; make it return the Flow"
        )
    return made


def _unfit(target: str, params: Mapping[str, Any], error: TypeError) -> str:
    """Why the function ``target`` cannot be called with ``params``, and the fix."""
    if not params:
        return (
            f"{target!r} is a callable that needs arguments ({error}); give them as run "
            "parameters (-p NAME=VALUE), or point TARGET at a Flow or at a function of no "
            "arguments that returns one"
        )
    given = ", ".join(f"{name}={value!r}" for name, value in params.items())
    return (
        f"{target!r} cannot be called with the run's parameters {given}: {error}; "
        "give the parameters its signature takes (-p NAME=VALUE)"
    )


def _import_module(name: str, target: str) -> ModuleType:
    if not all(part.isidentifier() for part in name.split(".")):
        raise rb.TargetError(f"{name!r} in TARGET {target!r} is not a module name; {_FORMS}")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        # Only the target's own module (or a parent package) missing is a bad TARGET; a
        # module that exists but imports something missing is the module's error.
        if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
            raise
        raise rb.TargetError(
            f"cannot import module {name!r} (no module named {error.name!r} in {os.getcwd()} "
            f"or on the path); {_FORMS}"
        ) from None


def _import_file(location: str, target: str) -> ModuleType:
    path = Path(location)
    if path.suffix != ".py":
        raise rb.TargetError(f"{location!r} in TARGET {target!r} is not a .py file; {_FORMS}")
    if not path.is_file():
        raise rb.TargetError(f"no file {location!r} (looked from {os.getcwd()}); {_FORMS}")
    name = path.stem
    if not name.isidentifier():
        raise rb.TargetError(
            f"file {location!r} cannot be imported: {name!r} is not a module name; rename "
            "it with letters, digits and '_' only"
        )
    directory = str(path.resolve().parent)
    if sys.path[:1] != [directory]:
        sys.path.insert(0, directory)
    module = _import_module(name, target)
    if module.__file__ is None or Path(module.__file__).resolve() != path.resolve():
        raise rb.TargetError(
            f"file {location!r} is shadowed: 'import {name}' finds {module.__file__ or name!r}; "
            "rename the file, or give TARGET as module:attr"
        )
    return module


def _flows_in(module: ModuleType, location: str) -> str:
    flows = [name for name, value in vars(module).items() if isinstance(value, rb.Flow)]
    if not flows:
        return "; it has no riverbed.Flow at module level (a function returning one works too)"
    return "; its flows are " + ", ".join(f"{location}:{name}" for name in flows)


def _shown(value: Any) -> str:
    return f"{reprlib.repr(value)} (type {type(value).__qualname__})"
