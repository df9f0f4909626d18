"""The layers of riverbed and the rules between them (docs/architecture.md), checked on the
source: every module under src/riverbed, every import in it.

An import counts wherever it is written: at module level (it runs when the module is
imported), inside a function (it runs when the function is called: still a dependency,
only a later one) and under ``if TYPE_CHECKING:`` (it never runs, but the module is
written against the other's types). All three must go down the layers; an import that
does not is an entry of ``ALLOWED``, with its kind and the reason it is there. Import
cycles between top-level subpackages are counted on the imports that run (module and
function level, ``ALLOWED`` ones aside: each of those is the deliberate way back up).
"""

from __future__ import annotations

import ast
import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "riverbed"


class Kind(enum.Enum):
    """Where an import is written, so when it runs."""

    MODULE = "module"
    """At module level (or in a class body): runs when the module is imported."""
    FUNCTION = "function"
    """In a function body: runs when the function is called."""
    TYPE = "type"
    """Under ``if TYPE_CHECKING:``: never runs; the type checker reads it."""


@dataclass(frozen=True)
class Import:
    """One imported module, as the checker sees it."""

    source: str
    """The importing module, e.g. ``riverbed._model.flow``."""
    target: str
    """The module imported: a module of the scanned tree when the name leads to one
    (``from riverbed._model import flow`` imports ``riverbed._model.flow``), else the
    name as written."""
    kind: Kind
    line: int


@dataclass(frozen=True)
class Layer:
    """A row of the table: the modules of one layer and the layers below that they use."""

    name: str
    modules: tuple[str, ...]
    """Module names; a package stands for all its modules, except the root package
    ``riverbed``, which stands for its ``__init__`` only."""
    uses: tuple[str, ...]
    """The layers (besides its own) whose modules it may import."""


# Bottom to top. Within a layer, modules import each other freely (cycles aside).
LAYERS = (
    Layer("records", ("riverbed._errors", "riverbed._records", "riverbed._version"), ()),
    Layer("model", ("riverbed._model",), ("records",)),
    Layer("store protocol", ("riverbed._store.protocol",), ("records",)),
    Layer("stores", ("riverbed._store",), ("records", "store protocol")),
    Layer("runtime", ("riverbed._runtime",), ("records", "model", "store protocol")),
    Layer(
        "runners",
        ("riverbed._runtime.local", "riverbed._runtime.ray"),
        ("records", "model", "store protocol", "runtime"),
    ),
    Layer(
        "facade",
        ("riverbed", "riverbed._run", "riverbed._schedule", "riverbed._liveness"),
        ("records", "model", "store protocol", "stores", "runtime", "runners"),
    ),
    Layer(
        "interfaces",
        (
            "riverbed.__main__",
            "riverbed.cli",
            "riverbed._cli",
            "riverbed._targets",
            "riverbed._serve",
            "riverbed.connectors",
            "riverbed.testing",
        ),
        ("records", "model", "store protocol", "stores", "runtime", "runners", "facade"),
    ),
    # The seed systems' dialects: thin over the public API only (tests/compat checks that
    # they import no private module, whatever its layer).
    Layer("dialects", ("riverbed.compat",), ("facade", "interfaces")),
)

