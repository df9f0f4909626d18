"""The model is the bottom layer: at import time it depends on nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODEL = Path(__file__).resolve().parents[2] / "src" / "riverbed" / "_model"
ABOVE = ("riverbed._runtime", "riverbed.cli", "riverbed.testing", "riverbed.serve", "ray")


def _module_level_imports(tree: ast.Module) -> list[str]:
    """Modules ``tree`` imports, ``TYPE_CHECKING`` blocks excepted."""
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                names.extend(alias.name for alias in inner.names)
            elif isinstance(inner, ast.ImportFrom) and inner.module:
                names.append(inner.module)
    return names


def _top_level_only(tree: ast.Module) -> ast.Module:
    """``tree`` without function bodies, whose imports run only when called."""

    class Strip(ast.NodeTransformer):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
            node.body = [ast.Pass()]
            return node

        def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
            node.body = [ast.Pass()]
            return node

    return Strip().visit(tree)  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", sorted(MODEL.glob("*.py")), ids=lambda path: path.name)
def test_model_imports_nothing_above_it(path: Path) -> None:
    """No model module imports a runner, the CLI, testing helpers or Ray at import time."""
    tree = _top_level_only(ast.parse(path.read_text(), filename=str(path)))
    imported = _module_level_imports(tree)
    assert [name for name in imported if name.startswith(ABOVE)] == []


def test_the_check_sees_module_level_imports() -> None:
    """The scan sees top-level and class imports, not function or TYPE_CHECKING ones."""
    source = (
        "import ray\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from riverbed._runtime import result\n"
        "class A:\n    import riverbed.cli\n"
        "    def run(self):\n        from riverbed._runtime.local import engine\n"
    )
    imported = _module_level_imports(_top_level_only(ast.parse(source)))
    assert imported == ["ray", "typing", "riverbed.cli"]
