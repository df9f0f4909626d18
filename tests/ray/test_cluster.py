"""The Ray runner on a cluster of two nodes: per-stage resources, and one node removed
mid-run (a script of its own: a process joins one Ray cluster only, and this suite's
shares one instance)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import require_ray

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_node_removed_mid_run_and_the_run_goes_on_on_the_other() -> None:
    require_ray()
    done = subprocess.run(
        [sys.executable, "-m", "tests.ray.two_nodes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["boxed_on_second_only"]  # a stage needing "gpu-box" ran where it is
    assert report["nodes_used"] == 2  # both nodes ran events before one was removed
    assert report["removed"]
    assert report["rollbacks"], "the lost node's actors were not noticed"
    assert report["ok"], report["summary"]
    assert report["exact"], report["summary"]
