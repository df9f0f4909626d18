"""The fast path of a fused chain: one generated Python function that runs a whole batch
through every stage of the chain in a single loop, as a hand-written loop would.

The chain is a small tree (a branch continues into the stages of both outputs; a merge of
two paths is inlined on each path). The generated function never handles a failure
itself. When a stage raises, it raises ``Bail`` carrying what the slow path needs to go on
exactly where it stopped: the stage, the value that stage was given, the error, the
unfinished iterators of enclosing flat_maps, and the counters so far. The executor handles
the failure by the stage's policy, finishes that event's subtree, and calls the function
again on the same batch iterator, which goes on with the next event. No user function is
ever called twice for one event, except as a retry. ``try`` costs nothing in CPython 3.11+
when nothing is raised.

Counting: events are counted per internal edge. An edge out of a one-to-one stage (map,
inspect, key_by, merge) is derived from that stage's input count; an edge into a batch
sink or out of the chain is measured by the length of its list; the others are counted
by the loop (``explicit_edges``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from riverbed._model.plan import Chain, is_batch_sink
from riverbed._model.stages import (
    ONE_TO_ONE,
    PER_KEY_STATE,
    FoldStage,
    KeyedStateStage,
    Port,
    Stage,
    StageKind,
    StatefulStage,
)


class Bail(Exception):  # noqa: N818 - not an error: a hand-over to the slow path
    """Raised by a generated loop when a stage raised; never escapes the executor."""

    def __init__(
        self,
        stage: int,
        value: Any,
        error: Exception,
        pending: tuple[tuple[int, Any], ...],
        counts: tuple[int, ...],
    ) -> None:
        self.stage = stage
        self.value = value
        self.error = error
        self.pending = pending
        self.counts = counts


class StageResultError(TypeError):
    """A stateful function returned something other than a ``(state, output)`` pair."""

    MESSAGE = "a stateful function must return a (state, output) pair, got %.200r"


class UnknownRouteError(LookupError):
    """A route function returned a name that is not one of the stage's outputs."""

    def __init__(self, name: Any, outputs: tuple[str, ...]) -> None:
        super().__init__(
            f"the route function returned {name!r}, which is not one of its outputs "
            f"{list(outputs)}; return one of those names"
        )


MISSING: Any = object()


def list_key(chain: Chain, port: Port) -> str:
    """The key of the list that collects what goes through ``port``: an exit of the chain,
    or the input of a batch sink inside it."""
    target = chain.links.get(port)
    if target is not None:
        return f"sink:{chain.stages[target].name}"
    return str(port)


def measured(chain: Chain, port: Port) -> bool:
    """True if the events through ``port`` are counted by the length of a list."""
    target = chain.links.get(port)
    return target is None or is_batch_sink(chain.stages[target])


def remainder_ports(chain: Chain) -> frozenset[Port]:
    """Ports whose count is what is left: the last output of a branch or route whose
    outputs all lead to counted members. Each event takes exactly one output, so the last
    one's count is the stage's input less its failures and the other outputs' counts."""
    found = set()
    for stage in chain.stages:
        ports = [Port(stage.name, name) for name in stage.outputs]
        if len(ports) > 1 and all(p in chain.links and not measured(chain, p) for p in ports):
            found.add(ports[-1])
    return frozenset(found)


def explicit_edges(chain: Chain) -> tuple[Port, ...]:
    """The internal edges whose counts the generated loop keeps itself."""
    remainders = remainder_ports(chain)
    return tuple(
        port
        for port in chain.links
        if not measured(chain, port)
        and port not in remainders
        and chain.stages[_index(chain, port.stage)].kind not in ONE_TO_ONE
    )


def _index(chain: Chain, name: str) -> int:
    for position, stage in enumerate(chain.stages):
        if stage.name == name:
            return position
    raise LookupError(name)  # pragma: no cover - ports always name members


@dataclass(frozen=True)
class CompiledChain:
    """The generated function and what the executor needs to interpret its counters."""

    run: Callable[..., tuple[int, ...]]
    explicit: tuple[Port, ...]
    """The internal edges the loop counts, in the order of its returned counts; with
    ``count_head``, the last count is the number of events taken from the iterator."""
    lists: tuple[str, ...]
    """The keys of the lists the function appends to, in the order of its parameters."""
    source: str
    """The generated code, for debugging (``print(compiled.source)``)."""


_HEAD = Port("<head>", "<in>")
"""The pseudo-edge into the head: counted by the loop when its input is a lazy iterator."""


Mark = Callable[[Any], None]
"""What a keyed stage's writes call with the key whose state they changed (``set.add`` of
the stage's changed keys, when the run takes checkpoints)."""


