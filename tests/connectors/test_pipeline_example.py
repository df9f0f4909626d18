"""The end-to-end example, ``examples/clickstream_pipeline.py``: clicks through a Redis
stream into page views per window in a PostgreSQL table, with one command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.durability.processes import child_env
from tests.services import POSTGRES_URL, REDIS_URL, require_postgres, require_redis

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, f"examples/{name}.py", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_pipeline_counts_the_views_the_in_memory_example_counts() -> None:
    """One command runs the pipeline over the real Redis and PostgreSQL; the table holds
    the same views per page as the in-memory clickstream example on the same clicks."""
    require_redis()
    require_postgres()
    args = ("--clicks", "3000", "--seed", "3")
    piped = _script("clickstream_pipeline", *args, "--redis", REDIS_URL, "--postgres", POSTGRES_URL)
    in_memory = _script("clickstream", *args)
    views = next(line for line in piped if line.startswith("views per page: "))
    assert views == in_memory[1]
    assert any("SUCCEEDED" in line for line in piped)
