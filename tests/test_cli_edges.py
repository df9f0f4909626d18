"""The rough edges a new user met with ``riverbed`` (issue 10, outcome 9): how to find the
command, ``--version``, JSON on stdout alone, one-line errors for bad input, where a run
failed, what a worker says, run parameters, the checkpoint interval's one name, pruning."""

from __future__ import annotations

import enum
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import riverbed as rb
from riverbed.cli import ExitCode, app
from tests import cli_runs_app

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def riverbed(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m riverbed.cli ARGS`` in a fresh process: what a shell user sees."""
    paths = [str(SRC), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    env.pop("RIVERBED_STORE", None)
    return subprocess.run(
        [sys.executable, "-m", "riverbed.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(stderr: str, code: int, expected_code: int, *needles: str) -> None:
    """Exit ``expected_code``, and stderr is one ``Error:`` line naming ``needles``."""
    assert code == expected_code, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """An empty SQLite store for the test."""
    return f"sqlite:///{tmp_path}/runs.db"


@pytest.fixture(autouse=True)
def restore_import_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loading a TARGET adds to sys.path and imports modules: undo both after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("edge_"):  # the modules these tests write to tmp_path
            del sys.modules[name]


# -- finding the command, its version ---------------------------------------------------


def test_readme_says_how_to_get_riverbed_on_the_path() -> None:
    """After `make demo`, the README says how to call `riverbed` (the venv's bin)."""
    readme = (ROOT / "README.md").read_text()
    assert ". .venv/bin/activate" in readme
    assert ".venv/bin/riverbed" in readme


def test_make_demo_prints_how_to_call_riverbed() -> None:
    """`make demo` ends by saying how to put `riverbed` on the PATH."""
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile.partition("\ndemo:")[2].partition("\n\n")[0]
    assert ". .venv/bin/activate" in demo


def test_version_option_prints_the_version() -> None:
    """`riverbed --version` prints riverbed's version, as `riverbed version` does."""
    for args in (["--version"], ["version"]):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"{rb.__version__}\n"


# -- --json keeps stdout for the JSON -----------------------------------------------------


def test_run_json_stdout_is_json_even_when_the_flow_prints(store_url: str) -> None:
    """`riverbed run app:flow --json | jq` works with a sink that prints: the flow's
    prints go to stderr while it runs, stdout holds the JSON alone."""
    done = riverbed("run", "tests.cli_app:printing", "--json", "--store", store_url)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "succeeded"
    assert "got 18" in done.stderr


def test_workflow_run_json_stdout_is_json(store_url: str) -> None:
    """--input with --json prints the result, the workflow's output as JSON in it."""
    result = invoke(
        "run", "tests.cli_runs_app:workflow", "--input", '{"net": 10}', "--json",
        "--store", store_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["status"], data["output"]) == ("succeeded", {"net": 10, "total": 12.0})


# -- one clear line for what the user got wrong ----------------------------------------------


def test_a_syntax_error_in_the_flow_file_is_one_line(tmp_path: Path, store_url: str) -> None:
    """A flow file that does not parse: one line naming the file, the line and the
    problem, exit 2, no traceback."""
    path = tmp_path / "edge_broken.py"
    path.write_text('import riverbed as rb\nflow = rb.Flow("x"\n')
    done = riverbed("run", f"{path}:flow", "--store", store_url)
    assert_one_line_error(done.stderr, done.returncode, 2, "SyntaxError", "edge_broken.py", "2")
    here = riverbed("run", "edge_broken.py:flow", "--store", store_url, cwd=tmp_path)
    assert here.stderr == "Error: SyntaxError: '(' was never closed (edge_broken.py, line 2)\n"
    graphed = invoke("graph", f"{path}:flow")
    assert_one_line_error(graphed.stderr, graphed.exit_code, 2, "SyntaxError")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "tests.cli_app:flow", "--checkpoint-interval", "0"), "--checkpoint-interval"),
        (("run", "tests.cli_app:flow", "--checkpoint-interval", "-1"), "> 0, got -1"),
        (("runs", "recover", "--checkpoint-interval", "0"), "--checkpoint-interval"),
        (("worker", "--poll", "-1"), "--poll must be a number of seconds > 0"),
        (("worker", "--poll", "0"), "--poll"),
        (("worker", "--idle-exit", "-3"), "--idle-exit"),
        (("runs", "prune", "--older-than", "7x"), "30m, 12h, 7d"),
        (("runs", "prune", "--older-than", "0d"), "--older-than"),
        (("schedule", "tests.cli_runs_app:up_to"), "needs arguments"),
        (("schedule", "tests.cli_runs_app:up_to", "-p", "limit=3", "-p", "stop=2"), "stop=2"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    store_url: str, args: tuple[str, ...], needle: str
) -> None:
    """A value the command cannot use is one `Error:` line saying what to write, exit 2,
    before anything runs."""
    result = invoke(*args, "--store", store_url)
    assert_one_line_error(result.stderr, result.exit_code, ExitCode.USAGE, needle)


