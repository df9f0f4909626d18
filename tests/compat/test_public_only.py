"""The dialects use riverbed's public API only: no module of theirs imports a private
riverbed module (a name part starting with ``_``), at any level of the file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

COMPAT = Path(__file__).resolve().parents[2] / "src" / "riverbed" / "compat"


def riverbed_imports(path: Path) -> list[tuple[int, str]]:
    """Every riverbed module that ``path`` imports, with its line, wherever it is written."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: within riverbed.compat
                base = "riverbed.compat" + ("." + node.module if node.module else "")
            else:
                base = node.module or ""
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "riverbed"]


def dialect_files() -> list[Path]:
    return sorted(COMPAT.rglob("*.py"))


def test_there_are_dialect_modules_to_check() -> None:
    assert (COMPAT / "__init__.py").exists()


@pytest.mark.parametrize(
    "path", dialect_files(), ids=lambda p: str(p.relative_to(COMPAT)).replace("/", ".")
)
def test_dialect_imports_only_public_names(path: Path) -> None:
    private = [
        f"{path.name}:{line}: {name}"
        for line, name in riverbed_imports(path)
        if not name.startswith("riverbed.compat.")  # a dialect's own modules are its own
        and any(part.startswith("_") and part != "__init__" for part in name.split("."))
    ]
    assert not private, "a dialect imports private riverbed modules: " + "; ".join(private)
