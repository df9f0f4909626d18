"""REFlow's temperature-monitor quickstart runs on riverbed with only its import line
changed: as a script on its two ``tcp://`` engines (the local runner), and deployed to
engines on Ray."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.compat import reflow_temp_monitor as quickstart

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _check_changes(lines: list[str]) -> None:
    """Each EVENT line is a change of its machine's status: never the same twice in a row,
    every machine reported, the status matching the temperature."""
    last: dict[int, str] = {}
    for line in lines:
        match = re.fullmatch(r"EVENT: \((\d), (-?[\d.]+), '(COLD|NOMINAL|HOT)'\)", line)
        assert match, line
        machine, temp, status = int(match[1]), float(match[2]), match[3]
        expected = "COLD" if temp < 97.0 else "HOT" if temp > 99.0 else "NOMINAL"
        assert status == expected
        assert last.get(machine) != status, f"machine {machine} repeated {status}"
        last[machine] = status
    assert sorted(last) == [0, 1, 2, 3, 4]


def test_the_quickstart_runs_as_a_script_on_local_engines(tmp_path: Path) -> None:
    """``python temp_monitor_flow.py`` deploys to its two tcp:// engines and waits: every
    status change of every machine is printed by the sink, and nothing else."""
    done = subprocess.run(
        [sys.executable, str(HERE / "reflow_temp_monitor.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) > 10
    _check_changes(lines)


def test_the_quickstart_flow_runs_on_ray_engines(
    ray_instance: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The quickstart's ``create_flow()`` deployed to two engines of a Ray cluster: the
    same changes reach the sink (run in the driver), each stage's workers as actors."""

    async def deploy_and_wait() -> bool:
        cluster = quickstart.FlowCluster(["ray", "ray"], store=False)
        job_id = await cluster.deploy(quickstart.create_flow())
        return await cluster.wait_for_completion(job_id, 60)

    assert asyncio.run(deploy_and_wait())
    _check_changes(capsys.readouterr().out.splitlines())
