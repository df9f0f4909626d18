"""Where a failed run failed, for people: the file and line of the user's code that raised
(read from the traceback riverbed kept), and where the full traceback is."""

from __future__ import annotations

import re
import sysconfig
from pathlib import Path

import riverbed as rb

__all__ = ["failure_lines", "shown_path", "user_frame"]

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>.+)$', re.M)


def _library_roots() -> tuple[str, ...]:
    """Where code that is not the user's lives: Python's own library, installed packages,
    riverbed."""
    paths = sysconfig.get_paths()
    roots = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.add(str(Path(rb.__file__).resolve().parent))
    return tuple(sorted(roots))


def user_frame(traceback: str) -> tuple[str, int, str] | None:
    """The innermost frame of ``traceback`` in the user's own code (not Python's library,
    an installed package or riverbed): (file, line, function); else the innermost frame;
    None for a traceback with no frames."""
    frames = [
        (m["file"], int(m["line"]), m["function"].strip()) for m in _FRAME.finditer(traceback)
    ]
    if not frames:
        return None
    roots = _library_roots()
    own = [frame for frame in frames if not _in_library(frame[0], roots)]
    return (own or frames)[-1]


def _in_library(file: str, roots: tuple[str, ...]) -> bool:
    if file.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return True
    try:
        resolved = Path(file).resolve()
    except OSError:
        return False
    return any(resolved.is_relative_to(root) for root in roots)


def shown_path(file: str) -> str:
    """``file`` relative to the current directory when it is under it."""
    try:
        return str(Path(file).resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError):
        return file


def failure_lines(run_id: str, traceback: str, indent: str = "  ") -> list[str]:
    """Where run ``run_id`` failed (``at app.py:12 in parse``) and how to see the full
    traceback (``riverbed runs show RUN_ID``, or the ``--json`` output)."""
    lines = []
    frame = user_frame(traceback)
    if frame is not None:
        file, line, function = frame
        lines.append(f"{indent}at {shown_path(file)}:{line} in {function}")
    lines.append(
        f"{indent}full traceback: riverbed runs show {run_id} (or the error in --json output)"
    )
    return lines
