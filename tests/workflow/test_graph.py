"""Workflows from graphs given as data: ``rb.workflow_from_graph``; fan-in modes,
branches at once, records and resume, validation naming the bad node or edge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from tests.workflow import graph_steps
from tests.workflow.graph_steps import HANDLERS, calls


def node(node_id: str, kind: str, tmp: Path, **inline: Any) -> dict[str, Any]:
    """A node of type ``kind`` whose inline input names it and the test's directory."""
    return {"id": node_id, "type": kind, "input": {"name": node_id, "dir": str(tmp), **inline}}


def diamond(tmp: Path) -> dict[str, Any]:
    """a -> b, a -> c, (b, c) -> d: every node adds its value to its inputs' values."""
    return {
        "name": "diamond",
        "nodes": [
            node("a", "add", tmp, value=1),
            node("b", "add", tmp, value=10),
            node("c", "add", tmp, value=100),
            node("d", "add", tmp, value=1000),
        ],
        "edges": [["a", "b"], ["a", "c"], ["b", "d"], ["c", "d"]],
    }


def test_diamond_runs_each_node_once_and_records_it(on_runner: str, tmp_path: Path) -> None:
    """A diamond graph runs every node once, the join after both branches, and the store
    holds one step per node."""
    url = f"sqlite:///{tmp_path}/runs.db"
    flow = rb.workflow_from_graph(diamond(tmp_path), HANDLERS)
    result = rb.run(flow, None, store=url)
    assert result.ok, result.error
    assert result.output == 1000 + (10 + 1) + (100 + 1)
    assert sorted(step.stage for step in result.steps) == ["a", "b", "c", "d"]
    assert [calls(tmp_path, name) for name in "abcd"] == [1, 1, 1, 1]
    with rb.open_store(url) as store:
        assert store.get_run(result.run_id).status is rb.RunStatus.SUCCEEDED
        assert {run.stage for run in store.stage_runs(result.run_id)} == set("abcd")


def test_a_root_without_inline_input_gets_the_runs_input(tmp_path: Path) -> None:
    """A node with no edges in and no inline input is called with the run's input; the
    output lists the outputs of every node nothing reads from."""
    graph = {
        "nodes": [{"id": "x", "type": "add"}, {"id": "y", "type": "add"}],
        "edges": [],
    }
    handlers = {"add": lambda loaded: loaded["value"] + 1}
    result = rb.run(rb.workflow_from_graph(json.dumps(graph), handlers), {"value": 4}, store=False)
    assert result.outputs == {"output": [5, 5]}


def test_independent_branches_run_at_once(on_runner: str, tmp_path: Path) -> None:
    """Two nodes that each wait for the other's mark finish: they run at the same time
    (one at a time, the first would wait for ever)."""
    graph = {
        "nodes": [
            node("left", "meet", tmp_path, partner="right"),
            node("right", "meet", tmp_path, partner="left"),
        ],
        "edges": [],
    }
    result = rb.run(rb.workflow_from_graph(graph, HANDLERS), None, store=False)
    assert result.ok, result.error
    assert sorted(result.outputs["output"]) == ["left", "right"]


def any_graph(tmp: Path, fan_in: str) -> dict[str, Any]:
    """fast and slow feed join (``fan_in``); slow ends only after join started, so join
    can start only on fast's arrival."""
    return {
        "name": "fan-in",
        "nodes": [
            node("fast", "source", tmp),
            node("slow", "slow", tmp, after="join"),
            node("other", "source", tmp),
            {**node("join", "first", tmp), "fan_in": fan_in},
        ],
        "edges": [["fast", "join"], ["slow", "join"], ["other", "join"]],
    }


def test_fan_in_any_starts_on_the_first_arrival(on_runner: str, tmp_path: Path) -> None:
    """With fan_in "any", the join starts on the first upstream to finish, is given that
    one only, and the later arrivals are ignored and counted in its stage run."""
    url = f"sqlite:///{tmp_path}/runs.db"
    graph = any_graph(tmp_path, "any")
    graph["edges"] = [["fast", "join"], ["slow", "join"]]
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != "other"]
    result = rb.run(rb.workflow_from_graph(graph, HANDLERS), None, store=url)
    assert result.ok, result.error
    assert result.outputs["output"] == [["fast"]]
    assert calls(tmp_path, "join") == 1
    assert calls(tmp_path, "slow") == 1  # it ran to its end, after the join started
    with rb.open_store(url) as store:
        join = next(run for run in store.stage_runs(result.run_id) if run.stage == "join")
    assert join.skipped == 1
    assert result.stages["join"].skipped == 1


def test_fan_in_count_starts_after_n_arrivals(on_runner: str, tmp_path: Path) -> None:
    """With fan_in "count:2" of three, the join starts once two finished and is given
    those two; the third (which ends only after the join started) is ignored."""
    result = rb.run(
        rb.workflow_from_graph(any_graph(tmp_path, "count:2"), HANDLERS), None, store=False
    )
    assert result.ok, result.error
    assert result.outputs["output"] == [["fast", "other"]]
    assert result.stages["join"].skipped == 1


