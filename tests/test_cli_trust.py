"""``riverbed runs`` and ``dead-letters`` under the faults of real deployments, in real
processes: a store holding planted pickles or targets, a damaged or read-only store, an
unreachable one, a run taken over, two resumes at once, runs killed and then recovered."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed._runtime.restore import crashed_if_dead
from riverbed._store.sqlite import SQLiteStore
from riverbed._store.url import ENV_VAR
from riverbed._targets import check_stored_target

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
NOW = datetime.now(UTC)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    paths = [str(SRC), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    env.pop(ENV_VAR, None)  # every call names its store
    return {**env, **(extra or {})}


def riverbed(
    *args: str,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    wrapper: tuple[str, ...] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m riverbed.cli ARGS`` in a fresh process (run by ``wrapper``, if given);
    its exit code and output."""
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "riverbed.cli", *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m riverbed.cli ARGS`` started, not waited for."""
    return subprocess.Popen(
        [sys.executable, "-m", "riverbed.cli", *args],
        cwd=ROOT,
        env=_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """The command exited ``code`` with one ``Error:`` line naming ``needles``, no
    traceback."""
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0]


def plant(url: str, **fields: Any) -> rb.RunRecord:
    """Store a run record as someone with write access to the store could."""
    values: dict[str, Any] = {
        "run_id": f"planted{os.urandom(5).hex()}",
        "flow": "slow",
        "flow_version": "v0",
        "status": rb.RunStatus.FAILED,
        "target": "tests.cli_runs_app:slow",
        "created_at": NOW,
        "started_at": NOW,
        "ended_at": NOW,
    }
    values.update(fields)
    run = rb.RunRecord(**values)
    with rb.open_store(url) as store:
        store.create_run(run)
    return run


def dead_worker() -> str:
    """The lease holder name of a process of this machine that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "from riverbed._runtime.identity import WORKER; print(WORKER)"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite store private to the test."""
    return f"sqlite:///{tmp_path}/runs.db"


# -- 19: the store is not trusted by those who only look at it --------------------------------


class _Plant:
    """Unpickling this creates the file ``marker``: a visible stand-in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.marker),))


def test_listing_and_showing_never_unpickle(tmp_path: Path, url: str) -> None:
    """Pickles planted in a run's input and output, in its checkpoint's state and in a dead
    letter's event are not unpickled by `runs list`, `runs show` or `dead-letters list`,
    with or without --json: the input is shown by its size (or the repr stored with it)."""
    marker = tmp_path / "unpickled"
    bomb = pickle.dumps(_Plant(marker))
    run = plant(url, input=bomb, output=bomb)
    readable = plant(url, input=pickle.dumps({"net": 10}), input_repr="{'net': 10}")
    with rb.open_store(url) as store:
        state = rb.Checkpoint(run.run_id, 1, "v0", {"numbers": {"0": 3}}, {"crawl": bomb}, NOW)
        store.commit_checkpoint(state)
        letter = rb.DeadLetterRecord(
            None, run.run_id, "slow", "crawl", bomb, "<planted>", "E", "m", "tb", 1, NOW
        )
        store.add_dead_letters([letter])
    for args in (
        ("runs", "list"),
        ("runs", "list", "--json"),
        ("runs", "show", run.run_id),
        ("runs", "show", run.run_id, "--json"),
        ("dead-letters", "list"),
        ("dead-letters", "list", "--json"),
    ):
        done = riverbed(*args, "--store", url)
        assert done.returncode == 0, (args, done.stderr)
        assert not marker.exists(), f"`riverbed {' '.join(args)}` unpickled the planted bytes"
    shown = json.loads(riverbed("runs", "show", run.run_id, "--store", url, "--json").stdout)
    assert shown["input"] == f"<{len(bomb)} bytes, not shown>"
    text = riverbed("runs", "show", readable.run_id, "--store", url).stdout
    assert "input {'net': 10}" in text
    pickle.loads(bomb)  # the plant is real: unpickling it does create the file
    assert marker.exists()


