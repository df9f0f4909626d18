"""A flow's graph drawn as inline SVG, from the stages of the flow's JSON form (each
``{"name", "kind", "inputs": [[stage, port], ...]}``, as ``Flow.to_json`` writes them).

Layered left to right: a stage's column is one more than the deepest of its inputs
(sources first), its row its place among the stages of that column in flow order. Each
box names its stage and kind and shows its events in and out, which the run page updates
live (``data-field``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from riverbed._serve.ui.html import Html, h

__all__ = ["flow_graph_svg", "graph_stages"]

_W, _H = 168, 50  # a box
_DX, _DY = 216, 68  # from one column, one row, to the next
_PAD = 12
_NAME = 22  # characters of a name shown in a box; the whole name is its tooltip


def graph_stages(flow: Any) -> list[dict[str, Any]]:
    """The graph's part of a flow's JSON form, made from the flow itself (whose callables
    need not be importable by name, as the full JSON form needs)."""
    return [
        {
            "name": stage.name,
            "kind": stage.kind.value,
            "inputs": [[port.stage, port.name] for port in stage.inputs],
        }
        for stage in flow.stages
    ]


def _columns(stages: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each stage's column: 0 for a stage without inputs, else one past its inputs'."""
    column: dict[str, int] = {}
    for stage in stages:  # flow order puts inputs first; a forward input counts as 0
        inputs = [port[0] for port in stage.get("inputs", ())]
        column[stage["name"]] = 1 + max((column.get(name, 0) for name in inputs), default=-1)
    return column


def _positions(stages: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Each stage's box's top-left corner."""
    column = _columns(stages)
    rows: dict[int, int] = {}
    where: dict[str, tuple[int, int]] = {}
    for stage in stages:
        col = column[stage["name"]]
        row = rows.get(col, 0)
        rows[col] = row + 1
        where[stage["name"]] = (_PAD + col * _DX, _PAD + row * _DY)
    return where


def _edge(start: tuple[int, int], end: tuple[int, int]) -> Html:
    x1, y1 = start[0] + _W, start[1] + _H // 2
    x2, y2 = end[0], end[1] + _H // 2
    mid = (x1 + x2) // 2
    return (
        f'<path class="edge" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 2},{y2}" '
        'marker-end="url(#arrow)"/>'
    )


def _box(stage: Mapping[str, Any], corner: tuple[int, int], counts: tuple[int, int] | None) -> Html:
    name = str(stage["name"])
    shown = name if len(name) <= _NAME else name[: _NAME - 1] + "…"
    x, y = corner
    field = f"stage/{name}"
    shown_in, shown_out = (f"{n:,}" for n in counts) if counts else ("-", "-")
    return (
        f'<g class="node kind-{h(stage["kind"])}"><title>{h(name)} ({h(stage["kind"])})</title>'
        f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="6"/>'
        f'<text x="{x + 8}" y="{y + 17}" class="name">{h(shown)}</text>'
        f'<text x="{x + 8}" y="{y + 31}" class="kind">{h(stage["kind"])}</text>'
        f'<text x="{x + 8}" y="{y + 44}" class="counts">in '
        f'<tspan data-field="{h(field)}/events_in">{shown_in}</tspan> · out '
        f'<tspan data-field="{h(field)}/events_out">{shown_out}</tspan></text></g>'
    )


def flow_graph_svg(
    stages: Sequence[Mapping[str, Any]], counts: Mapping[str, tuple[int, int]] | None = None
) -> Html:
    """The SVG of a flow's graph (stages as in the flow's JSON form), with each stage's
    events in and out from ``counts`` where given; an input naming a stage not given
    draws no edge."""
    where = _positions(stages)
    width = max((x for x, _ in where.values()), default=0) + _W + _PAD
    height = max((y for _, y in where.values()), default=0) + _H + _PAD
    edges = [
        _edge(where[port[0]], where[stage["name"]])
        for stage in stages
        for port in stage.get("inputs", ())
        if port[0] in where
    ]
    counted = counts or {}
    boxes = [_box(s, where[s["name"]], counted.get(s["name"])) for s in stages]
    return (
        f'<svg class="graph" role="img" aria-label="flow graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        f"</defs>{''.join(edges)}{''.join(boxes)}</svg>"
    )
