"""Real processes for the durability tests: ``riverbed`` commands and Python snippets run
from the repository root with its sources on the path, their output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child_env(calls: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child process: this one's, the repository on PYTHONPATH,
    ``SLOW_CALLS`` (where ``slow_app``'s steps record their calls) if given, and
    ``extra``."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", **extra)
    if calls is not None:
        env["SLOW_CALLS"] = str(calls)
    return env


def python(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``python ARGS`` started from the repository root, its output captured as text."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def riverbed(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``riverbed ARGS`` started from the repository root, its output captured as text."""
    return python("-m", "riverbed", *args, env=env)
