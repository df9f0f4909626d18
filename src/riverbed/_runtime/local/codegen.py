"""The fast path of a fused chain: one generated Python function that runs a whole batch
through every stage of the chain in a single loop, as a hand-written loop would.

The generated function never handles a failure itself. When a stage raises, it raises
``Bail`` carrying what the slow path needs to go on exactly where it stopped: the stage,
the value that stage was given, the error, the unfinished iterators of enclosing flat_maps,
and the counters so far. The executor handles the failure by the stage's policy, finishes
that event's subtree, and calls the function again on the same batch iterator, which goes
on with the next event. No user function is ever called twice for one event, except as a
retry. ``try`` costs nothing in CPython 3.11+ when nothing is raised.

Counting: a stage's input count is derived from the one before it when that one is
one-to-one (map, inspect, key_by, merge); otherwise the loop keeps an explicit counter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from riverbed._model.plan import Chain, is_batch_sink
from riverbed._model.stages import ONE_TO_ONE, StageKind


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


@dataclass(frozen=True)
class CompiledChain:
    """The generated function and what the executor needs to interpret its counters."""

    run: Callable[..., tuple[int, ...]]
    explicit: tuple[int, ...]
    """The stage indexes whose input count the loop keeps itself, in ``counts`` order."""
    source: str
    """The generated code, for debugging (``print(compiled.source)``)."""


def explicit_counters(chain: Chain) -> tuple[int, ...]:
    """Stages whose input count cannot be derived from the stage before them."""
    return tuple(
        index
        for index in range(1, len(chain.stages))
        if chain.stages[index - 1].kind not in ONE_TO_ONE
    )


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)


def compile_chain(chain: Chain, states: list[dict[Any, Any] | None]) -> CompiledChain:
    """Generate the fast loop of ``chain``. ``states[i]`` is stage i's per-key state dict.

    The function's parameters: the batch iterator, then one append function per output
    port of the tail (for a route, one dict of them), or the batch sink's list append.
    """
    explicit = explicit_counters(chain)
    counts = "(" + "".join(f"c{i}, " for i in explicit) + ")"
    names: dict[str, Any] = {
        "Bail": Bail,
        "MISSING": MISSING,
        "StageResultError": StageResultError,
        "UnknownRouteError": UnknownRouteError,
    }
    tail = chain.tail
    if tail.kind is StageKind.ROUTE:
        params = ["routes"]
    elif is_batch_sink(tail):
        params = ["a_sink"]
    elif tail.is_sink:
        params = []
    else:
        params = [f"a_{port}" for port in tail.outputs]
    out = _Writer()
    out.line(0, f"def fast(it0{''.join(', ' + p for p in params)}):")
    for index in explicit:
        out.line(1, f"c{index} = 0")
    out.line(1, "for x in it0:")
    depth = 2
    pending: list[str] = []
    last = len(chain.stages) - 1
    # After key_by, the pair (key, event) is kept in two locals rather than a tuple when
    # the next stage takes them apart anyway (stateful, fold): one tuple less per event.
    pair: tuple[str, str] | None = None
    for index, stage in enumerate(chain.stages):
        kind = stage.kind
        if pair is not None and kind not in (StageKind.STATEFUL, StageKind.FOLD):
            out.line(depth, f"x = ({pair[0]}, {pair[1]})")
            pair = None
        if index in explicit:
            out.line(depth, f"c{index} += 1")
        names[f"F{index}"] = stage.fn
        value = "x" if pair is None else f"({pair[0]}, {pair[1]})"
        bail = f"raise Bail({index}, {value}, e, ({''.join(p + ', ' for p in pending)}), {counts})"

        def guarded(code: str, depth: int = depth, bail: str = bail) -> None:
            out.line(depth, "try:")
            out.line(depth + 1, code)
            out.line(depth, "except Exception as e:")
            out.line(depth + 1, bail)

        if kind in (StageKind.STATEFUL, StageKind.FOLD):
            if pair is None:
                out.line(depth, f"k{index}, v{index} = x")
                key, val = f"k{index}", f"v{index}"
            else:
                key, val = pair
                pair = None
            names[f"S{index}"] = states[index]
            names[f"I{index}"] = stage.initial
        if kind is StageKind.MAP:
            guarded(f"x = F{index}(x)")
        elif kind is StageKind.FILTER:
            guarded(f"keep = F{index}(x)")
            out.line(depth, "if not keep:")
            out.line(depth + 1, "continue")
        elif kind is StageKind.INSPECT:
            guarded(f"F{index}(x)")
        elif kind is StageKind.KEY_BY:
            guarded(f"k{index} = F{index}(x)")
            if index < last and chain.stages[index + 1].kind in (
                StageKind.STATEFUL,
                StageKind.FOLD,
            ):
                pair = (f"k{index}", "x")
            else:
                out.line(depth, f"x = (k{index}, x)")
        elif kind is StageKind.MERGE:
            pass
        elif kind is StageKind.FLAT_MAP:
            indent = "    " * (depth + 1)
            guarded(f"ys = F{index}(x)\n{indent}ys = ys if type(ys) is list else list(ys)")
            out.line(depth, f"it{index} = iter(ys)")
            out.line(depth, f"for x in it{index}:")
            pending.append(f"({index}, it{index})")
            depth += 1
        elif kind is StageKind.STATEFUL:
            out.line(depth, f"st = S{index}.get({key}, MISSING)")
            if stage.method is not None:
                names[f"M{index}"] = stage.method
                out.line(depth, "if st is MISSING:")
                guarded(f"st = S{index}[{key}] = F{index}()", depth + 1)
                guarded(f"r = M{index}(st, {val})")
            else:
                start = f"I{index}()" if stage.initial is not None else "None"
                indent = "    " * (depth + 1)
                guarded(
                    f"r = F{index}({start} if st is MISSING else st, {val})\n"
                    f"{indent}if type(r) is not tuple or len(r) != 2: "
                    f"raise StageResultError(StageResultError.MESSAGE % (r,))"
                )
                out.line(depth, "st, r = r")
                out.line(depth, "if st is None:")
                out.line(depth + 1, f"S{index}.pop({key}, None)")
                out.line(depth, "else:")
                out.line(depth + 1, f"S{index}[{key}] = st")
            out.line(depth, "if r is None:")
            out.line(depth + 1, "continue")
            out.line(depth, f"x = ({key}, r)")
        elif kind is StageKind.FOLD:
            out.line(depth, f"acc = S{index}.get({key}, MISSING)")
            if stage.initial is not None:
                guarded(f"acc = F{index}(I{index}() if acc is MISSING else acc, {val})")
            else:  # reduce: a key's first value is its start
                out.line(depth, "if acc is MISSING:")
                out.line(depth + 1, f"acc = {val}")
                out.line(depth, "else:")
                guarded(f"acc = F{index}(acc, {val})", depth + 1)
            out.line(depth, f"S{index}[{key}] = acc")
            if stage.running:
                out.line(depth, f"x = ({key}, acc)")
            else:
                out.line(depth, "continue")
        elif kind is StageKind.BRANCH:
            guarded(f"keep = F{index}(x)")
            out.line(depth, "if keep:")
            out.line(depth + 1, "a_true(x)")
            out.line(depth, "else:")
            out.line(depth + 1, "a_false(x)")
        elif kind is StageKind.ROUTE:
            names[f"O{index}"] = stage.outputs
            indent = "    " * (depth + 1)
            guarded(
                f"r = F{index}(x)\n{indent}ap = routes.get(r)\n"
                f"{indent}if ap is None: raise UnknownRouteError(r, O{index})"
            )
            out.line(depth, "ap(x)")
        elif kind is StageKind.SINK:
            if is_batch_sink(stage):
                out.line(depth, "a_sink(x)")
            else:
                guarded(f"F{index}(x)")
        else:  # pragma: no cover - plan only fuses the kinds above
            raise AssertionError(f"cannot fuse {kind}")
        if index == last and kind in _PASSES_ON:
            out.line(depth, "a_out(x)")
    out.line(1, f"return {counts}")
    # Bind every name as a default argument: locals are the fastest lookups in CPython.
    bound = "".join(f", {name}={name}" for name in sorted(names) if name[0] in "FMISO")
    out.lines[0] = out.lines[0][:-2] + bound + "):"
    source = "\n".join(out.lines) + "\n"
    code = compile(source, f"<riverbed chain {chain.name}>", "exec")
    exec(code, names)
    return CompiledChain(run=names["fast"], explicit=explicit, source=source)


_PASSES_ON = frozenset(
    {
        StageKind.MAP,
        StageKind.FILTER,
        StageKind.INSPECT,
        StageKind.KEY_BY,
        StageKind.MERGE,
        StageKind.FLAT_MAP,
        StageKind.STATEFUL,
        StageKind.FOLD,
    }
)