def _evil_module(directory: Path, marker: Path) -> Path:
    """A flow file whose import leaves ``marker``, as code planted on the machine would."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "evil.py"
    path.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        "import riverbed as rb\nflow = rb.Flow('slow')\nflow.source([1]).sink(print)\n"
    )
    return path


def test_stored_target_outside_the_roots_is_never_imported(tmp_path: Path, url: str) -> None:
    """A run whose stored target names a .py file outside the current directory is refused
    by `runs resume`, `runs rerun` and `runs recover` before anything is imported; listing
    its directory in RIVERBED_TARGET_ROOTS allows it; a target typed by the user works as
    ever."""
    marker = tmp_path / "imported"
    evil = _evil_module(tmp_path / "elsewhere", marker)
    run = plant(url, target=f"{evil}:flow", flow="slow")
    for args in (("runs", "resume", run.run_id), ("runs", "rerun", run.run_id)):
        done = riverbed(*args, "--store", url)
        assert_one_line_error(done, 2, "refused", "RIVERBED_TARGET_ROOTS", str(evil))
    crashed = plant(url, target=f"{evil}:flow", status=rb.RunStatus.CRASHED)
    done = riverbed("runs", "recover", "--store", url, "--json")
    assert done.returncode == 1, done.stderr
    (report,) = [row for row in json.loads(done.stdout) if row["run_id"] == crashed.run_id]
    assert report["action"] == "refused"
    assert "RIVERBED_TARGET_ROOTS" in report["message"]
    assert not marker.exists()
    allowed = {"RIVERBED_TARGET_ROOTS": str(evil.parent)}
    done = riverbed("runs", "resume", run.run_id, "--store", url, env=allowed)
    assert done.returncode == 0, done.stderr
    assert marker.exists()
    marker.unlink()
    typed = riverbed("run", f"{evil}:flow", "--store", url, "--no-progress")
    assert typed.returncode == 0, typed.stderr
    assert marker.exists()


def test_worker_refuses_a_stored_target_outside_the_roots(tmp_path: Path, url: str) -> None:
    """A queued run whose target names a file outside the worker's roots is not imported
    by the worker (the run fails, saying why)."""
    marker = tmp_path / "imported"
    evil = _evil_module(tmp_path / "elsewhere", marker)
    run = rb.RunRecord(
        run_id="queuedevil1", flow="slow", flow_version="v0", status=rb.RunStatus.SCHEDULED,
        target=f"{evil}:flow", created_at=NOW,
    )  # fmt: skip
    with rb.open_store(url) as store:
        store.enqueue(run)
    riverbed("worker", "--once", "--store", url)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("/somewhere/else/app.py:flow", "outside"),
        ("../app.py:flow", "outside"),
        ("os:fork", "standard library"),
        ("importlib:import_module", "standard library"),
        ("app;rm:flow", "not a module name"),
        ("app:flow()", "not module:attr"),
        ("app", "not module:attr"),
        ("data/app.txt:flow", "not a .py file"),
    ],
)
def test_stored_targets_that_are_refused(target: str, why: str) -> None:
    """A stored target is module:attr of identifiers outside the standard library, or a
    .py file under the allowed roots; anything else is refused, saying why."""
    with pytest.raises(rb.TargetError, match="refused") as caught:
        check_stored_target(target)
    assert why in str(caught.value)


def test_stored_targets_that_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """module:attr (dotted), a .py file under the current directory, and one under a root
    listed in RIVERBED_TARGET_ROOTS are accepted."""
    monkeypatch.chdir(tmp_path)
    for target in ("app:flow", "pipelines.daily:flows.nightly", "jobs/etl.py:flow"):
        check_stored_target(target)
    monkeypatch.setenv("RIVERBED_TARGET_ROOTS", os.pathsep.join(["/srv/a", "/srv/flows"]))
    check_stored_target("/srv/flows/etl.py:flow")


# -- 20: a damaged, read-only or unreachable store ----------------------------------------------


@pytest.mark.parametrize("damage", ["not-a-database", "truncated"])
def test_damaged_store_is_one_clear_line(tmp_path: Path, url: str, damage: str) -> None:
    """`runs list` on a file that is no database, or on a store cut in half, exits 1 with
    one line naming the file and what to do; no traceback."""
    path = tmp_path / "runs.db"
    if damage == "not-a-database":
        path.write_text("name,flow\nthis is a CSV file, not a store\n" * 50)
        expected = "not a SQLite database"
    else:
        with rb.open_store(url) as store:
            for _ in range(30):
                store.create_run(rb.RunRecord(
                    run_id=os.urandom(8).hex(), flow="f", flow_version="v",
                    status=rb.RunStatus.SUCCEEDED, params={"pad": "x" * 3000}, created_at=NOW,
                ))  # fmt: skip
        os.truncate(path, path.stat().st_size // 2)
        expected = "damaged"
    done = riverbed("runs", "list", "--store", url)
    assert_one_line_error(done, 1, str(path), expected)


def _without_override() -> tuple[str, ...]:
    """How to run a command that file modes stop: as it is, unless this is root, whom
    they do not stop; then through ``setpriv``, without the capabilities that let root
    ignore them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER): still root, but a
    read-only file or directory is then read-only for it too."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and without setpriv root ignores file modes")
    drop = "-dac_override,-dac_read_search,-fowner"
    return (setpriv, "--bounding-set", drop, "--inh-caps", "-all")


