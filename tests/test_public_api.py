"""The public surface: ``riverbed.__all__``, the module public objects report, and what
``import riverbed`` pulls in."""

from __future__ import annotations

import inspect
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import pytest

import riverbed as rb

SRC = Path(__file__).resolve().parents[1] / "src"

PUBLIC_OBJECTS = [getattr(rb, name) for name in rb.__all__ if name != "__version__"]


def test_all_matches_what_is_exported() -> None:
    """``__all__`` lists every public attribute (modules aside) exactly once."""
    assert len(rb.__all__) == len(set(rb.__all__))
    assert all(hasattr(rb, name) for name in rb.__all__)
    public = {
        name
        for name, value in vars(rb).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(rb.__all__) - {"__version__"}


def test_star_import_gives_all() -> None:
    """``from riverbed import *`` binds exactly the names in ``__all__``."""
    namespace: dict[str, object] = {}
    exec("from riverbed import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(rb.__all__)


def test_version_is_a_string() -> None:
    """``riverbed.__version__`` is a dotted version string."""
    assert isinstance(rb.__version__, str)
    assert rb.__version__.count(".") >= 1


@pytest.mark.parametrize("obj", PUBLIC_OBJECTS, ids=lambda obj: obj.__name__)
def test_public_objects_report_module_riverbed(obj: object) -> None:
    """Every public class and function reports module ``riverbed``."""
    assert obj.__module__ == "riverbed"


@pytest.mark.parametrize("obj", PUBLIC_OBJECTS, ids=lambda obj: obj.__name__)
def test_public_objects_have_docstrings(obj: object) -> None:
    """Every public name is documented."""
    assert inspect.getdoc(obj)


@pytest.mark.parametrize(
    "obj", [o for o in PUBLIC_OBJECTS if isinstance(o, type)], ids=lambda obj: obj.__name__
)
def test_public_classes_pickle_by_their_public_name(obj: type) -> None:
    """A public class pickles as ``riverbed.<Name>`` and loads back as itself."""
    assert pickle.loads(pickle.dumps(obj)) is obj


@pytest.mark.parametrize(
    "value",
    [
        rb.Retry(attempts=2, on=(KeyError,)),
        rb.OnError.DEAD_LETTER,
        rb.StageKind.MAP,
        rb.SinkMode.BATCH,
        rb.Port("stage", "true"),
        rb.Stage(name="s", kind=rb.StageKind.MAP, inputs=(rb.Port("src"),), fn=len),
        rb.RunStatus.SUCCEEDED,
        rb.Request("c1", {"n": 1}),
        rb.Reply("c1", [2]),
    ],
    ids=repr,
)
def test_public_values_pickle(value: object) -> None:
    """Records and enum members survive pickling (they cross process boundaries)."""
    assert pickle.loads(pickle.dumps(value)) == value


def test_errors_share_one_base() -> None:
    """Every public error is a RiverbedError, itself a plain Exception."""
    errors = [o for o in PUBLIC_OBJECTS if isinstance(o, type) and issubclass(o, BaseException)]
    assert rb.RiverbedError in errors
    for error in errors:
        assert issubclass(error, rb.RiverbedError)
    assert issubclass(rb.RiverbedError, Exception)


def test_merge_function() -> None:
    """``rb.merge`` with no streams is a FlowDefinitionError."""
    with pytest.raises(rb.FlowDefinitionError, match="at least one stream"):
        rb.merge()


def _modules_after_import() -> set[str]:
    code = "import sys, riverbed; print('\\n'.join(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_import_riverbed_stays_light() -> None:
    """``import riverbed`` loads no Ray, typer, rich, runners, CLI or testing module."""
    loaded = _modules_after_import()
    assert "riverbed" in loaded
    heavy_modules = ("ray", "typer", "rich", "riverbed.cli", "riverbed.testing")
    serving = ("fastapi", "uvicorn", "prometheus_client", "riverbed._serve")
    for heavy in heavy_modules + serving:
        assert heavy not in loaded, heavy
    runners = sorted(m for m in loaded if m.startswith("riverbed._runtime.local"))
    assert runners == []