# (importing module, imported module, kind): why this import goes up.
ALLOWED: dict[tuple[str, str, Kind], str] = {
    ("riverbed._model.flow", "riverbed._run", Kind.FUNCTION): (
        "Flow.run and Flow.arun hand the flow to the facade, which resolves the store URL, "
        "the runner and the defaults: the one way the model reaches up, when called"
    ),
    ("riverbed._model.flow", "riverbed._runtime.config", Kind.TYPE): (
        "Flow.run's keywords are typed by RunOptions, declared once with the run configuration"
    ),
    ("riverbed._model.flow", "riverbed._runtime.result", Kind.TYPE): (
        "Flow.run is annotated as returning the RunResult that the runtime makes"
    ),
    ("riverbed._errors", "riverbed._runtime.result", Kind.TYPE): (
        "RunFailedError carries the failed run's RunResult (error.result)"
    ),
    ("riverbed._run", "riverbed._targets", Kind.FUNCTION): (
        "a worker loads each claimed run's flow by its stored TARGET, checked as the CLI "
        "checks it; the facade hands the worker that loader. _targets reads the public API, "
        "so the import waits for the first run (at module level it would close the cycle "
        "riverbed -> _run -> _targets -> riverbed)"
    ),
    ("riverbed._schedule", "riverbed._targets", Kind.FUNCTION): (
        "rb.schedule loads a target now, as the CLI and a worker load it, so that one that "
        "does not load fails at once rather than in a worker (imported when called, for the "
        "same cycle as _run's)"
    ),
}

# Libraries riverbed imports only inside functions: importing riverbed never imports Ray,
# an optional extra (docs/architecture.md).
LAZY_ONLY = ("ray",)

# Names of documents outside the repository: source files point to docs/ instead.
OUTSIDE_DOCUMENTS = re.compile(r"DESIGN\.md|\.\./shared|/work/")


# -- the checker ---------------------------------------------------------------------------


