"""Assertions shared by the model tests: what a build-time error message must name."""

from __future__ import annotations

import inspect
import os
from typing import Any


def location(fn: Any) -> tuple[str, str]:
    """The ``module.qualname`` and ``file, line N`` that messages must show for ``fn``."""
    code = getattr(fn, "__code__", None)
    if code is None and inspect.isclass(fn):
        code = vars(fn)["__init__"].__code__
    name = f"{fn.__module__}.{fn.__qualname__}"
    return name, f"{os.path.basename(code.co_filename)}, line {code.co_firstlineno}"


def assert_names(
    error: BaseException, *, stage: str, fn: Any = None, attribute: bool = True
) -> None:
    """``error`` names ``stage`` (in its message and, with ``attribute``, its ``stage``
    attribute where it has one) and, when given, the user's ``fn`` by module, qualified
    name, file and line."""
    message = str(error)
    assert repr(stage) in message, message
    if attribute:
        recorded = getattr(error, "stage", stage)
        assert recorded == stage, (recorded, message)
    if fn is not None:
        name, where = location(fn)
        assert name in message, message
        assert where in message, message
