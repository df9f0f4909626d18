"""REFlow's ``FlowCluster``: deploys a graph on engines (local processes or a Ray cluster)
and waits for it."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from typing import Any

import riverbed as rb
from riverbed.compat.reflow.graph import _worker_counts, to_flow
from riverbed.compat.reflow.stages import EventSource

# -- the cluster -----------------------------------------------------------------------------


class FlowCluster:
    """The engines that flows are deployed to, as a riverbed runner.

    ``engine_addresses``: REFlow's engine addresses (``tcp://host:port``, ``ipc://...``,
    or ``local``) run on riverbed's local runner, in this process: each address is one
    engine, so a stage has up to that many workers (lanes, each with its own state). A Ray
    address (``ray`` for a local Ray instance or the one this process joined, ``auto``, or
    ``ray://host:port``) runs on ``rb.RayRunner``: each listed address is one engine of
    that cluster, and each stage runs its workers as Ray actors. ``store`` is where runs
    are recorded (riverbed's default store when not given; ``False`` for none). Other
    keywords are ``Flow.run``'s options for every job (``batch_size``,
    ``checkpoint_events``...).
    """

    def __init__(
        self, engine_addresses: Sequence[str], *, store: Any = None, **run_options: Any
    ) -> None:
        addresses = [engine_addresses] if isinstance(engine_addresses, str) else engine_addresses
        if not addresses or not all(isinstance(a, str) for a in addresses):
            raise ValueError(
                f"engine_addresses must be a non-empty list of str, got {engine_addresses!r}"
            )
        self.engine_addresses = list(addresses)
        self.store = store
        self.run_options = run_options
        self.ray_address = _ray_address(self.engine_addresses)
        self.deployed_jobs: dict[str, asyncio.Task[rb.RunResult]] = {}

    def runner(self, source: EventSource) -> rb.RayRunner | None:
        """The runner of ``source``'s flow: None for the local runner, or a RayRunner."""
        if self.ray_address is None:
            return None
        engines = len(self.engine_addresses)
        resources = {
            name: rb.StageResources(parallelism=count)
            for name, count in _worker_counts(source, engines).items()
        }
        address = None if self.ray_address == "ray" else self.ray_address
        return rb.RayRunner(address=address, parallelism=engines, stages=resources)

    async def deploy(self, source: EventSource, *, resume: str | None = None) -> str:
        """Start the flow that begins at ``source``; returns its job id (the run's id).
        ``resume``: the job id of a failed or cancelled run of the same flow, to go on from
        its last checkpoint."""
        flow = to_flow(source, engines=len(self.engine_addresses))
        options: dict[str, Any] = {"progress": False, **self.run_options}
        options["runner"] = self.runner(source)
        if self.store is not None:
            options["store"] = self.store
        if resume is not None:
            options["resume"] = job_id = resume
        else:
            options["run_id"] = job_id = str(uuid.uuid4())
        self.deployed_jobs[job_id] = asyncio.ensure_future(flow.arun(**options))
        await asyncio.sleep(0)  # let it start
        return job_id

    async def wait_for_completion(self, job_id: str, timeout_secs: float) -> bool:
        """True once the job has finished (a failed job raises its ``rb.RunFailedError``),
        False if it is still running after ``timeout_secs``."""
        job = self.deployed_jobs.get(job_id)
        if job is None:
            raise RuntimeError(f"No deployed job with id={job_id} exists")
        done, _ = await asyncio.wait([job], timeout=timeout_secs)
        if not done:
            return False
        job.result()
        return True

    def result(self, job_id: str) -> rb.RunResult:
        """The ``rb.RunResult`` of a finished job."""
        return self.deployed_jobs[job_id].result()

    async def request_shutdown(self) -> None:
        """Stop the jobs still running (each run is recorded CANCELLED, and resumable)."""
        running = [job for job in self.deployed_jobs.values() if not job.done()]
        for job in running:
            job.cancel()
        if running:
            await asyncio.wait(running)


def _ray_address(addresses: Sequence[str]) -> str | None:
    """The Ray cluster the addresses name, or None when they are local engines."""
    ray = {a for a in addresses if a in ("ray", "auto") or a.startswith("ray://")}
    if not ray:
        for address in addresses:
            if address != "local" and not re.match(r"^(tcp|ipc|inproc)://", address):
                raise ValueError(
                    f"engine address {address!r} is neither a local engine ('local', "
                    "'tcp://host:port', 'ipc://...') nor a Ray cluster ('ray', 'auto', "
                    "'ray://host:port')"
                )
        return None
    if len(ray) > 1 or len(ray) < len(set(addresses)):
        raise ValueError(
            f"engine addresses {list(addresses)} mix clusters: list one Ray address (as many "
            "times as it has engines) or local engines only"
        )
    return ray.pop()