def test_read_only_store_is_listed_and_shown(tmp_path: Path) -> None:
    """A store in a read-only directory, in a read-only file, for a process that file
    modes stop (root is run without the capabilities that override them): `runs list`,
    `runs show` and `dead-letters list` work; `runs cancel`, which writes, exits 1 with
    one line naming the file and why. Proves that reading commands never need to write,
    not even SQLite's -wal and -shm files."""
    store_dir = tmp_path / "store"
    url = f"sqlite:///{store_dir}/runs.db"
    ran = riverbed("run", "tests.cli_runs_app:lettered", "--store", url, "--no-progress")
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.splitlines()[0].removeprefix("run ")
    assert not Path(f"{store_dir}/runs.db-wal").exists()  # a clean close folded the log in
    (store_dir / "runs.db").chmod(0o444)
    store_dir.chmod(0o555)
    limited = _without_override()
    try:
        proof = subprocess.run([*limited, "touch", str(store_dir / "x")], check=False)
        assert proof.returncode != 0, "the directory is not read-only for the commands"
        for args in (
            ("runs", "list"),
            ("runs", "list", "--json"),
            ("runs", "show", run_id),
            ("runs", "show", run_id[:8], "--json"),
            ("dead-letters", "list", "--json"),
        ):
            done = riverbed(*args, "--store", url, wrapper=limited)
            assert done.returncode == 0, (args, done.stderr)
            assert run_id in done.stdout
        denied = riverbed("runs", "cancel", run_id, "--store", url, wrapper=limited)
        assert_one_line_error(denied, 1, str(store_dir / "runs.db"), "cannot be written")
    finally:
        store_dir.chmod(0o700)


def test_read_only_store_of_an_older_schema_says_how_to_upgrade(tmp_path: Path) -> None:
    """A store of an older schema in a directory this process may not write cannot be
    upgraded by a reading command: one line saying so and what to do, exit 1 (not the
    claim that reading commands work on it)."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    SQLiteStore(store_dir / "runs.db", schema_version=2).close()
    (store_dir / "runs.db").chmod(0o444)
    store_dir.chmod(0o555)
    limited = _without_override()
    try:
        done = riverbed(
            "runs", "list", "--store", f"sqlite:///{store_dir}/runs.db", wrapper=limited
        )
        assert_one_line_error(done, 1, "schema version 2", "older than this riverbed")
    finally:
        store_dir.chmod(0o700)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_store_exits_1_with_one_line() -> None:
    """A PostgreSQL store that refuses connections is the store being away (1), not a
    wrong command (2): one line naming it, no traceback."""
    port = _closed_port()
    done = riverbed("runs", "list", "--store", f"postgresql://riverbed@127.0.0.1:{port}/x")
    assert_one_line_error(done, 1, f"127.0.0.1:{port}", "cannot open the PostgreSQL store")


def test_a_wrong_store_url_is_still_a_usage_error() -> None:
    """A URL of no known scheme is a wrong command: exit 2."""
    done = riverbed("runs", "list", "--store", "mysql://db/runs")
    assert_one_line_error(done, 2, "unknown store URL")


def _wait_for(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _running_here(url: str, run_id: str, attempt: int) -> rb.RunRecord | None:
    with rb.open_store(url, read_only=True) as store:
        run = store.get_run(run_id)
    ok = run.status is rb.RunStatus.RUNNING and run.attempt == attempt
    return run if ok else None


def test_lease_lost_exits_1_with_its_message(url: str) -> None:
    """`runs resume` of a run that another process takes over midway (its lease expired
    while it was cut off) stops without changing the run, and exits 1 with the
    LeaseLostError's message on one line, no traceback."""
    run = plant(url, status=rb.RunStatus.CANCELLED)
    child = spawn("runs", "resume", run.run_id, "--store", url, "--checkpoint-interval", "0.05")
    try:
        mine = _wait_for("the resume", lambda: _running_here(url, run.run_id, 2))
        with rb.open_store(url) as store:  # what a takeover after an expired lease does
            store.transition(run.run_id, rb.RunStatus.CRASHED)
            store.transition(
                run.run_id,
                rb.RunStatus.RUNNING,
                worker="elsewhere:1:r0",
                attempt=mine.attempt + 1,
                lease_until=datetime.now(UTC) + timedelta(minutes=5),
            )
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    done = subprocess.CompletedProcess(child.args, child.returncode, "", stderr)
    assert_one_line_error(done, 1, "no longer holds it", "elsewhere:1:r0")


