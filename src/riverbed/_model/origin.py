"""Where a flow was defined, as a TARGET (``module:attr`` or ``path/to/file.py:attr``) that
another process can load it from: so that a run started from Python (``flow.run()``,
``rb.run(flow, input)``) can be resumed by ``riverbed runs resume`` or recovered by a
worker, with no TARGET given by hand.

Only a flow that is an attribute of the module that built it has one; a flow built inside
a function, or in an interactive session, has none (its runs are resumed from Python).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from riverbed._model.flow import Flow

__all__ = ["caller_module", "origin_of"]


def caller_module(depth: int = 2) -> str | None:
    """The ``__name__`` of the module whose code called the function calling this one."""
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return None
    name = frame.f_globals.get("__name__")
    return name if isinstance(name, str) else None


def origin_of(flow: Flow) -> str | None:
    """``module:attr`` (or ``file.py:attr`` for a script run as ``__main__``) under which
    ``flow`` can be loaded again, or None if it cannot be found there."""
    module_name = flow.module
    module = sys.modules.get(module_name) if module_name else None
    if module is None:
        return None
    attr = next((name for name, value in vars(module).items() if value is flow), None)
    if attr is None or not attr.isidentifier():
        return None
    if module_name != "__main__":
        return f"{module_name}:{attr}"
    spec = getattr(module, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return f"{spec.name}:{attr}"  # ``python -m package.module``
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return None
    file = Path(path).resolve()
    try:
        shown = str(file.relative_to(Path.cwd()))
    except ValueError:
        shown = str(file)
    return f"{shown}:{attr}"
