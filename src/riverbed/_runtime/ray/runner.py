"""``RayRunner``: runs flows on a Ray cluster (or a local Ray instance), with the results
and guarantees of the local runner.

A stream's chains of fused stages run in Ray actors, several per chain: a chain that keeps
state per key (``stateful``, ``fold``, ``reduce``) has its keys split into a fixed number
of key groups by riverbed's stable hash, each group owned by one actor; a stateless chain
spreads its batches over its actors, the least loaded first; a chain with one state of its
own (windows, joins, processors) runs in one actor; sinks run in the driver, which routes
every batch (see ``driver``). A workflow's steps run as Ray tasks. Importing this module
does not import ``ray``: the first run does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from riverbed._model.stages import KEEPS_STATE, Stage

if TYPE_CHECKING:
    from riverbed._runtime.runner import Step
    from riverbed._runtime.stream import StreamRun

__all__ = ["RayRunner", "StageResources"]

KEY_GROUPS = 128
"""Key groups per keyed stage unless the runner says otherwise: the most actors a keyed
stage can spread over (Flink's default max parallelism), fixed for the life of a run so
that a checkpoint's state can go to any number of actors without rehashing."""


@dataclass(frozen=True)
class StageResources:
    """What one stage's actors (or a workflow step's task) ask of the cluster.

    >>> import riverbed as rb
    >>> rb.StageResources(parallelism=4, num_cpus=2, resources={"gpu-box": 1})
    StageResources(parallelism=4, num_cpus=2, num_gpus=None, resources={'gpu-box': 1})
    """

    parallelism: int | None = None
    """Actors for the stage's chain (None: the runner's parallelism)."""
    num_cpus: float | None = None
    """CPUs each actor (or task) reserves (None: Ray's default, one to be placed, none
    held while it runs)."""
    num_gpus: float | None = None
    """GPUs each actor (or task) reserves (None: none)."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """Custom resources each actor needs: it runs only on nodes that have them (a node
    started with ``ray start --resources '{"gpu-box": 1}'``)."""

    __module__ = "riverbed"

    def __post_init__(self) -> None:
        if self.parallelism is not None:
            _check_count("parallelism", self.parallelism)
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"StageResources: {name} must be a number >= 0, got {value!r}")
        object.__setattr__(self, "resources", dict(self.resources))

    def actor_options(self) -> dict[str, Any]:
        """The options of ``ray.remote(...).options`` these resources make."""
        # Without num_cpus, an actor is placed on a CPU but holds none while it lives
        # (Ray's default): idle actors kept for the next run do not starve tasks.
        options: dict[str, Any] = {}
        if self.num_cpus is not None:
            options["num_cpus"] = self.num_cpus
        if self.num_gpus:
            options["num_gpus"] = self.num_gpus
        if self.resources:
            options["resources"] = dict(self.resources)
        return options


class RayRunner:
    """Runs flows on Ray: ``flow.run(runner=rb.RayRunner())``.

    ``address``: None starts a local Ray instance using every core of this machine (or
    uses the one this process already joined); ``"auto"`` or ``"ray://host:10001"`` joins
    an existing cluster. ``parallelism``: actors per chain (None: the cluster's CPUs).
    ``stages``: per stage name, its ``StageResources`` (parallelism, CPUs, GPUs, custom
    resources). ``key_groups``: the fixed number of key groups of keyed stages.
    ``in_flight``: batches each actor may have queued before the source waits (memory
    stays bounded, a slow stage slows the source). ``init_options``: more keywords for
    ``ray.init``.

    >>> import riverbed as rb
    >>> runner = rb.RayRunner(parallelism=2, stages={"score": rb.StageResources(num_cpus=2)})
    >>> runner.name
    'ray'
    """

    name = "ray"

    __module__ = "riverbed"

    def __init__(
        self,
        address: str | None = None,
        *,
        parallelism: int | None = None,
        stages: Mapping[str, StageResources] | None = None,
        key_groups: int = KEY_GROUPS,
        in_flight: int = 4,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        if parallelism is not None:
            _check_count("parallelism", parallelism)
        _check_count("key_groups", key_groups)
        _check_count("in_flight", in_flight)
        if parallelism is not None and parallelism > key_groups:
            raise ValueError(
                f"RayRunner: parallelism {parallelism} is more than key_groups {key_groups}: "
                "a keyed stage cannot spread over more actors than it has key groups; raise "
                "key_groups"
            )
        self.address = address
        self.parallelism = parallelism
        self.stages = dict(stages or {})
        for name, resources in self.stages.items():
            if not isinstance(resources, StageResources):
                raise TypeError(
                    f"RayRunner: stages[{name!r}] must be an rb.StageResources, got "
                    f"{type(resources).__name__}"
                )
        self.key_groups = key_groups
        self.in_flight = in_flight
        self.init_options = dict(init_options or {})

    def __repr__(self) -> str:
        where = self.address or "local"
        return f"RayRunner({where!r}, parallelism={self.parallelism})"

    @property
    def cluster(self) -> str:
        """Where runs go: the address given, or ``"local"`` for a local instance."""
        return self.address or "local"

    @property
    def where(self) -> str:
        """What the run record says ran it: ``ray:`` and the cluster."""
        return f"ray:{self.cluster}"

    def exchange_before(self, stage: Stage) -> bool:
        """Events cross between processes before every stage that keeps state (a keyed
        stage's input is split by key) and before sinks (which run in the driver)."""
        return stage.kind in KEEPS_STATE or stage.is_sink

    def connect(self) -> Any:
        """The ``ray`` module, connected (see ``cluster.connect``)."""
        from riverbed._runtime.ray.cluster import connect

        return connect(self.address, self.init_options)

    async def run_stream(self, run: StreamRun) -> BaseException | None:
        """Run a stream on the cluster (see ``driver.RayStream``)."""
        from riverbed._runtime.ray.driver import RayStream

        if run.config.clock is not None:
            raise ValueError(
                "clock= drives the local runner only (a test's clock cannot move time in "
                "Ray's workers): run without it on the Ray runner"
            )
        return await RayStream(run, self, self.connect()).execute()

    async def run_step(self, step: Step) -> dict[str, list[Any]]:
        """Run one workflow step as a Ray task (see ``steps``)."""
        from riverbed._runtime.ray.steps import run_step

        return await run_step(step, self, self.connect())

    def resources_of(self, stage: str) -> StageResources:
        """What stage ``stage`` asks of the cluster."""
        return self.stages.get(stage, StageResources())


def _check_count(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"RayRunner: {name} must be an int >= 1, got {value!r}")