def test_fan_in_all_waits_for_every_upstream(tmp_path: Path) -> None:
    """With fan_in "all" (the default) the join gets every upstream output, in edge order."""
    graph = {
        "nodes": [
            node("p", "source", tmp_path),
            node("q", "source", tmp_path),
            {"id": "j", "type": "keys"},
        ],
        "edges": [["q", "j"], ["p", "j"]],
    }
    handlers = {**HANDLERS, "keys": lambda loaded: list(loaded)}
    result = rb.run(rb.workflow_from_graph(graph, handlers), None, store=False)
    assert result.output == ["q", "p"]


def test_a_failed_branch_resumes_without_calling_recorded_nodes(
    store: rb.Store, tmp_path: Path
) -> None:
    """A branch that fails ends the run FAILED; resumed after the fix, the nodes recorded
    are replayed, not called, and the run ends with every node's contribution."""
    graph = {
        "nodes": [
            node("root", "add", tmp_path, value=1),
            node("pay", "flaky", tmp_path),
            node("join", "add", tmp_path, value=0),
        ],
        "edges": [["root", "pay"], ["root", "join"], ["pay", "join"]],
    }
    flow = rb.workflow_from_graph(graph, HANDLERS)
    (tmp_path / "broken").touch()
    failed = rb.run(flow, None, store=store)
    assert failed.status is rb.RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.stage == "pay"
    (tmp_path / "broken").unlink()
    resumed = rb.run(flow, store=store, resume=failed.run_id)
    assert resumed.ok, resumed.error
    assert resumed.output == 1 + 100
    assert "root" in resumed.replayed
    assert calls(tmp_path, "root") == 1
    assert calls(tmp_path, "pay") == 2


def test_node_retry_from_the_graph(tmp_path: Path) -> None:
    """A node's ``retry`` dict is an ``rb.Retry``: a node failing once then succeeding
    ends the run SUCCEEDED with one retry counted."""
    attempts: list[int] = []

    def once(loaded: Any) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("blip")
        return "ok"

    graph = {"nodes": [{"id": "n", "type": "once", "retry": {"attempts": 2, "backoff": 0}}]}
    result = rb.run(rb.workflow_from_graph(graph, {"once": once}), None, store=False)
    assert result.output == "ok"
    assert result.stages["n"].retries == 1


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"nodes": [{"id": "a", "type": "nope"}]}, "node 'a' has type 'nope'"),
        ({"nodes": [{"id": "a", "type": "t"}], "edges": [["a", "z"]]}, r"edge #0 .* 'z'"),
        (
            {
                "nodes": [{"id": "a", "type": "t"}, {"id": "b", "type": "t"}],
                "edges": [["a", "b"], ["b", "a"]],
            },
            r"cycle among nodes \['a', 'b'\]",
        ),
        (
            {"nodes": [{"id": "a", "type": "t"}, {"id": "a", "type": "t"}]},
            "node 'a' is defined twice",
        ),
        (
            {
                "nodes": [{"id": "a", "type": "t"}, {"id": "b", "type": "t", "fan_in": "some"}],
                "edges": [["a", "b"]],
            },
            "node 'b': fan_in must be",
        ),
        (
            {
                "nodes": [{"id": "a", "type": "t"}, {"id": "b", "type": "t", "fan_in": "count:3"}],
                "edges": [["a", "b"]],
            },
            r"node 'b': fan_in 'count:3' needs N between 1 and its 1",
        ),
        ({"nodes": [{"id": "output", "type": "t"}]}, "node 'output'"),
        (
            {"nodes": [{"id": "a", "type": "t", "colour": 1}]},
            r"node 'a' has unknown key\(s\) \['colour'\]",
        ),
        ({"nodes": [{"id": "a", "type": "t"}], "edges": [["a"]]}, r"edge #0 \['a'\]"),
        ({"nodes": []}, "non-empty list"),
    ],
)
def test_validation_names_the_bad_node_or_edge(graph: dict[str, Any], message: str) -> None:
    """A bad graph is a FlowDefinitionError naming the culprit node or edge."""
    with pytest.raises(rb.FlowDefinitionError, match=message):
        rb.workflow_from_graph(graph, {"t": len})


def test_steps_module_is_importable_by_name() -> None:
    """The handlers live in a module Ray's workers can import."""
    assert graph_steps.HANDLERS["add"] is graph_steps.add


