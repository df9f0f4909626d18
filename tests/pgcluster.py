"""A PostgreSQL cluster of the test's own, for tests that stop or restart the database.

The shared server on 5432 is never touched: the cluster is made by ``initdb`` in a
temporary directory, listens on a free port of 127.0.0.1, and runs as a non-root user
(PostgreSQL refuses root; as root, the tests run its commands as ``postgres``). Only the
processes this module started are stopped, by ``pg_ctl`` on their own data directory.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.services import unavailable

__all__ = ["Cluster", "own_cluster"]


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """A running cluster: its URL, and ways to stop, start and restart it."""

    def __init__(self, bin_dir: Path, root: Path, port: int, user: str | None) -> None:
        self.bin_dir = bin_dir
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = port
        self.user = user
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: as a crash would, dropping every connection)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, down: float = 1.0) -> None:
        """Stop the server at once, leave it down ``down`` seconds, start it again."""
        self.stop()
        time.sleep(down)
        self.start()


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    """A fresh cluster for one test, removed afterwards; skips (or fails, when
    RIVERBED_REQUIRE_SERVICES=1) where PostgreSQL's server programs are missing."""
    bin_dir = _bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        unavailable("PostgreSQL's initdb and pg_ctl were not found (install postgresql)")
    assert bin_dir is not None
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        if shutil.which("runuser") is None:
            unavailable("running as root, and runuser is missing to start PostgreSQL as postgres")
    root = Path(tempfile.mkdtemp(prefix="riverbed-pg-"))
    if user is not None:
        shutil.chown(root, user)
    cluster = Cluster(bin_dir, root, _free_port(), user)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