def test_bad_values_are_one_line_in_a_real_process(store_url: str) -> None:
    """The same in a real process: no traceback, whatever the terminal."""
    for args in (
        ("run", "tests.cli_app:flow", "--checkpoint-interval", "0"),
        ("worker", "--poll", "-1"),
    ):
        done = riverbed(*args, "--store", store_url)
        assert_one_line_error(done.stderr, done.returncode, 2, "must be a number of seconds")


# -- where a failed run failed ----------------------------------------------------------------


def test_a_failed_run_says_where_it_failed_and_where_the_traceback_is(store_url: str) -> None:
    """A FAILED run's summary names the file and line of the user's function that raised,
    and how to see the full traceback; `runs show` shows it."""
    result = invoke("run", "tests.cli_app:failing", "--store", store_url)
    assert result.exit_code == 1
    run_id = result.stdout.splitlines()[0].removeprefix("run ")
    line = _line_of("raise ValueError", ROOT / "tests" / "cli_app.py")
    assert f"at tests/cli_app.py:{line} in explode_on_three" in result.stdout
    assert f"riverbed runs show {run_id}" in result.stdout
    shown = invoke("runs", "show", run_id, "--store", store_url)
    assert "Traceback (most recent call last)" in shown.stdout
    assert 'raise ValueError("three is not allowed")' in shown.stdout


def test_a_failed_workflow_says_where_it_failed(store_url: str) -> None:
    """The same for a workflow run with --input (on stderr, its stdout being the output)."""
    cli_runs_app.BROKEN = True
    try:
        result = invoke(
            "run", "tests.cli_runs_app:fragile_workflow", "--input", '{"net": 1}',
            "--store", store_url,
        )  # fmt: skip
    finally:
        cli_runs_app.BROKEN = False
    assert result.exit_code == 1
    line = _line_of("the tax office is closed", ROOT / "tests" / "cli_runs_app.py")
    assert f"at tests/cli_runs_app.py:{line} in check_total" in result.stderr
    assert "riverbed runs show" in result.stderr


def _line_of(text: str, path: Path) -> int:
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


# -- what a worker says -----------------------------------------------------------------------

_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_worker_logs_a_line_per_run_taken_and_finished(store_url: str) -> None:
    """`riverbed worker` logs, on stderr, when it takes a run and when it finishes it: the
    time, the run id, the flow, how it ended, how long it took."""
    run_id = invoke("schedule", "tests.cli_runs_app:counting", "--store", store_url).stdout.strip()
    worked = invoke("worker", "--once", "--store", store_url)
    assert worked.exit_code == 0, worked.output
    lines = worked.stderr.strip().splitlines()
    assert len(lines) == 2, worked.stderr
    assert re.match(rf"{_TIME} worker .*: took run {run_id} of flow 'counting'", lines[0])
    finished = rf"{_TIME} worker .*: run {run_id} of flow 'counting' succeeded \(\d+\.\d\ds\)"
    assert re.match(finished, lines[1]), lines[1]
    assert "numbers" not in worked.stderr  # the stage table is for -v


def test_worker_verbose_logs_each_runs_stages(store_url: str) -> None:
    """`riverbed worker -v` logs each run's stage counters too."""
    invoke("schedule", "tests.cli_runs_app:counting", "--store", store_url)
    worked = invoke("worker", "--once", "-v", "--store", store_url)
    assert worked.exit_code == 0, worked.output
    assert re.search(r"numbers\s+succeeded\s+0\s+10", worked.stderr), worked.stderr


# -- run parameters reach the flow ------------------------------------------------------------


def test_scheduled_parameters_reach_the_flow(store_url: str) -> None:
    """`schedule TARGET -p limit=4 -p step=2`, TARGET a function: the worker builds the
    flow by calling it with limit=4, step=2 (JSON values), and runs it."""
    cli_runs_app.TAKEN.clear()
    scheduled = invoke(
        "schedule", "tests.cli_runs_app:up_to", "-p", "limit=7", "-p", "step=2",
        "--store", store_url,
    )  # fmt: skip
    assert scheduled.exit_code == 0, scheduled.output
    run_id = scheduled.stdout.strip()
    worked = invoke("worker", "--once", "--store", store_url)
    assert worked.exit_code == 0, worked.output
    assert cli_runs_app.TAKEN == [0, 2, 4, 6]
    with rb.open_store(store_url) as store:
        record = store.get_run(run_id)
    assert (record.status, record.params) == (rb.RunStatus.SUCCEEDED, {"limit": 7, "step": 2})