@pytest.mark.parametrize("stopped", ["failed", "killed"])
def test_two_resumes_at_once_one_is_refused_clearly(url: str, stopped: str) -> None:
    """Two `runs resume` of one stopped run (failed; or RUNNING in a process that is
    gone), started together, several times: one resumes it, the other exits 1 with the
    refusal on one line (never an InvalidTransitionError or a traceback)."""
    env = {"RIVERBED_TEST_SLOW_SECONDS": "0.005"}
    for _ in range(5):
        if stopped == "failed":
            run = plant(url)
        else:
            later = datetime.now(UTC) + timedelta(minutes=5)
            run = plant(url, status=rb.RunStatus.RUNNING, worker=dead_worker(), lease_until=later)
        children = [spawn("runs", "resume", run.run_id, "--store", url, env=env) for _ in "ab"]
        done = []
        for child in children:
            stdout, stderr = child.communicate(timeout=120)
            done.append(subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr))
        assert sorted(d.returncode for d in done) == [0, 1], [d.stderr for d in done]
        (loser,) = [d for d in done if d.returncode == 1]
        assert_one_line_error(loser, 1, run.run_id)
        assert any(s in loser.stderr for s in ("cannot be resumed", "is running in")), loser.stderr


def test_resume_and_recover_settle_a_dead_run_only_while_its_lease_holds(url: str) -> None:
    """What `runs resume` and `runs recover` do before resuming a run whose process is
    gone: recorded CRASHED only while the lease they read still holds it; one that read it
    before another process took it back is refused, and the other's attempt stays
    RUNNING."""
    later = datetime.now(UTC) + timedelta(minutes=5)
    run = plant(url, status=rb.RunStatus.RUNNING, worker=dead_worker(), lease_until=later)
    with rb.open_store(url) as store:
        stale = store.get_run(run.run_id)
        assert rb.crashed_if_dead(store, stale).status is rb.RunStatus.CRASHED
        assert rb.crashed_if_dead(store, stale).status is rb.RunStatus.CRASHED  # settled already
        store.transition(
            run.run_id, rb.RunStatus.RUNNING, worker="winner:1:r0", attempt=2, lease_until=later
        )
        with pytest.raises(rb.RunNotResumableError, match="winner:1:r0"):
            rb.crashed_if_dead(store, stale)
        assert store.get_run(run.run_id).status is rb.RunStatus.RUNNING


def test_a_resume_that_read_the_run_before_another_took_it_is_refused(url: str) -> None:
    """Of two resumes of a run whose process is gone, the one that read the run before the
    other took it back is refused; it does not record the winner's fresh attempt CRASHED
    (which would make the winner lose its lease midway)."""
    later = datetime.now(UTC) + timedelta(minutes=5)
    run = plant(url, status=rb.RunStatus.RUNNING, worker=dead_worker(), lease_until=later)
    with rb.open_store(url) as store:
        stale = store.get_run(run.run_id)  # the loser reads the run
        crashed_if_dead(store, stale)  # the winner records it CRASHED...
        store.transition(  # ...and takes it back
            run.run_id, rb.RunStatus.RUNNING, worker="winner:1:r0", attempt=2, lease_until=later
        )
        with pytest.raises(rb.RunNotResumableError):
            crashed_if_dead(store, stale)  # the loser goes on with what it read
        assert store.get_run(run.run_id).status is rb.RunStatus.RUNNING


