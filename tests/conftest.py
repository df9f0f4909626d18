"""The whole suite records its runs in a store of its own, never in ./.riverbed; tests
that take the ``on_runner`` fixture run once per runner (the local one, and Ray)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services import require_ray

if "RIVERBED_STORE" not in os.environ:
    _STORE_DIR = tempfile.mkdtemp(prefix="riverbed-tests-")
    os.environ["RIVERBED_STORE"] = f"sqlite:///{_STORE_DIR}/runs.db"

RAY_CPUS = 4
"""CPUs of the suite's one Ray instance (more than this machine's cores: actors wait on
I/O and on the driver as much as they compute)."""

RAY_PARALLELISM = 2
"""Actors per stage in the suite's Ray runs: enough to split keys and balance batches."""

RAY_WARM_ACTORS = 8
"""Actors started with the instance, in parallel, for the suite's runs to load their
chains into (starting one per run would cost a second each)."""


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[Any]:
    """One local Ray instance for the whole session (starting one takes seconds)."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
        from riverbed._runtime.ray.pool import POOL

        actors = POOL.take(ray, {}, RAY_WARM_ACTORS)
        ray.get([actor.where.remote() for actor in actors])
        POOL.give_back(ray, {}, actors)
    yield ray
    ray.shutdown()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``on_runner`` runs a test on each runner, but on the local one only for a test
    marked ``local_only`` (whose marker says why)."""
    if "on_runner" not in metafunc.fixturenames:
        return
    runners = ["local"]
    if metafunc.definition.get_closest_marker("local_only") is None:
        runners.append("ray")
    metafunc.parametrize("on_runner", runners, indirect=True)


@pytest.fixture
def on_runner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The runner this test's runs use (by ``RIVERBED_RUNNER``, as a user would choose
    it): ``"local"`` or ``"ray"``."""
    name: str = request.param
    if name == "ray":
        request.getfixturevalue("ray_instance")
        monkeypatch.setenv("RIVERBED_RAY_PARALLELISM", str(RAY_PARALLELISM))
    monkeypatch.setenv("RIVERBED_RUNNER", name)
    return name