@dataclass(frozen=True)
class _Site:
    """Where one stage's code goes: the stage, its indentation, the iterators of the
    flat_maps around it, and its event (in ``x``, or the names of a key/value ``pair``)."""

    index: int
    stage: Stage
    depth: int
    pending: tuple[str, ...]
    pair: tuple[str, str] | None

    @property
    def out(self) -> Port:
        """The stage's (first) output port."""
        return Port(self.stage.name, self.stage.outputs[0])

    @property
    def value(self) -> str:
        """The expression of the stage's input event."""
        return "x" if self.pair is None else f"({self.pair[0]}, {self.pair[1]})"


_Next = tuple[int, tuple[str, ...]]
"""What a stage's code leaves to ``follow``: the event in ``x`` goes on through the stage's
output at this depth, inside these flat_map iterators. None: the stage's code did it."""


class _Generator:
    def __init__(
        self,
        chain: Chain,
        states: list[dict[Any, Any] | None],
        processors: dict[int, Any],
        marks: Sequence[Mark | None],
        *,
        count_head: bool,
    ) -> None:
        self.chain = chain
        self.states = states
        self.processors = processors
        self.marks = marks
        self.explicit = (*explicit_edges(chain), *((_HEAD,) if count_head else ()))
        self.counter = {port: f"c{number}" for number, port in enumerate(self.explicit)}
        self.counts = "(" + "".join(f"{self.counter[p]}, " for p in self.explicit) + ")"
        self.lists: dict[str, str] = {}
        self.extenders: set[str] = set()
        """Appenders whose lists take a flat_map's or processor's outputs whole."""
        self.names: dict[str, Any] = {
            "Bail": Bail,
            "MISSING": MISSING,
            "StageResultError": StageResultError,
            "UnknownRouteError": UnknownRouteError,
        }
        self.lines: list[str] = []

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def appender(self, port: Port, batch_sink: str | None = None) -> str:
        key = f"sink:{batch_sink}" if batch_sink is not None else list_key(self.chain, port)
        if key not in self.lists:
            self.lists[key] = f"a{len(self.lists)}"
        return self.lists[key]

    def generate(self) -> CompiledChain:
        body_start = len(self.lines)
        self.stage(0, 2, (), None)
        body = self.lines[body_start:]
        self.lines = self.lines[:body_start]
        bound = [f"{name}={name}" for name in sorted(self.names) if name[0] in "DFMISO"]
        params = ["it0", *self.lists.values(), "NOW", *bound]
        self.line(0, f"def fast({', '.join(params)}):")
        for port in self.explicit:
            self.line(1, f"{self.counter[port]} = 0")
        for appender in sorted(self.extenders):
            self.line(1, f"ext_{appender} = {appender}.__self__.extend")
        self.line(1, "for x in it0:")
        if _HEAD in self.counter:
            self.line(2, f"{self.counter[_HEAD]} += 1")
        self.lines.extend(body)
        self.line(1, f"return {self.counts}")
        source = "\n".join(self.lines) + "\n"
        code = compile(source, f"<riverbed chain {self.chain.name}>", "exec")
        exec(code, self.names)  # our own code, generated from the plan alone
        return CompiledChain(
            run=self.names["fast"],
            explicit=self.explicit,
            lists=tuple(self.lists),
            source=source,
        )

    def follow(
        self, port: Port, depth: int, pending: tuple[str, ...], pair: tuple[str, str] | None
    ) -> None:
        """Code for an event leaving ``port``: into the next member, or into a list."""
        target = self.chain.links.get(port)
        if target is not None and not is_batch_sink(self.chain.stages[target]):
            if port in self.counter:
                self.line(depth, f"{self.counter[port]} += 1")
            if pair is not None and self.chain.stages[target].kind not in PER_KEY_STATE:
                self.line(depth, f"x = ({pair[0]}, {pair[1]})")
                pair = None
            self.stage(target, depth, pending, pair)
            return
        if pair is not None:
            self.line(depth, f"x = ({pair[0]}, {pair[1]})")
        self.line(depth, f"{self.appender(port)}(x)")

    def list_after(self, port: Port) -> str | None:
        """The appender of the list an event leaving ``port`` ends in when nothing but
        merges (which do nothing to it, and count nothing) stands between; else None."""
        while port not in self.counter:
            target = self.chain.links.get(port)
            if target is None or is_batch_sink(self.chain.stages[target]):
                return self.appender(port)
            member = self.chain.stages[target]
            if member.kind is not StageKind.MERGE:
                return None
            port = Port(member.name, member.outputs[0])
        return None

    def stage(
        self, index: int, depth: int, pending: tuple[str, ...], pair: tuple[str, str] | None
    ) -> None:
        """Code for stage ``index`` and, through ``follow``, for everything after it."""
        stage = self.chain.stages[index]
        self.names[f"F{index}"] = stage.fn
        if is_batch_sink(stage):  # only as a head: links into batch sinks append directly
            self.line(depth, f"{self.appender(Port(stage.name, '<in>'), stage.name)}(x)")
            return
        emit = _EMITTERS.get(stage.kind)
        if emit is None:  # pragma: no cover - plan only fuses the kinds below
            raise AssertionError(f"cannot fuse {stage.kind}")
        going_on = emit(self, _Site(index, stage, depth, pending, pair))
        if going_on is not None:
            self.follow(Port(stage.name, stage.outputs[0]), *going_on, None)

    def guarded(self, site: _Site, code: str) -> None:
        """``code`` in a ``try`` whose failure hands the event to the slow path (``Bail``)."""
        waiting = "".join(f"{p}, " for p in site.pending)
        self.line(site.depth, "try:")
        for text in code.split("\n"):
            self.line(site.depth + 1, text)
        self.line(site.depth, "except Exception as e:")
        self.line(
            site.depth + 1,
            f"raise Bail({site.index}, {site.value}, e, ({waiting}), {self.counts})",
        )

    def key_and_value(self, site: _Site) -> tuple[str, str]:
        """A keyed stage's key and value names (unpacked from ``x`` if not a pair yet);
        its state, initial state and mark are bound as S, I and D."""
        index = site.index
        self.names[f"S{index}"] = self.states[index]
        assert isinstance(site.stage, KeyedStateStage)
        self.names[f"I{index}"] = site.stage.initial
        mark = self.marks[index] if index < len(self.marks) else None
        if mark is not None:
            self.names[f"D{index}"] = mark
        if site.pair is not None:
            return site.pair
        self.line(site.depth, f"k{index}, v{index} = x")
        return f"k{index}", f"v{index}"

    def marked(self, site: _Site, key: str) -> str:
        """The call that marks ``key`` changed, as a line of code ('' without checkpoints)."""
        return f"D{site.index}({key})" if f"D{site.index}" in self.names else ""

    # -- the code of each kind of stage ----------------------------------------------------

    def map(self, site: _Site) -> _Next | None:
        into = self.list_after(site.out)
        if into is not None:  # straight into a list: append what the call returns
            self.guarded(site, f"{into}(F{site.index}(x))")
            return None
        self.guarded(site, f"x = F{site.index}(x)")
        return site.depth, site.pending

    def filter(self, site: _Site) -> _Next | None:
        self.guarded(site, f"if not F{site.index}(x): continue")
        return site.depth, site.pending

    def inspect(self, site: _Site) -> _Next | None:
        self.guarded(site, f"F{site.index}(x)")
        return site.depth, site.pending

    def merge(self, site: _Site) -> _Next | None:
        return site.depth, site.pending

    def sink(self, site: _Site) -> _Next | None:
        self.guarded(site, f"F{site.index}(x)")
        return None

    def key_by(self, site: _Site) -> _Next | None:
        self.guarded(site, f"k{site.index} = F{site.index}(x)")
        self.follow(site.out, site.depth, site.pending, (f"k{site.index}", "x"))
        return None

    def flat_map(self, site: _Site) -> _Next | None:
        index, depth = site.index, site.depth
        if site.stage.kind is StageKind.PROCESS:  # a processor without timers
            self.names[f"F{index}"] = self.processors[index].process
            # Most events make a window emit nothing (None): no list, no loop for them.
            self.guarded(
                site,
                f"ys = F{index}(x, NOW)\nif ys is not None and type(ys) is not list: ys = list(ys)",
            )
            self.line(depth, "if not ys:")
            self.line(depth + 1, "continue")
        else:
            self.guarded(site, f"ys = F{index}(x)\nys = ys if type(ys) is list else list(ys)")
        into = self.list_after(site.out)
        if into is not None:  # straight into a list: all the outputs in one call
            self.extenders.add(into)
            self.line(depth, f"ext_{into}(ys)")
            return None
        self.line(depth, f"it{index} = iter(ys)")
        self.line(depth, f"for x in it{index}:")
        return depth + 1, (*site.pending, f"({index}, it{index})")

    def stateful(self, site: _Site) -> _Next | None:
        index, depth, stage = site.index, site.depth, site.stage
        assert isinstance(stage, StatefulStage)
        key, val = self.key_and_value(site)
        mark = self.marked(site, key)
        # The state lookup is guarded too: an unhashable key is the stage's error.
        lookup = f"st = S{index}.get({key}, MISSING)\n"
        if stage.method is not None:
            self.names[f"M{index}"] = stage.method
            # Marked before the call: the method changes the state in place, even when
            # it then raises.
            self.guarded(
                site,
                f"{lookup}if st is MISSING: st = S{index}[{key}] = F{index}()\n"
                + (f"{mark}\n" if mark else "")
                + f"r = M{index}(st, {val})",
            )
        else:
            start = f"I{index}()" if stage.initial is not None else "None"
            self.guarded(
                site,
                f"{lookup}r = F{index}({start} if st is MISSING else st, {val})\n"
                "if type(r) is not tuple or len(r) != 2: "
                "raise StageResultError(StageResultError.MESSAGE % (r,))",
            )
            self.line(depth, "st, r = r")
            self.line(depth, "if st is None:")
            self.line(depth + 1, f"S{index}.pop({key}, None)")
            self.line(depth, "else:")
            self.line(depth + 1, f"S{index}[{key}] = st")
            if mark:
                self.line(depth, mark)
        self.line(depth, "if r is None:")
        self.line(depth + 1, "continue")
        self.line(depth, f"x = ({key}, r)")
        return depth, site.pending

    def fold(self, site: _Site) -> _Next | None:
        index, depth, stage = site.index, site.depth, site.stage
        assert isinstance(stage, FoldStage)
        key, val = self.key_and_value(site)
        lookup = f"acc = S{index}.get({key}, MISSING)\n"
        if stage.initial is not None:
            self.guarded(
                site, f"{lookup}acc = F{index}(I{index}() if acc is MISSING else acc, {val})"
            )
        else:  # reduce: a key's first value is its start
            self.guarded(site, f"{lookup}acc = {val} if acc is MISSING else F{index}(acc, {val})")
        self.line(depth, f"S{index}[{key}] = acc")
        mark = self.marked(site, key)
        if mark:
            self.line(depth, mark)
        if not stage.running:
            self.line(depth, "continue")
            return None
        self.line(depth, f"x = ({key}, acc)")
        return depth, site.pending

    def branch(self, site: _Site) -> _Next | None:
        name, depth = site.stage.name, site.depth
        self.guarded(site, f"keep = F{site.index}(x)")
        self.line(depth, "if keep:")
        self.follow(Port(name, "true"), depth + 1, site.pending, None)
        self.line(depth, "else:")
        self.follow(Port(name, "false"), depth + 1, site.pending, None)
        return None

    def route(self, site: _Site) -> _Next | None:
        index, stage = site.index, site.stage
        self.names[f"O{index}"] = stage.outputs
        self.guarded(
            site, f"r = F{index}(x)\nif r not in O{index}: raise UnknownRouteError(r, O{index})"
        )
        for number, name in enumerate(stage.outputs):
            self.line(site.depth, f"{'if' if number == 0 else 'elif'} r == {name!r}:")
            self.follow(Port(stage.name, name), site.depth + 1, site.pending, None)
        return None