# -- runs recover -----------------------------------------------------------------------------


def _killed_run(url: str, target: str = "tests.cli_runs_app:slow") -> str:
    """Start `riverbed run TARGET`, let it checkpoint, kill -9 it; its run id."""
    child = spawn(
        "run", target, "--store", url, "--no-progress", "--checkpoint-interval", "0.05",
        "--batch-size", "1",
    )  # fmt: skip
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().split()[1]

        def checkpointed() -> bool:
            with rb.open_store(url, read_only=True) as store:
                return store.latest_checkpoint(run_id) is not None

        _wait_for("a checkpoint", checkpointed)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.communicate()
    return run_id


_FROM_PYTHON = """
import sys, riverbed as rb
from tests.cli_runs_app import crawl, keep
def main():
    flow = rb.Flow("slow")  # a local: no target can be recorded for it
    flow.source(list(range(150)), name="numbers").map(crawl).sink(keep, name="keep")
    flow.run(
        store=sys.argv[1], run_id=sys.argv[2], checkpoint_interval=0.05, progress=False,
        batch_size=1,
    )
main()
"""


def _killed_python_run(url: str) -> str:
    run_id = f"frompython{os.urandom(3).hex()}"
    child = subprocess.Popen(
        [sys.executable, "-c", _FROM_PYTHON, url, run_id], cwd=ROOT, env=_env()
    )
    try:

        def started() -> bool:
            with rb.open_store(url, read_only=True) as store:
                return store.latest_checkpoint(run_id) is not None

        _wait_for("the run from Python", started)
    finally:
        child.kill()
        child.wait(timeout=30)
    return run_id


def _statuses(url: str, run_id: str) -> list[str]:
    with rb.open_store(url, read_only=True) as store:
        return [t.status.value for t in store.history(run_id)]


def test_recover_resumes_every_killed_run(url: str) -> None:
    """After kill -9: `runs list` shows the run as running* (its process gone) without
    writing anything; `runs recover` records it CRASHED and resumes it here to SUCCEEDED,
    and lists a run started from Python (no target) with how to resume it; exit 0."""
    killed = _killed_run(url)
    from_python = _killed_python_run(url)
    listed = json.loads(riverbed("runs", "list", "--store", url, "--json").stdout)
    rows = {row["run_id"]: row for row in listed}
    assert (rows[killed]["status"], rows[killed]["process_gone"]) == ("running", True)
    assert "running*" in riverbed("runs", "list", "--store", url).stdout
    assert _statuses(url, killed) == ["running"]
    done = riverbed("runs", "recover", "--store", url, "--json")
    assert done.returncode == 0, done.stderr
    report = {row["run_id"]: row for row in json.loads(done.stdout)}
    assert (report[killed]["action"], report[killed]["status"]) == ("resumed", "succeeded")
    assert report[from_python]["action"] == "python"
    assert f'flow.run(resume="{from_python}")' in report[from_python]["message"]
    assert _statuses(url, killed) == ["running", "crashed", "running", "succeeded"]
    assert _statuses(url, from_python) == ["running", "crashed"]
    again = riverbed("runs", "recover", "--store", url)
    assert again.returncode == 0
    assert "No interrupted runs" not in again.stdout  # the run from Python still waits


def test_recover_queue_hands_killed_runs_to_workers(url: str) -> None:
    """`runs recover --queue` records a killed run CRASHED then SCHEDULED; a worker then
    resumes it to SUCCEEDED."""
    killed = _killed_run(url)
    done = riverbed("runs", "recover", "--queue", "--store", url)
    assert done.returncode == 0, done.stderr
    assert "in the queue" in done.stdout
    assert _statuses(url, killed) == ["running", "crashed", "scheduled"]
    worked = riverbed("worker", "--once", "--store", url)
    assert worked.returncode == 0, worked.stderr
    assert _statuses(url, killed)[-1] == "succeeded"