def module_names(src: Path) -> dict[str, Path]:
    """Every module under ``src`` by its dotted name (a package by its own name)."""
    names = {}
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _walk(node: ast.AST, kind: Kind) -> Iterator[tuple[ast.Import | ast.ImportFrom, Kind]]:
    """The import statements of ``node`` and under it, each with the kind of place it is
    written in (``kind``: that of ``node``'s place)."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, kind
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for statement in node.body:
            yield from _walk(statement, Kind.TYPE)
        for statement in node.orelse:
            yield from _walk(statement, kind)
        return
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and kind is Kind.MODULE:
        kind = Kind.FUNCTION
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, kind)


def _base(module: str, is_package: bool, level: int) -> str:
    """The package that a relative import of ``level`` dots in ``module`` starts from."""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return package


def imports_of(module: str, path: Path, known: Iterable[str]) -> list[Import]:
    """Every module ``module`` (the file ``path``) imports, relative forms resolved."""
    known = set(known)
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node, kind in _walk(tree, Kind.MODULE):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            start = node.module or ""
            if node.level:
                base = _base(module, path.name == "__init__.py", node.level)
                start = f"{base}.{start}" if start else base
            # ``from package import name``: the module ``package.name`` if there is one.
            targets = [
                f"{start}.{alias.name}" if f"{start}.{alias.name}" in known else start
                for alias in node.names
            ]
        found.extend(Import(module, target, kind, node.lineno) for target in targets)
    return found


def scan(src: Path) -> list[Import]:
    """Every import of every module under ``src``."""
    modules = module_names(src)
    return [found for name, path in modules.items() for found in imports_of(name, path, modules)]


def _ours(module: str) -> bool:
    return module == ROOT or module.startswith(ROOT + ".")


def _covers(entry: str, module: str) -> bool:
    if module == entry:
        return True
    return entry != ROOT and module.startswith(entry + ".")


def layer_of(module: str, layers: tuple[Layer, ...] = LAYERS) -> Layer | None:
    """The layer of ``module``: the row naming it or its closest package."""
    best: tuple[int, Layer] | None = None
    for layer in layers:
        for entry in layer.modules:
            if _covers(entry, module) and (best is None or len(entry) > best[0]):
                best = (len(entry), layer)
    return best[1] if best else None


def upward(imports: Iterable[Import], layers: tuple[Layer, ...] = LAYERS) -> list[Import]:
    """The imports of a module of ``ROOT`` that do not go to its own layer or one it
    uses."""
    found = []
    for imported in imports:
        if not _ours(imported.target):
            continue
        source, target = layer_of(imported.source, layers), layer_of(imported.target, layers)
        if source is None or target is None:
            continue  # reported by test_every_module_has_a_layer
        if target is not source and target.name not in source.uses:
            found.append(imported)
    return found


def unit_of(module: str) -> str:
    """The top-level subpackage (or module) of ``module``: ``riverbed._model`` for
    ``riverbed._model.ops.buckets``; the root package for its ``__init__``."""
    return ".".join(module.split(".")[:2])


def cycles(imports: Iterable[Import]) -> list[list[str]]:
    """The cycles between top-level subpackages, over the imports that run: each a
    strongly connected group of two or more, sorted."""
    edges: dict[str, set[str]] = {}
    for imported in imports:
        if imported.kind is Kind.TYPE or not _ours(imported.target):
            continue
        source, target = unit_of(imported.source), unit_of(imported.target)
        if source != target:
            edges.setdefault(source, set()).add(target)
            edges.setdefault(target, set())
    return sorted(sorted(group) for group in _strongly_connected(edges) if len(group) > 1)


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected groups of ``edges`` (Tarjan's algorithm; recursive, as the
    graph has a dozen nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def _layer_name(module: str) -> str:
    layer = layer_of(module)
    return "none" if layer is None else repr(layer.name)


def _allowed(imported: Import) -> bool:
    return (imported.source, imported.target, imported.kind) in ALLOWED


# -- the contract on riverbed --------------------------------------------------------------

MODULES = module_names(SRC)
IMPORTS = scan(SRC)


def test_every_module_has_a_layer() -> None:
    """Each module of riverbed sits in a row of the table: a new package or top-level
    module needs its place decided (docs/architecture.md), not a default."""
    assert [name for name in MODULES if layer_of(name) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module: str) -> None:
    """The module imports only modules of its own layer or of the layers it uses, at any
    level (module, function, TYPE_CHECKING), except the allow-listed imports."""
    found = [
        f"line {i.line}: {i.target} ({i.kind.value} level, layer {_layer_name(i.target)})"
        for i in upward(IMPORTS)
        if i.source == module and not _allowed(i)
    ]
    assert found == [], f"{module} (layer {_layer_name(module)}) imports upward"


def test_allowed_upward_imports_are_all_still_there() -> None:
    """Each allow-list entry is an upward import that exists: one that was removed takes
    its entry with it, so the list only shrinks."""
    present = {(i.source, i.target, i.kind) for i in upward(IMPORTS)}
    assert sorted(set(ALLOWED) - present, key=str) == []


def test_no_import_cycles_between_subpackages() -> None:
    """No two top-level subpackages import each other, directly or around a loop, by
    imports that run; the allow-listed ways back up aside."""
    assert cycles(i for i in IMPORTS if not _allowed(i)) == []


def test_importing_riverbed_never_imports_ray() -> None:
    """Ray is an optional extra: no module imports it at module level."""
    found = [
        f"{i.source}:{i.line}"
        for i in IMPORTS
        if i.kind is Kind.MODULE and i.target.split(".")[0] in LAZY_ONLY
    ]
    assert found == []


def test_no_source_file_points_outside_the_repository() -> None:
    """Docstrings and comments name documents of the repository (docs/architecture.md),
    not a design document that readers of the package do not have."""
    found = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if OUTSIDE_DOCUMENTS.search(path.read_text())
    }
    assert found == set()


def _documented_layers(text: str) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """The rows of the layer table in ``text``: (name, modules, layers it may import)."""
    rows: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    for name, modules, uses in re.findall(
        r"^\| ([a-z ]+) \| (`riverbed.*) \| (.*) \|$", text, re.M
    ):
        if uses == "every layer below":
            used = tuple(row[0] for row in rows)
        elif uses.startswith("("):  # (nothing else of riverbed)
            used = ()
        else:
            used = tuple(part.strip() for part in uses.split(","))
        rows.append((name, tuple(re.findall(r"`(riverbed[\w.]*)`", modules)), used))
    return rows


def test_the_documented_table_is_the_tested_one() -> None:
    """docs/architecture.md shows this table: the same layers, modules and uses."""
    text = (SRC.parent / "docs" / "architecture.md").read_text()
    assert _documented_layers(text) == [(layer.name, layer.modules, layer.uses) for layer in LAYERS]


# -- the checker on made-up modules --------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Module-level, class-level, function-level and TYPE_CHECKING imports are all found,
    each with its kind, relative forms resolved to the module they name."""
    src = _tree(
        tmp_path,
        {
            "riverbed/__init__.py": "",
            "riverbed/_errors.py": "",
            "riverbed/_runtime/__init__.py": "",
            "riverbed/_runtime/result.py": "",
            "riverbed/_model/__init__.py": "",
            "riverbed/_model/flow.py": (
                "from typing import TYPE_CHECKING\n"
                "import ray\n"
                "from .. import _errors\n"
                "if TYPE_CHECKING:\n"
                "    from riverbed._runtime import result\n"
                "class Flow:\n"
                "    import riverbed._runtime\n"
                "    def run(self):\n"
                "        from .._runtime.result import RunResult\n"
            ),
        },
    )
    found = {(i.target, i.kind) for i in scan(src) if i.source == "riverbed._model.flow"}
    assert found == {
        ("typing", Kind.MODULE),
        ("ray", Kind.MODULE),
        ("riverbed._errors", Kind.MODULE),
        ("riverbed._runtime.result", Kind.TYPE),
        ("riverbed._runtime", Kind.MODULE),
        ("riverbed._runtime.result", Kind.FUNCTION),
    }


