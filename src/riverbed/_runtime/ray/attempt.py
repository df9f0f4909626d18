"""One life of a stream run's actors on Ray: the actors made with their share of the
state, the sources read in the driver, every batch routed through the driver to the
chains that read it, checkpoints taken as consistent cuts, and the end of the stream
passed on chain by chain. An actor lost ends the attempt (``ActorLostError``); the run then
rolls back to its last checkpoint and starts another (see ``driver``).

Checkpoints are cuts at quiescence: the sources stop between two batches, every batch in
flight is processed and its outputs delivered, then every actor (and the driver's sinks)
gives its part, the sources go on, and the cut is committed while they do. The driver
routes every batch, so it knows when nothing is in flight; a pause costs one round trip
through the pipeline per checkpoint (milliseconds; checkpoints are seconds apart).
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import time
from collections.abc import Coroutine
from typing import Any

from riverbed._errors import SourceError, StageFailedError
from riverbed._model.stages import Port, Stage
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.parts import Part
from riverbed._runtime.ray.actor import Reply, WorkerSetup
from riverbed._runtime.ray.cuts import KeyedWrites, add_counters, merge_actor_parts
from riverbed._runtime.ray.lanes import Lane
from riverbed._runtime.ray.pool import POOL, kill
from riverbed._runtime.ray.topology import ChainPlacement, Placement, key_owner
from riverbed._runtime.readers import close
from riverbed._runtime.stream import StreamRun

__all__ = ["Attempt"]

POLL_INTERVAL = 0.01
"""Seconds before asking a source again after it said "nothing yet"."""


class Attempt:
    """One life of the run's actors (see the module docstring)."""

    def __init__(
        self,
        run: StreamRun,
        ray: Any,
        placed: dict[str, ChainPlacement],
        *,
        in_flight: int,
        key_groups: int,
        writes: dict[str, KeyedWrites],
    ) -> None:
        self.run = run
        self.ray = ray
        self.placed = placed
        self.key_groups = key_groups
        self.writes = writes
        self.in_flight = in_flight
        self.lanes: dict[str, Lane] = {}
        self.local: dict[str, ChainExecutor] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.counted: dict[str, list[list[dict[str, Any]]]] = {}
        """Per chain in actors: per actor, its stages' counters as last answered."""
        self.bases = {name: counters.values() for name, counters in run.counters.items()}
        """What the run had counted when this attempt started."""
        self.tasks: list[asyncio.Task[None]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.delivering = 0
        self.events_read = 0
        self.due = asyncio.Event()
        self.readers: list[asyncio.Task[None]] = []
        self.waiting: set[asyncio.Task[Any]] = set()
        """Readers awaiting a read (a clean stop cancels those)."""
        self.taking = asyncio.Lock()
        """Held while a checkpoint is cut and committed."""
        self.last_id = run.restored.last_id
        """The newest checkpoint committed."""

    # -- actors -----------------------------------------------------------------------------

    def start(self) -> None:
        """Make the actors (each with its share of the state) and the driver's chains."""
        for name, placed in self.placed.items():
            chain = placed.chain
            if placed.placement is Placement.DRIVER:
                self.local[name] = self.run.executor(chain)
                self.locks[name] = asyncio.Lock()
                continue
            actors = POOL.take(self.ray, placed.options, placed.parallelism)
            for actor, (states, setup) in zip(actors, self._shares(placed), strict=True):
                actor.load.remote(chain, states, setup)
            lost = (self.ray.exceptions.RayActorError, self.ray.exceptions.ActorUnavailableError)
            self.lanes[name] = Lane(
                placed, actors, in_flight=self.in_flight, key_groups=self.key_groups, lost=lost
            )
            self.counted[name] = [[] for _ in actors]

    def _shares(self, placed: ChainPlacement) -> list[tuple[list[Any], WorkerSetup]]:
        """Per actor of a chain: its share of the chain's state, and how it is set up."""
        run, chain = self.run, placed.chain
        count = placed.parallelism
        states: list[list[Any]] = [[run.states.get(s.name) for s in chain.stages]]
        if placed.placement is Placement.KEYED:
            whole = run.states[chain.head.name]
            split: list[dict[Any, Any]] = [{} for _ in range(count)]
            for key, value in whole.items():
                split[key_owner(key, count, self.key_groups)][key] = value
            states = [[share] + [None] * (len(chain.stages) - 1) for share in split]
        elif placed.placement is Placement.BALANCED:
            states = [[None] * len(chain.stages) for _ in range(count)]
        config = run.config
        setups = [
            WorkerSetup(
                flow=run.flow.name,
                run_id=run.run_id,
                max_errors=config.max_errors,
                concurrency=config.concurrency,
                seed=None if config.seed is None else config.seed + index,
                finished=chain.name in run.restored.finished,
                tracks_keys=run.checkpointing,
            )
            for index in range(count)
        ]
        return list(zip(states, setups, strict=True))

    def kill(self) -> None:
        """Kill every actor of this attempt (also those still running)."""
        for lane in self.lanes.values():
            for actor in lane.actors:
                kill(self.ray, actor)
        self.lanes.clear()

    def give_back(self) -> None:
        """The attempt ended cleanly: its actors go back to the pool for the next run."""
        for lane in self.lanes.values():
            POOL.give_back(self.ray, lane.placed.options, lane.actors)
        self.lanes.clear()

    # -- routing ------------------------------------------------------------------------------

    async def route(self, port: Port, events: list[Any]) -> None:
        """Hand ``events`` of ``port`` to every chain that reads it."""
        for name in self.run.plan.readers.get(port, ()):
            lane = self.lanes.get(name)
            if lane is not None:
                await lane.send(events)
            else:
                await self._local(name, self.local[name].process(events))

    async def _local(self, name: str, work: Coroutine[Any, Any, dict[str, list[Any]]]) -> None:
        """Run a step of a chain that runs in the driver, timed, and route its outputs."""
        executor = self.local[name]
        async with self.locks[name]:
            started = time.perf_counter()
            try:
                outputs = await work
            finally:
                for stage in executor.chain.stages:
                    self.run.counters[stage.name].timed(time.perf_counter() - started)
        await self._outputs(executor.chain.exits, outputs)

    async def _outputs(self, exits: tuple[Port, ...], outputs: dict[str, list[Any]]) -> None:
        for port in exits:
            events = outputs.get(str(port))
            if events:
                await self.route(port, events)

    async def answered(self, name: str, index: int, reply: Reply) -> None:
        """One answer of actor ``index`` of chain ``name``: its counters and failures
        taken in, its outputs routed on. A failure that stops the run raises here."""
        run = self.run
        self.counted[name][index] = reply.counters
        self._count(name)
        run.failures.adopt(reply.errors, reply.dead_letters, reply.fatal)
        if reply.failed is not None:
            stage = (reply.fatal.stage if reply.fatal is not None else None) or name
            raise StageFailedError(reply.failed, stage=stage, attempts=reply.attempts)
        await self._outputs(self.lanes[name].placed.chain.exits, reply.outputs)

    def _count(self, name: str) -> None:
        """The run's counters of chain ``name``'s stages: the sum over its actors."""
        chain = self.placed[name].chain
        for position, stage in enumerate(chain.stages):
            values = [counted[position] for counted in self.counted[name] if counted]
            total = add_counters(values, self.bases[stage.name])
            self.run.counters[stage.name].restore(total)

    # -- running ------------------------------------------------------------------------------

    async def execute(self) -> None:
        """Read the sources to their end (or a stop), then end every chain in order, with
        a last checkpoint if the run takes them. Raises what stopped the run."""
        run, loop = self.run, asyncio.get_running_loop()
        for name, lane in self.lanes.items():
            handle = self._handler(name)
            self.tasks.append(loop.create_task(lane.take(handle), name=f"take {name}"))
        await self._start_tickers()
        for source in run.plan.sources:
            for partition in self._partitions(source):
                task = loop.create_task(self._read(source, partition), name=source.name)
                self.readers.append(task)
        checkpoints = None
        if run.checkpointing:
            checkpoints = loop.create_task(self._checkpoints(), name="checkpoints")
            self.tasks.append(checkpoints)
        await self._wait(self.readers)
        await self._end_chains(ended=not run.control.stopping)
        if checkpoints is not None:
            async with self.taking:
                checkpoints.cancel()
            await asyncio.gather(checkpoints, return_exceptions=True)
            await self._final_checkpoint()

    def _handler(self, name: str) -> Any:
        async def handle(index: int, reply: Reply) -> None:
            await self.answered(name, index, reply)

        return handle

    async def _wait(self, awaited: list[asyncio.Task[None]]) -> None:
        """Wait for ``awaited``, but fail as soon as any task of the attempt fails."""
        pending = set(awaited)
        while pending:
            watched = pending | {task for task in self.tasks if not task.done()}
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            pending -= done

    def _partitions(self, source: Stage) -> list[str]:
        try:
            return [str(partition) for partition in source.fn.partitions()]
        except Exception as error:
            self.run.counters[source.name].errors += 1
            what = f"source {source.name!r} could not list its partitions"
            raise self.run.failures.stop(source.name, error, what) from error

    async def _end_chains(self, *, ended: bool) -> None:
        """After the sources: each chain in order (upstream first) gets what is in flight
        to it, then its end-of-stream outputs are made and passed on."""
        for chain in self.run.plan.chains:
            name = chain.name
            lane = self.lanes.get(name)
            if lane is None:
                await self._local(name, self.local[name].finish(ended=ended))
                continue
            await self._settled(lane)
            await lane.broadcast("finish", ended)
            await self._settled(lane)

    async def _settled(self, lane: Lane) -> None:
        await self._wait([asyncio.get_running_loop().create_task(lane.quiet())])

    async def close(self, *, commit: bool) -> BaseException | None:
        """Close every chain's sinks and operators (the actors', then the driver's);
        return the first failure. ``commit``: the run ended well, and transactional sinks
        of a run without checkpoints commit what they hold."""
        error: BaseException | None = None
        if commit and not self.run.checkpointing and not self.run.control.lost:
            # Without checkpoints, transactional sinks commit what they hold at the end.
            error = self.run.commit_unchecked()
        for name, lane in self.lanes.items():
            replies = await asyncio.gather(
                *(actor.close.remote() for actor in lane.actors), return_exceptions=True
            )
            for index, reply in enumerate(replies):
                if not isinstance(reply, Reply):
                    continue
                # Answered after every call sent before it: the counters of batches
                # whose answers a failure left untaken are in.
                self.counted[name][index] = reply.counters
                self._count(name)
                if reply.failed is not None:
                    self.run.failures.adopt(reply.errors, reply.dead_letters, reply.fatal)
                    error = error or StageFailedError(reply.failed, stage=lane.name, attempts=1)
        closed = await self.run.close_readers()
        return await self.close_local() or error or closed

    async def close_local(self) -> BaseException | None:
        """Close the sinks of the chains that run in the driver; the first failure."""
        error: BaseException | None = None
        for executor in self.local.values():
            try:
                await executor.close()
            except StageFailedError as failure:
                error = error or failure
        return error

    def cancel(self) -> None:
        """Stop every task of the attempt."""
        for task in [*self.tasks, *self.readers]:
            task.cancel()

    async def cancelled(self) -> None:
        """Wait for the tasks stopped by ``cancel``."""
        await asyncio.gather(*self.tasks, *self.readers, return_exceptions=True)

    # -- sources ------------------------------------------------------------------------------

    async def _read(self, source: Stage, partition: str) -> None:
        """Read one partition to its end (or a stop), routing each batch."""
        run = self.run
        start = run.restored.positions.get(source.name, {}).get(partition)
        positions = run.positions.setdefault(source.name, {})
        if start is not None:
            positions[partition] = start
        readers = run.readers
        try:
            reader = source.fn.open(partition, start)
            # A reader that acks what committed checkpoints hold stays open after its end
            # until the run's last checkpoint, to ack that one too.
            acks = readers.register(source.name, partition, reader)
            ended = False
            try:
                await self._read_all(source, partition, reader)
                ended = True
            finally:
                if acks and ended and run.checkpointing:
                    readers.close_later(source.name, partition, reader)
                else:
                    readers.forget(source.name, partition)
                    await close(reader)
        except StageFailedError:
            raise
        except Exception as error:
            run.counters[source.name].errors += 1
            what = f"source {source.name!r} (partition {partition!r}) failed"
            raise run.failures.stop(source.name, error, what) from error

    async def _read_all(self, source: Stage, partition: str, reader: Any) -> None:
        run = self.run
        counters = run.counters[source.name]
        size = run.config.batch_size
        port = Port(source.name)
        while not run.control.stopping:
            await self.gate.wait()
            batch = reader.read(size)
            if inspect.isawaitable(batch):
                batch = await self._await_read(batch)
            run.reject(source.name, reader)
            if batch is None:
                break
            if type(batch) is not list:
                raise SourceError(
                    f"source {source.name!r}: read() returned {type(batch).__name__}; "
                    "it must return a list of events, [] for none yet, or None at end"
                )
            if not batch:
                await run.clock.sleep(POLL_INTERVAL)
                continue
            await self.gate.wait()  # a cut being taken: this batch comes after it
            self.delivering += 1
            try:
                counters.events_out += len(batch)
                run.positions[source.name][partition] = reader.position()
                self._read_events(len(batch))
                await self.route(port, batch)
            finally:
                self.delivering -= 1
            await asyncio.sleep(0)  # a batch sent without waiting: let other partitions read

    async def _await_read(self, pending: Any) -> Any:
        """Await a read; a clean stop cancels a read that waits for events (an idle
        stream), which ends the partition (None)."""
        task = asyncio.current_task()
        assert task is not None
        self.waiting.add(task)
        try:
            return await pending
        except asyncio.CancelledError:
            control = self.run.control
            if not control.stopping or control.aborted:
                raise
            task.uncancel()
            return None
        finally:
            self.waiting.discard(task)

    def _read_events(self, count: int) -> None:
        every = self.run.checkpoint_events
        if every is None:
            return
        self.events_read += count
        if self.events_read >= every:
            self.events_read = 0
            self.due.set()

    def stop_reading(self) -> None:
        """A clean stop: a source waiting for events stops now (one delivering a batch
        delivers it whole first)."""
        for task in self.waiting:
            task.cancel()

    # -- timers -----------------------------------------------------------------------------

    async def _start_tickers(self) -> None:
        loop = asyncio.get_running_loop()
        for name, lane in self.lanes.items():
            interval = (await lane.ask_all("tick_interval"))[0]
            if interval is not None:
                self.tasks.append(loop.create_task(self._tick(lane, interval), name=f"tick {name}"))

    async def _tick(self, lane: Lane, interval: float) -> None:
        while True:
            await self.run.clock.sleep(interval)
            await self.gate.wait()
            await lane.broadcast("tick")

    # -- checkpoints ------------------------------------------------------------------------

    async def _checkpoints(self) -> None:
        """Take a checkpoint when one is due (by time or by volume), one at a time."""
        run = self.run
        interval = run.checkpoint_every
        checkpoint_id = self.last_id
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval if interval else None
        while True:
            waits: list[asyncio.Task[Any]] = [loop.create_task(self.due.wait())]
            if next_at is not None:
                waits.append(loop.create_task(run.clock.sleep(max(0.0, next_at - loop.time()))))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
            self.due.clear()
            if interval:
                next_at = loop.time() + interval
            checkpoint_id += 1
            async with self.taking:  # the run's end waits for a checkpoint being taken
                part = await self.cut(checkpoint_id)
                await self._commit(checkpoint_id, part, ended=False)

    async def cut(self, checkpoint_id: int) -> Part:
        """Pause the sources, let what is in flight through, and gather every part."""
        self.gate.clear()
        try:
            await self._quiesce()
            return await self._gather(checkpoint_id)
        finally:
            self.gate.set()

    async def _quiesce(self) -> None:
        while True:
            for lane in self.lanes.values():
                await self._settled(lane)
            await asyncio.sleep(0)
            busy = any(lane.calls for lane in self.lanes.values())
            if not busy and self.delivering == 0 and not self._locked():
                return
            await asyncio.sleep(0.001)

    def _locked(self) -> bool:
        return any(lock.locked() for lock in self.locks.values())

    async def _gather(self, checkpoint_id: int) -> Part:
        run = self.run
        part = Part()
        for source in run.plan.sources:
            positions = copy.deepcopy(run.positions.get(source.name, {}))
            part.merge(Part(positions={source.name: positions}))
            part.counters[source.name] = run.counters[source.name].values()
        for executor in self.local.values():
            part.merge(executor.snapshot(checkpoint_id))
        for name, lane in self.lanes.items():
            head = lane.placed.chain.head.name
            writes = self.writes.get(head)
            whole = writes.whole() if writes is not None else False
            taken = await lane.ask_all("snapshot", checkpoint_id, whole)
            parts = [actor_part for actor_part, _ in taken]
            chain_part = merge_actor_parts(name, parts, self.bases, whole=whole)
            if writes is not None:
                rows = len(chain_part.keyed.get(head, {}))
                writes.wrote(rows, sum(held for _, held in taken), whole=whole)
            part.merge(chain_part)
        return part

    async def _commit(self, checkpoint_id: int, part: Part, *, ended: bool) -> None:
        await self.run.commit_checkpoint(checkpoint_id, part, ended=ended)
        self.last_id = checkpoint_id

    async def _final_checkpoint(self) -> None:
        """The run drained (or stopped cleanly): its whole cut as a last checkpoint."""
        run = self.run
        if run.control.aborted:
            return
        checkpoint_id = self.last_id + 1
        part = await self.cut(checkpoint_id)
        await self._commit(checkpoint_id, part, ended=not run.control.stopping)