def test_a_crash_while_a_branch_runs_resumes_only_what_was_not_recorded(
    store_url: str, tmp_path: Path
) -> None:
    """kill -9 the process while one branch hangs after the other branch was committed:
    resumed, the recorded nodes (the root and the finished branch) are replayed, not
    called; the hanging one runs again; the join gets both."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    run_id = "crash-graph-1"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.workflow.graph_steps", store_url, str(tmp_path), run_id],
        cwd=root,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with rb.open_store(store_url) as store:
            deadline = time.monotonic() + 30
            while not (tmp_path / "mark-hang").exists() or "quick" not in {
                step.stage for step in _steps(store, run_id)
            }:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the quick branch was never committed"
                time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    (tmp_path / "healed").touch()
    flow = rb.workflow_from_graph(
        graph_steps.crash_graph(str(tmp_path)), graph_steps.CRASH_HANDLERS
    )
    resumed = rb.run(flow, store=store_url, resume=run_id)
    assert resumed.ok, resumed.error
    assert resumed.output == [1 + 10, "healed"]
    assert sorted(resumed.replayed) == ["quick", "root"]
    assert [calls(tmp_path, name) for name in ("root", "quick", "hang")] == [1, 1, 2]
    with rb.open_store(store_url) as store:
        assert sorted(step.stage for step in store.steps(run_id)) == [
            "join",
            "quick",
            "root",
            "stuck",
        ]
        assert store.get_run(run_id).attempt == 2


def _steps(store: rb.Store, run_id: str) -> list[rb.StepRecord]:
    """The run's steps so far (none before the run exists)."""
    try:
        return store.steps(run_id)
    except rb.RunNotFoundError:
        return []


def test_first_batch_node_starts_on_the_first_streamed_batch(
    on_runner: str, tmp_path: Path
) -> None:
    """A node with start "first_batch" is called on each batch of its upstream generator
    node as it comes (the generator waits, after its first batch, for the node's mark);
    both are recorded steps, and other readers get the list of batches."""
    url = f"sqlite:///{tmp_path}/runs.db"
    graph = {
        "nodes": [
            node("numbers", "chunks", tmp_path, items=[1, 2, 3, 4, 5], after="total"),
            {"id": "total", "type": "total", "start": "first_batch"},
            {"id": "count", "type": "sizes"},
        ],
        "edges": [["numbers", "total"], ["numbers", "count"]],
    }
    result = rb.run(rb.workflow_from_graph(graph, HANDLERS), None, store=url)
    assert result.ok, result.error
    assert result.outputs["output"] == [[3, 7, 5], [2, 2, 1]]
    assert sorted(step.stage for step in result.steps) == ["count", "numbers", "total"]
    assert calls(tmp_path, "numbers") == 1


@pytest.mark.parametrize(
    ("nodes", "edges", "message"),
    [
        (
            [{"id": "a", "type": "plain"}, {"id": "b", "type": "t", "start": "first_batch"}],
            [["a", "b"]],
            "node 'b' starts on the first batch of 'a', whose handler .* yields no batches",
        ),
        (
            [{"id": "a", "type": "gen"}, {"id": "b", "type": "t", "start": "first_batch"}],
            [],
            r"node 'b': start 'first_batch' needs exactly one upstream node",
        ),
        (
            [{"id": "a", "type": "gen"}, {"id": "b", "type": "t", "start": "soon"}],
            [["a", "b"]],
            "node 'b': start must be 'ready' or 'first_batch'",
        ),
    ],
)
def test_first_batch_validation(nodes: list[Any], edges: list[Any], message: str) -> None:
    """A first-batch node needs one upstream node whose handler yields batches."""

    def gen(loaded: Any) -> Any:
        yield loaded

    with pytest.raises(rb.FlowDefinitionError, match=message):
        rb.workflow_from_graph(
            {"nodes": nodes, "edges": edges}, {"t": len, "plain": len, "gen": gen}
        )


def test_a_node_without_enough_arrivals_does_not_run() -> None:
    """An upstream node dropped by its on_error "skip" delivers nothing: a join that
    needs it ("all") does not run, one that needs one ("any") runs on the other."""

    def broken(loaded: Any) -> Any:
        raise ValueError("bad row")

    graph = {
        "nodes": [
            {"id": "ok", "type": "one"},
            {"id": "bad", "type": "broken", "on_error": "skip"},
            {"id": "both", "type": "keys"},
            {"id": "either", "type": "keys", "fan_in": "any"},
        ],
        "edges": [["ok", "both"], ["bad", "both"], ["ok", "either"], ["bad", "either"]],
    }
    handlers = {"one": lambda _: 1, "broken": broken, "keys": lambda loaded: sorted(loaded)}
    result = rb.run(rb.workflow_from_graph(graph, handlers), None, store=False)
    assert result.ok, result.error
    assert result.outputs["output"] == [["ok"]]
    assert "both" not in result.stages
    assert result.stages["bad"].skipped == 1


def test_a_nodes_version_follows_its_handlers_code() -> None:
    """The same graph with another handler for a type is another version (a re-run must
    not take steps recorded by the old code); the same handlers, the same version."""
    graph = {"nodes": [{"id": "x", "type": "step", "input": {"value": 1}}], "edges": []}

    def version(handler: Any) -> str:
        return rb.workflow_from_graph(graph, {"step": handler}).version

    assert version(graph_steps.add) == version(graph_steps.add)
    assert version(graph_steps.add) != version(graph_steps.total)
