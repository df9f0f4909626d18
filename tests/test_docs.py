"""Every ```python block of README.md and docs/*.md runs, and prints what its
``# output:`` part says: the docs cannot drift from the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    """(where, code) per block; a block starting "# continued" runs after the last block
    before it that runs."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        previous = ""
        for match in BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 1
            code = match.group(1)
            if code.startswith("# continued"):
                code = previous.partition("# output:\n")[0] + code
            found.append((f"{path.name}:{line}", code))
            if not code.startswith("# not run"):
                previous = code
    return found


def _expected(code: str) -> list[str] | None:
    if "\n# output:\n" not in "\n" + code:
        return None
    tail = code.partition("# output:\n")[2]
    return [line[2:] if line.startswith("# ") else line[1:] for line in tail.splitlines()]


@pytest.mark.parametrize(("where", "code"), _blocks(), ids=[w for w, _ in _blocks()])
def test_doc_snippet_runs_and_prints_its_output(where: str, code: str, tmp_path: Path) -> None:
    """The snippet runs without error or warning, and prints its documented output."""
    if code.startswith("# not run"):
        pytest.skip(f"{where} is marked '# not run' (it needs names defined elsewhere)")
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stderr[-2000:]}"
    expected = _expected(code)
    if expected is not None:
        assert done.stdout.splitlines() == expected, where