def test_run_passes_parameters_to_a_function_target(store_url: str) -> None:
    """`riverbed run TARGET -p limit=3` calls the function with them, and records them:
    a re-run builds the flow with the same parameters."""
    cli_runs_app.TAKEN.clear()
    result = invoke("run", "tests.cli_runs_app:up_to", "-p", "limit=3", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert cli_runs_app.TAKEN == [0, 1, 2]
    run_id = result.stdout.splitlines()[0].removeprefix("run ")
    cli_runs_app.TAKEN.clear()
    again = invoke("runs", "rerun", run_id, "--from-start", "--store", store_url)
    assert again.exit_code == 0, again.output
    assert cli_runs_app.TAKEN == [0, 1, 2]


def test_parameters_given_to_a_flow_are_recorded_with_a_warning(store_url: str) -> None:
    """A TARGET that is a Flow takes no parameters: they are recorded with the run, and a
    warning says how to use them."""
    scheduled = invoke(
        "schedule", "tests.cli_runs_app:counting", "-p", "day=3", "--store", store_url
    )
    assert scheduled.exit_code == 0
    assert "takes no parameters" in scheduled.stderr
    assert "function that takes them as keyword arguments" in scheduled.stderr


# -- one name for the checkpoint interval ----------------------------------------------------


def test_checkpoint_interval_is_the_name_of_the_api(store_url: str) -> None:
    """The CLI's option has the name of Flow.run's (`checkpoint_interval`); the old
    `--checkpoint-every` still works, with a warning, and is not in --help."""
    result = invoke(
        "run", "tests.cli_app:flow", "--checkpoint-interval", "0.5", "--store", store_url
    )
    assert result.exit_code == 0, result.output
    old = invoke("run", "tests.cli_app:flow", "--checkpoint-every", "0.5", "--store", store_url)
    assert old.exit_code == 0, old.output
    assert "--checkpoint-every is now --checkpoint-interval" in old.stderr
    both = invoke(
        "run", "tests.cli_app:flow", "--checkpoint-every", "1", "--checkpoint-interval", "1",
    )  # fmt: skip
    assert both.exit_code == 2
    for command in (["run"], ["worker"], ["runs", "resume"], ["runs", "recover"]):
        shown = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).stdout
        assert "--checkpoint-interval" in shown
        assert "--checkpoint-every" not in shown


# -- pruning the store -----------------------------------------------------------------------


def test_runs_prune_removes_runs_that_ended_long_enough_ago(store_url: str) -> None:
    """`runs prune --older-than 1s` removes the runs that ended over a second ago and keeps
    the others (a queued one, one that ended just now)."""
    old = invoke("run", "tests.cli_app:flow", "--store", store_url).stdout.split()[1]
    queued = invoke("schedule", "tests.cli_app:flow", "--store", store_url).stdout.strip()
    time.sleep(1.2)
    new = invoke("run", "tests.cli_app:flow", "--store", store_url).stdout.split()[1]
    pruned = invoke("runs", "prune", "--older-than", "1s", "--store", store_url, "--json")
    assert pruned.exit_code == 0, pruned.output
    assert json.loads(pruned.stdout)["pruned"] == 1
    listed = json.loads(invoke("runs", "list", "--store", store_url, "--json").stdout)
    assert {row["run_id"] for row in listed} == {queued, new}
    assert old not in {row["run_id"] for row in listed}
    text = invoke("runs", "prune", "--older-than", "7d", "--store", store_url)
    assert text.stdout.startswith("pruned 0 run(s) that ended before ")


# -- one enum of exit codes --------------------------------------------------------------------


def test_every_exit_code_is_in_the_one_enum() -> None:
    """0, 1, 2, 4 and 130 are members of ExitCode, the only exit-code enum of the CLI."""
    assert sorted(code.value for code in ExitCode) == [0, 1, 2, 4, 130]
    import riverbed._cli as package

    enums = set()
    for module in pkgutil.iter_modules(package.__path__, "riverbed._cli."):
        found = vars(importlib.import_module(module.name)).values()
        enums |= {c for c in found if isinstance(c, type) and issubclass(c, enum.IntEnum)}
    assert enums == {ExitCode}


# -- help and usage errors read as plain text ------------------------------------------------


def test_help_is_plain_text_wrapped_to_the_terminal() -> None:
    """`--help` at 80 columns rewraps the command's paragraphs (no sentence cut into a
    line of its own, no boxes), and lists the options one per line."""
    shown = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "80"}).stdout
    assert "╭" not in shown
    assert "--checkpoint-interval <float>" in shown
    lines = [line.strip() for line in shown.splitlines()]
    assert "runs" not in lines  # the docstring's own line breaks are not kept


def test_a_usage_error_is_plain_text() -> None:
    """A missing argument is said in plain lines ending with `Error: ...`, exit 2."""
    result = runner.invoke(app, ["run"], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    assert "╭" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Error: Missing argument 'TARGET'."
