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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from riverbed._model.plan import Chain, is_batch_sink
from riverbed._model.stages import ONE_TO_ONE, Port, StageKind


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

_PAIR_TAKERS = (StageKind.STATEFUL, StageKind.FOLD)


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


class _Generator:
    def __init__(
        self,
        chain: Chain,
        states: list[dict[Any, Any] | None],
        processors: dict[int, Any],
        *,
        count_head: bool,
    ) -> None:
        self.chain = chain
        self.states = states
        self.processors = processors
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
        bound = [f"{name}={name}" for name in sorted(self.names) if name[0] in "FMISO"]
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
            if pair is not None and self.chain.stages[target].kind not in _PAIR_TAKERS:
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
        stage = self.chain.stages[index]
        kind = stage.kind
        out = Port(stage.name, stage.outputs[0]) if stage.outputs else None
        self.names[f"F{index}"] = stage.fn
        value = "x" if pair is None else f"({pair[0]}, {pair[1]})"
        waiting = "".join(f"{p}, " for p in pending)
        bail = f"raise Bail({index}, {value}, e, ({waiting}), {self.counts})"

        def guarded(code: str, at: int = depth) -> None:
            self.line(at, "try:")
            for text in code.split("\n"):
                self.line(at + 1, text)
            self.line(at, "except Exception as e:")
            self.line(at + 1, bail)

        if is_batch_sink(stage):  # only as a head: links into batch sinks append directly
            self.line(depth, f"{self.appender(Port(stage.name, '<in>'), stage.name)}(x)")
            return

        if kind in _PAIR_TAKERS:
            if pair is None:
                self.line(depth, f"k{index}, v{index} = x")
                key, val = f"k{index}", f"v{index}"
            else:
                key, val = pair
            self.names[f"S{index}"] = self.states[index]
            self.names[f"I{index}"] = stage.initial
        if kind is StageKind.MAP:
            assert out is not None
            into = self.list_after(out)
            if into is not None:  # straight into a list: append what the call returns
                guarded(f"{into}(F{index}(x))")
                return
            guarded(f"x = F{index}(x)")
        elif kind is StageKind.FILTER:
            guarded(f"if not F{index}(x): continue")
        elif kind is StageKind.INSPECT:
            guarded(f"F{index}(x)")
        elif kind is StageKind.KEY_BY:
            guarded(f"k{index} = F{index}(x)")
            assert out is not None
            self.follow(out, depth, pending, (f"k{index}", "x"))
            return
        elif kind is StageKind.MERGE:
            pass
        elif kind is StageKind.FLAT_MAP or kind is StageKind.PROCESS:
            if kind is StageKind.PROCESS:  # a processor without timers: process(event, now)
                self.names[f"F{index}"] = self.processors[index].process
                # Most events make a window emit nothing (None): no list, no loop for them.
                guarded(
                    f"ys = F{index}(x, NOW)\n"
                    "if ys is not None and type(ys) is not list: ys = list(ys)"
                )
                self.line(depth, "if not ys:")
                self.line(depth + 1, "continue")
            else:
                guarded(f"ys = F{index}(x)\nys = ys if type(ys) is list else list(ys)")
            assert out is not None
            into = self.list_after(out)
            if into is not None:  # straight into a list: all the outputs in one call
                self.extenders.add(into)
                self.line(depth, f"ext_{into}(ys)")
                return
            self.line(depth, f"it{index} = iter(ys)")
            self.line(depth, f"for x in it{index}:")
            pending = (*pending, f"({index}, it{index})")
            depth += 1
        elif kind is StageKind.STATEFUL:
            # The state lookup is guarded too: an unhashable key is the stage's error.
            lookup = f"st = S{index}.get({key}, MISSING)\n"
            if stage.method is not None:
                self.names[f"M{index}"] = stage.method
                guarded(
                    f"{lookup}if st is MISSING: st = S{index}[{key}] = F{index}()\n"
                    f"r = M{index}(st, {val})"
                )
            else:
                start = f"I{index}()" if stage.initial is not None else "None"
                guarded(
                    f"{lookup}r = F{index}({start} if st is MISSING else st, {val})\n"
                    "if type(r) is not tuple or len(r) != 2: "
                    "raise StageResultError(StageResultError.MESSAGE % (r,))"
                )
                self.line(depth, "st, r = r")
                self.line(depth, "if st is None:")
                self.line(depth + 1, f"S{index}.pop({key}, None)")
                self.line(depth, "else:")
                self.line(depth + 1, f"S{index}[{key}] = st")
            self.line(depth, "if r is None:")
            self.line(depth + 1, "continue")
            self.line(depth, f"x = ({key}, r)")
        elif kind is StageKind.FOLD:
            lookup = f"acc = S{index}.get({key}, MISSING)\n"
            if stage.initial is not None:
                guarded(f"{lookup}acc = F{index}(I{index}() if acc is MISSING else acc, {val})")
            else:  # reduce: a key's first value is its start
                guarded(f"{lookup}acc = {val} if acc is MISSING else F{index}(acc, {val})")
            self.line(depth, f"S{index}[{key}] = acc")
            if not stage.running:
                self.line(depth, "continue")
                return
            self.line(depth, f"x = ({key}, acc)")
        elif kind is StageKind.BRANCH:
            guarded(f"keep = F{index}(x)")
            self.line(depth, "if keep:")
            self.follow(Port(stage.name, "true"), depth + 1, pending, None)
            self.line(depth, "else:")
            self.follow(Port(stage.name, "false"), depth + 1, pending, None)
            return
        elif kind is StageKind.ROUTE:
            self.names[f"O{index}"] = stage.outputs
            guarded(f"r = F{index}(x)\nif r not in O{index}: raise UnknownRouteError(r, O{index})")
            for number, name in enumerate(stage.outputs):
                self.line(depth, f"{'if' if number == 0 else 'elif'} r == {name!r}:")
                self.follow(Port(stage.name, name), depth + 1, pending, None)
            return
        elif kind is StageKind.SINK:
            guarded(f"F{index}(x)")
            return
        else:  # pragma: no cover - plan only fuses the kinds above
            raise AssertionError(f"cannot fuse {kind}")
        assert out is not None
        self.follow(out, depth, pending, None)


def compile_chain(
    chain: Chain,
    states: list[dict[Any, Any] | None],
    processors: dict[int, Any] | None = None,
    *,
    count_head: bool = False,
) -> CompiledChain:
    """Generate the fast loop of ``chain``. ``states[i]`` is stage i's per-key state dict;
    ``processors[i]`` the processor of a ``PROCESS`` stage i.

    The function takes the batch iterator, then one append function per list it fills
    (``CompiledChain.lists``), then the processing time ``NOW`` for processors, and returns
    the explicit edge counts (and, with ``count_head``, the number of events it took: for
    lazy iterators, which have no length).
    """
    return _Generator(chain, states, processors or {}, count_head=count_head).generate()
