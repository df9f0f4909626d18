"""Choosing a store: the URL argument, else $RIVERBED_STORE, else ./.riverbed; schemes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import riverbed as rb
from riverbed._store.url import DEFAULT_URL, redact, resolve_url
from tests.services import require_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, with RIVERBED_STORE unset."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RIVERBED_STORE", raising=False)
    return tmp_path


def test_default_is_a_sqlite_file_in_dot_riverbed(in_tmp: Path) -> None:
    """With no argument and no variable, the store is ./.riverbed/riverbed.db (created)."""
    assert resolve_url() == DEFAULT_URL
    with rb.open_store() as store:
        assert store.url == "sqlite:///.riverbed/riverbed.db"
    assert (in_tmp / ".riverbed" / "riverbed.db").is_file()


def test_environment_variable_beats_the_default(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RIVERBED_STORE is used when no URL is given."""
    monkeypatch.setenv("RIVERBED_STORE", "sqlite:///from-env/x.db")
    with rb.open_store() as store:
        assert store.url == "sqlite:///from-env/x.db"
    assert (in_tmp / "from-env" / "x.db").is_file()
    assert not (in_tmp / ".riverbed").exists()


def test_argument_beats_the_environment(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL given as argument wins over RIVERBED_STORE."""
    monkeypatch.setenv("RIVERBED_STORE", "sqlite:///from-env.db")
    with rb.open_store("sqlite:///from-arg.db"):
        pass
    assert (in_tmp / "from-arg.db").is_file()
    assert not (in_tmp / "from-env.db").exists()


def test_empty_environment_variable_means_unset(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RIVERBED_STORE set to the empty string falls back to the default."""
    monkeypatch.setenv("RIVERBED_STORE", "")
    assert resolve_url() == DEFAULT_URL


def test_four_slashes_make_an_absolute_path(
    in_tmp: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """sqlite:////abs/path.db opens /abs/path.db, creating its directory."""
    target = tmp_path_factory.mktemp("abs") / "deep" / "runs.db"
    with rb.open_store(f"sqlite:///{target}") as store:
        assert isinstance(store, rb.Store)
    assert target.is_file()


def test_unknown_scheme_lists_the_known_ones(in_tmp: Path) -> None:
    """An unknown scheme is a StoreError listing the known ones, password hidden."""
    with pytest.raises(rb.StoreError) as caught:
        rb.open_store("mysql://root:hunter2@db/runs")
    message = str(caught.value)
    assert "scheme 'mysql'" in message
    assert "sqlite:///" in message
    assert "postgresql://" in message
    assert "hunter2" not in message


def test_sqlite_url_without_a_file(in_tmp: Path) -> None:
    """sqlite:/// with no path is a StoreError showing the two forms."""
    with pytest.raises(rb.StoreError, match="names no file"):
        rb.open_store("sqlite:///")


def test_redact_hides_passwords() -> None:
    """Passwords never reach messages; URLs without one are unchanged."""
    assert redact("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("sqlite:///x.db") == "sqlite:///x.db"


def test_postgres_scheme_alias_opens_postgresql() -> None:
    """postgres:// is accepted like postgresql://."""
    url = require_postgres()
    with rb.open_store(url.replace("postgresql://", "postgres://", 1)) as store:
        assert type(store).__name__ == "PostgresStore"


def test_unreachable_postgresql_is_a_store_error() -> None:
    """A server that refuses connections is a StoreError naming the URL, password hidden."""
    with pytest.raises(rb.StoreError) as caught:
        rb.open_store("postgresql://u:hunter2@127.0.0.1:1/db")
    assert "cannot open the PostgreSQL store at postgresql://u:***@127.0.0.1:1/db" in str(
        caught.value
    )
    assert "hunter2" not in str(caught.value)


def test_import_riverbed_loads_no_database_driver() -> None:
    """``import riverbed`` loads neither psycopg nor the PostgreSQL store."""
    code = "import sys, riverbed; print(sorted(m for m in sys.modules if 'psycopg' in m " + (
        "or m.startswith('riverbed._store.postgres')))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


_WITHOUT_PSYCOPG = """
import sys

class Missing:
    # Finds no psycopg, as in an environment where riverbed[postgres] is not installed.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("psycopg", "psycopg_pool", "psycopg_binary", "psycopg_c"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
for module in [m for m in sys.modules if m.startswith("psycopg")]:
    del sys.modules[module]
import riverbed as rb

with rb.open_store(sys.argv[2]) as store:
    print("sqlite:", store.list_runs())
try:
    rb.open_store(sys.argv[1])
except rb.StoreError as error:
    print(type(error).__name__ + ":", error)
"""


def test_postgresql_without_the_extra_names_the_extra(tmp_path: Path) -> None:
    """Without psycopg installed, a PostgreSQL URL is a StoreError that says to install
    riverbed[postgres] (password hidden), and SQLite stores work as ever."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    url = "postgresql://app:hunter2@127.0.0.1:1/runs"
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PSYCOPG, url, f"sqlite:///{tmp_path}/runs.db"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "sqlite: []"
    assert lines[1].startswith("StoreError: ")
    assert "postgresql://app:***@127.0.0.1:1/runs" in lines[1]
    assert "pip install 'riverbed[postgres]'" in lines[1]
    assert "hunter2" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "src" / "riverbed" / "_store").rglob("*.py")),
    ids=lambda path: str(path.relative_to(ROOT / "src" / "riverbed" / "_store")),
)
def test_store_imports_no_runner_and_no_flow_builder(path: Path) -> None:
    """The store imports no runner and no flow builder (DESIGN.md §4)."""
    tree = ast.parse(path.read_text())
    imported = [
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    forbidden = ("riverbed._runtime", "riverbed._model", "riverbed.cli", "riverbed.testing")
    assert [name for name in imported if name.startswith(forbidden)] == []