_EMITTERS: dict[StageKind, Callable[[_Generator, _Site], _Next | None]] = {
    StageKind.MAP: _Generator.map,
    StageKind.FILTER: _Generator.filter,
    StageKind.INSPECT: _Generator.inspect,
    StageKind.KEY_BY: _Generator.key_by,
    StageKind.MERGE: _Generator.merge,
    StageKind.FLAT_MAP: _Generator.flat_map,
    StageKind.PROCESS: _Generator.flat_map,  # a processor without timers, like a flat_map
    StageKind.STATEFUL: _Generator.stateful,
    StageKind.FOLD: _Generator.fold,
    StageKind.BRANCH: _Generator.branch,
    StageKind.ROUTE: _Generator.route,
    StageKind.SINK: _Generator.sink,
}
"""The code of each kind of stage the plan fuses."""


def compile_chain(
    chain: Chain,
    states: list[dict[Any, Any] | None],
    processors: dict[int, Any] | None = None,
    *,
    count_head: bool = False,
    marks: Sequence[Mark | None] = (),
) -> CompiledChain:
    """Generate the fast loop of ``chain``. ``states[i]`` is stage i's per-key state dict;
    ``processors[i]`` the processor of a ``PROCESS`` stage i; ``marks[i]``, if given, is
    called with each key whose state stage i wrote or removed (a run that takes
    checkpoints; without, the loop has no such call at all).

    The function takes the batch iterator, then one append function per list it fills
    (``CompiledChain.lists``), then the processing time ``NOW`` for processors, and returns
    the explicit edge counts (and, with ``count_head``, the number of events it took: for
    lazy iterators, which have no length).
    """
    generator = _Generator(chain, states, processors or {}, marks, count_head=count_head)
    return generator.generate()
