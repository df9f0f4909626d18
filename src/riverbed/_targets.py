"""Finding a flow by its TARGET (``module:attr`` or ``path/to/file.py:attr``): what
``riverbed run``, ``riverbed runs resume`` and workers use. Uses only the public API."""

from __future__ import annotations

import importlib
import inspect
import os
import reprlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import riverbed as rb

__all__ = ["load_flow"]

_FORMS = "write TARGET as module:attr or path/to/file.py:attr, e.g. app:flow"


def load_flow(target: str) -> rb.Flow:
    """The flow that ``target`` names, found the way ``riverbed run`` finds it.

    ``target`` is ``module:attr`` or ``path/to/file.py:attr``. ``attr`` (dotted for a
    nested attribute) is a ``riverbed.Flow`` or a function of no arguments returning one::

        load_flow("app:flow")                    # the Flow `flow` in app.py
        load_flow("pipelines.daily:make_flow")   # calls make_flow()
        load_flow("jobs/etl.py:flows.nightly")   # a file, then an attribute of an attribute

    The current directory goes on ``sys.path`` first (as uvicorn does). A file is imported
    under its own name with its directory first on ``sys.path``, as ``python file.py``
    would see its neighbours, so its functions keep importable names.

    Raises ``rb.TargetError`` (one line: what is wrong, what to write) when the target does not
    lead to a flow; errors raised by the module's own code, e.g. a ``FlowDefinitionError``
    while it builds its flow, propagate unchanged.
    """
    location, colon, attr = target.rpartition(":")
    if not colon or not location or not attr:
        raise rb.TargetError(f"TARGET {target!r} names no attribute; {_FORMS}")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise rb.TargetError(f"{attr!r} in TARGET {target!r} is not an attribute name; {_FORMS}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written a moment ago must be found
    if location.endswith(".py") or "/" in location or os.sep in location:
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
    return _as_flow(found, target)


def _as_flow(found: Any, target: str) -> rb.Flow:
    """``found`` if it is a Flow, else what it returns when called with no arguments."""
    if isinstance(found, rb.Flow):
        return found
    fix = "point TARGET at a Flow or at a function of no arguments that returns one"
    if not callable(found):
        raise rb.TargetError(f"{target!r} is {_shown(found)}, not a riverbed.Flow; {fix}")
    try:
        inspect.signature(found).bind()
    except TypeError:
        raise rb.TargetError(f"{target!r} is a callable that needs arguments; {fix}") from None
    except ValueError:  # no signature to read (some builtins): let the call decide
        pass
    made = found()
    if not isinstance(made, rb.Flow):
        raise rb.TargetError(
            f"{target!r} returned {_shown(made)}, not a riverbed.Flow; make it return the Flow"
        )
    return made


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
