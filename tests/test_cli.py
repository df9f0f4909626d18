"""The ``riverbed`` command line (riverbed.cli): run, graph, version, TARGET loading."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import riverbed as rb
from riverbed import TargetError
from riverbed.cli import app, load_flow
from tests import cli_app

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(rb.__file__).resolve().parent.parent

runner = CliRunner()


@pytest.fixture(autouse=True)
def restore_import_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """load_flow adds to sys.path and imports modules: undo both after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("cli_"):  # the modules these tests write to tmp_path
            del sys.modules[name]


def write_module(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


FLOW_MODULE = """
    import riverbed as rb

    def numbers():
        yield from range(3)

    def keep(x):
        pass

    flow = rb.Flow("from-a-file")
    flow.source(numbers).sink(keep)
"""


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def subprocess_env() -> dict[str, str]:
    paths = [str(SRC), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


# -- load_flow ----------------------------------------------------------------------------


def test_load_flow_returns_the_module_attribute() -> None:
    """module:attr gives back the very Flow object the module holds."""
    assert load_flow("tests.cli_app:flow") is cli_app.flow


def test_load_flow_calls_a_zero_argument_factory() -> None:
    """module:function calls the function and returns the Flow it makes."""
    made = load_flow("tests.cli_app:make_flow")
    assert isinstance(made, rb.Flow)
    assert made.name == "cli-made"


def test_load_flow_imports_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module in the current directory imports by name, as uvicorn finds app:app."""
    write_module(tmp_path, "cli_here_mod", FLOW_MODULE)
    monkeypatch.chdir(tmp_path)
    sys.path[:] = [p for p in sys.path if p not in ("", str(tmp_path))]
    assert load_flow("cli_here_mod:flow").name == "from-a-file"


def test_load_flow_imports_a_file_by_path(tmp_path: Path) -> None:
    """path/to/file.py:attr imports the file under its own name, so its functions keep
    importable references (the flow serializes)."""
    path = write_module(tmp_path, "cli_file_mod", FLOW_MODULE)
    flow = load_flow(f"{path}:flow")
    assert flow.name == "from-a-file"
    assert '"ref": "cli_file_mod:numbers"' in flow.to_json()


def test_a_missing_dependency_of_the_module_is_not_a_bad_target(tmp_path: Path) -> None:
    """A module that exists but imports something missing raises that error unchanged,
    rather than being reported as a TARGET that does not exist."""
    path = write_module(tmp_path, "cli_needs_dep", "import cli_not_installed_anywhere\n")
    with pytest.raises(ModuleNotFoundError, match="cli_not_installed_anywhere"):
        load_flow(f"{path}:flow")


def test_bad_targets_raise_target_error() -> None:
    """load_flow raises TargetError, a riverbed.RiverbedError and a ValueError."""
    with pytest.raises(TargetError) as caught:
        load_flow("tests.cli_app")
    assert isinstance(caught.value, rb.RiverbedError)
    assert isinstance(caught.value, ValueError)


# -- bad targets on the command line ------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("tests.cli_app", "names no attribute; write TARGET as module:attr"),
        ("cli_no_such_module:flow", "cannot import module 'cli_no_such_module'"),
        ("tests.cli_nope:flow", "no module named 'tests.cli_nope'"),
        ("tests.cli_app:flw", "has no attribute 'flw'; its flows are tests.cli_app:flow"),
        ("tests.cli_app:number", "42 (type int), not a riverbed.Flow"),
        ("tests.cli_app:needs_arguments", "a callable that needs arguments"),
        ("tests.cli_app:not_a_factory", "returned 42 (type int), not a riverbed.Flow"),
        ("tests.cli_app:flow-x", "is not an attribute name"),
        ("no/such/file.py:flow", "no file 'no/such/file.py'"),
        ("my-app:flow", "'my-app' in TARGET 'my-app:flow' is not a module name"),
    ],
)
def test_bad_target_is_one_line_on_stderr_and_exit_2(target: str, expected: str) -> None:
    """Each kind of bad TARGET gives exit code 2 and one stderr line saying what was wrong
    and what to write instead; stdout stays empty."""
    result = invoke("graph", target)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert expected in lines[0]


def test_a_file_shadowed_by_another_module_is_reported(tmp_path: Path) -> None:
    """A file named like an already imported module (json.py) is an error, not a silent
    load of the other module."""
    path = write_module(tmp_path, "json", FLOW_MODULE)
    result = invoke("graph", f"{path}:flow")
    assert result.exit_code == 2
    assert "is shadowed: 'import json' finds" in result.stderr


def test_a_flow_error_while_the_module_builds_its_flow_exits_2(tmp_path: Path) -> None:
    """A FlowDefinitionError raised at import (building the flow) is printed, exit 2."""
    body = """
        import riverbed as rb
        flow = rb.Flow("bad name!")
    """
    path = write_module(tmp_path, "cli_bad_name", body)
    result = invoke("run", f"{path}:flow")
    assert result.exit_code == 2
    assert "Error: FlowDefinitionError: flow name 'bad name!' is not valid" in result.stderr


# -- graph and version --------------------------------------------------------------------


def test_graph_prints_mermaid_by_default() -> None:
    """`riverbed graph TARGET` prints Flow.to_mermaid()."""
    result = invoke("graph", "tests.cli_app:flow")
    assert result.exit_code == 0
    assert result.stdout == cli_app.flow.to_mermaid()


def test_graph_text_prints_describe() -> None:
    """--format text prints Flow.describe()."""
    result = invoke("graph", "tests.cli_app:flow", "--format", "text")
    assert result.exit_code == 0
    assert result.stdout == cli_app.flow.describe() + "\n"


def test_graph_json_prints_to_json() -> None:
    """--format json prints Flow.to_json(), which builds back into the same flow."""
    result = invoke("graph", "tests.cli_app:make_flow", "-f", "json")
    assert result.exit_code == 0
    rebuilt = rb.Flow.from_json(result.stdout)
    assert rebuilt.version == cli_app.make_flow().version


def test_graph_of_a_file_target() -> None:
    """A path/to/file.py:attr target works for graph too."""
    result = invoke("graph", f"{ROOT / 'tests' / 'cli_app.py'}:flow", "-f", "text")
    assert result.exit_code == 0
    assert "Flow 'cli-doubles' (3 stages)" in result.stdout


def test_graph_of_an_invalid_flow_exits_2() -> None:
    """A flow that does not validate prints its definition error to stderr, exit 2."""
    result = invoke("graph", "tests.cli_app:dangling")
    assert result.exit_code == 2
    assert "Error: DanglingStreamError: the stream of stage 'double'" in result.stderr
    assert result.stdout == ""


def test_graph_json_of_an_unserializable_flow_exits_2() -> None:
    """A lambda that cannot go to JSON gives FlowSerializationError on stderr, exit 2."""
    result = invoke("graph", "tests.cli_app:with_lambda", "--format", "json")
    assert result.exit_code == 2
    assert "Error: FlowSerializationError: stage 'map': cannot serialize" in result.stderr


def test_graph_rejects_an_unknown_format() -> None:
    """An unknown --format is a usage error (exit 2) listing the choices."""
    result = invoke("graph", "tests.cli_app:flow", "--format", "svg")
    assert result.exit_code == 2
    assert "mermaid" in result.stderr


def test_version_prints_the_package_version() -> None:
    """`riverbed version` prints riverbed.__version__."""
    result = invoke("version")
    assert result.exit_code == 0
    assert result.stdout == f"{rb.__version__}\n"


# -- run: how the CLI calls the engine ----------------------------------------------------


def record_runs(monkeypatch: pytest.MonkeyPatch, status: rb.RunStatus) -> dict[str, Any]:
    """Replace Flow.run: it records its options in the returned dict and ends in ``status``."""
    options: dict[str, Any] = {}

    def run(flow: rb.Flow, **given: Any) -> rb.RunResult:
        options.update(given)
        now = datetime.now(UTC)
        record = rb.RunRecord(
            run_id="r1", flow=flow.name, flow_version=flow.version, status=status, created_at=now
        )
        for observer in given.get("observers", ()):
            observer.started(record)
        return rb.RunResult(
            run_id="r1",
            flow=flow.name,
            flow_version=flow.version,
            status=status,
            started_at=now,
            ended_at=now,
            stages={},
        )

    monkeypatch.setattr(rb.Flow, "run", run)
    return options


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), {"progress": None, "raise_on_failure": False}),
        (("--no-progress",), {"progress": False, "raise_on_failure": False}),
        (("--progress", "--json"), {"progress": True, "raise_on_failure": False}),
        (("--json",), {"progress": False, "raise_on_failure": False}),
        (("--batch-size", "7"), {"progress": None, "batch_size": 7, "raise_on_failure": False}),
    ],
)
def test_run_passes_its_options_to_flow_run(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], expected: dict[str, Any]
) -> None:
    """run calls flow.run(raise_on_failure=False, progress=...) with batch_size only when
    given, recording the target in the default store; it prints the run id first, once
    the run is recorded (an observer's ``started``); progress is auto by default and off
    with --json unless --progress is given."""
    options = record_runs(monkeypatch, rb.RunStatus.SUCCEEDED)
    result = invoke("run", "tests.cli_app:flow", *args)
    assert result.exit_code == 0
    observers = options.pop("observers")
    assert options == {**expected, "store": None, "target": "tests.cli_app:flow"}
    if "--json" not in args:
        assert result.stdout.splitlines()[0] == "run r1"  # the run id comes first
    else:
        assert observers == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(rb.RunStatus.SUCCEEDED, 0), (rb.RunStatus.FAILED, 1), (rb.RunStatus.CANCELLED, 130)],
)
def test_run_exit_code_follows_the_status(
    monkeypatch: pytest.MonkeyPatch, status: rb.RunStatus, code: int
) -> None:
    """Exit code 0 on SUCCEEDED, 1 on FAILED, 130 on CANCELLED."""
    record_runs(monkeypatch, status)
    result = invoke("run", "tests.cli_app:flow")
    assert result.exit_code == code
    assert f"of flow 'cli-doubles': {status.name}" in result.stdout


def test_run_rejects_a_batch_size_below_one() -> None:
    """--batch-size 0 is a usage error, exit 2, before anything runs."""
    result = invoke("run", "tests.cli_app:flow", "--batch-size", "0")
    assert result.exit_code == 2


# -- run: on the local engine -------------------------------------------------------------


def test_run_prints_the_summary_and_exits_0() -> None:
    """A succeeding flow prints RunResult.summary() and exits 0."""
    result = invoke("run", "tests.cli_app:flow")
    assert result.exit_code == 0, result.output
    assert "of flow 'cli-doubles': SUCCEEDED" in result.stdout
    for stage in ("numbers", "double", "keep"):
        assert f"  {stage} " in result.stdout


def test_run_of_a_failing_flow_exits_1_with_the_error() -> None:
    """A FAILED run still prints its summary, naming the failing stage, and exits 1."""
    result = invoke("run", "tests.cli_app:failing")
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stdout
    assert "failed at stage 'explode_on_three': ValueError: three is not allowed" in (result.stdout)


def test_run_json_prints_the_result() -> None:
    """--json prints status, ids, version, duration and per-stage counters as JSON."""
    result = invoke("run", "tests.cli_app:flow", "--json", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded"
    assert data["flow"] == "cli-doubles"
    assert data["flow_version"] == cli_app.flow.version
    assert data["run_id"]
    assert data["duration"] >= 0
    assert data["error"] is None
    assert list(data["stages"]) == ["numbers", "double", "keep"]
    assert data["stages"]["double"]["events_in"] == 10
    assert data["stages"]["double"]["events_out"] == 10
    assert data["stages"]["keep"]["events_in"] == 10


def test_run_json_of_a_failing_flow_carries_the_error() -> None:
    """--json of a FAILED run has status "failed" and the error with its stage and message."""
    result = invoke("run", "tests.cli_app:failing", "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "failed"
    assert data["error"]["stage"] == "explode_on_three"
    assert data["error"]["message"] == "three is not allowed"
    assert data["stages"]["explode_on_three"]["errors"] == 1


def test_run_of_an_invalid_flow_exits_2() -> None:
    """A flow that fails validation when run prints the definition error, exit 2."""
    result = invoke("run", "tests.cli_app:dangling")
    assert result.exit_code == 2, result.output
    assert "Error: DanglingStreamError" in result.stderr


# -- the real process ---------------------------------------------------------------------


def test_python_m_riverbed_cli_runs_a_flow() -> None:
    """`python -m riverbed.cli run tests.cli_app:flow` runs in a fresh process, prints the
    summary to stdout, nothing to stderr, and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "riverbed.cli", "run", "tests.cli_app:flow"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "of flow 'cli-doubles': SUCCEEDED" in done.stdout
    assert done.stderr == ""


def test_python_m_riverbed_cli_reports_a_bad_target() -> None:
    """A bad TARGET in a real process: one line on stderr, exit code 2, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "riverbed.cli", "run", "tests.cli_app:nothing"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Error: module 'tests.cli_app' has no attribute 'nothing'")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child needs POSIX")
def test_ctrl_c_cancels_the_run_and_exits_130() -> None:
    """Ctrl-C (SIGINT) on an endless flow drains it, prints a CANCELLED summary, exit 130."""
    with subprocess.Popen(
        [sys.executable, "-m", "riverbed.cli", "run", "tests.cli_app:endless"],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:  # closes the pipes and waits, whatever happens
        try:
            assert child.stderr is not None
            first = child.stderr.readline()
            assert first == "started\n", first + child.stderr.read()
            child.send_signal(signal.SIGINT)
            stdout, _ = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == 130
    assert "of flow 'cli-endless': CANCELLED" in stdout