def test_an_upward_import_fails_the_contract(tmp_path: Path) -> None:
    """A model module importing the runtime, even inside a function, or a runtime module
    importing a concrete store, is upward; the model importing the records, or the
    runtime the store protocol, is not."""
    src = _tree(
        tmp_path,
        {
            "riverbed/__init__.py": "",
            "riverbed/_records.py": "",
            "riverbed/_model/__init__.py": "",
            "riverbed/_model/ops.py": (
                "from riverbed import _records\n"
                "def run():\n    from riverbed._runtime import worker\n"
            ),
            "riverbed/_runtime/__init__.py": "",
            "riverbed/_runtime/worker.py": (
                "from riverbed._store import protocol\nfrom riverbed._store.sqlite import open\n"
            ),
            "riverbed/_store/__init__.py": "",
            "riverbed/_store/protocol.py": "",
            "riverbed/_store/sqlite.py": "",
        },
    )
    found = {(i.source, i.target, i.kind) for i in upward(scan(src))}
    assert found == {
        ("riverbed._model.ops", "riverbed._runtime.worker", Kind.FUNCTION),
        ("riverbed._runtime.worker", "riverbed._store.sqlite", Kind.MODULE),
    }


def test_a_cycle_between_subpackages_is_found(tmp_path: Path) -> None:
    """Two subpackages importing each other (one of them inside a function) make a
    cycle; a TYPE_CHECKING import back does not."""
    src = _tree(
        tmp_path,
        {
            "riverbed/__init__.py": "",
            "riverbed/_a/__init__.py": "from riverbed._b import x\n",
            "riverbed/_b/__init__.py": "",
            "riverbed/_b/x.py": "def f():\n    import riverbed._a\n",
            "riverbed/_c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import riverbed._a\n"
            ),
            "riverbed/_d.py": "import riverbed._c\n",
        },
    )
    assert cycles(scan(src)) == [["riverbed._a", "riverbed._b"]]


def test_every_layer_uses_only_layers_below_it() -> None:
    """The table itself goes one way: a layer uses only layers listed before it."""
    seen: set[str] = set()
    for layer in LAYERS:
        assert set(layer.uses) <= seen, layer.name
        seen.add(layer.name)
