"""The front door of a run: its options declared once, and blocking calls refused clearly
inside a running event loop (a notebook's), pointing to the awaitable form."""

from __future__ import annotations

import asyncio

import pytest

import riverbed as rb
from riverbed._runtime.config import RunConfig, RunOptions


def test_run_options_are_exactly_the_run_configuration_fields():
    import dataclasses

    fields = {field.name for field in dataclasses.fields(RunConfig)}
    assert set(RunOptions.__annotations__) == fields


def test_flow_run_documents_every_option():
    for name in RunOptions.__annotations__:
        assert f"``{name}``" in (rb.Flow.run.__doc__ or ""), name


def _stream() -> rb.Flow:
    flow = rb.Flow("in-loop")
    flow.source([1, 2]).sink(lambda e: None)
    return flow


def test_flow_run_inside_an_event_loop_says_to_await_arun():
    async def notebook_cell() -> None:
        _stream().run(store=False)

    with pytest.raises(RuntimeError, match=r"await flow\.arun\(\.\.\.\)"):
        asyncio.run(notebook_cell())


def test_rb_run_inside_an_event_loop_says_to_await_rb_arun():
    flow = rb.Flow("wf-in-loop")
    flow.input().map(str.upper).output()

    async def notebook_cell() -> rb.RunResult:
        with pytest.raises(RuntimeError, match=r"await rb\.arun\(flow, input"):
            rb.run(flow, "x", store=False)
        return await rb.arun(flow, "x", store=False)

    assert asyncio.run(notebook_cell()).output == "X"


def test_flow_arun_works_inside_the_loop():
    async def notebook_cell() -> rb.RunResult:
        return await _stream().arun(store=False)

    assert asyncio.run(notebook_cell()).ok


# -- rb.run: one entry for every kind of flow ----------------------------------------------


def _workflow(name: str, calls: list[str]) -> rb.Flow:
    def shout(text: str) -> str:
        calls.append(text)
        return text.upper()

    flow = rb.Flow(name)
    flow.input().map(shout, name="shout").output()
    return flow


def test_rb_run_runs_a_stream_given_no_input():
    flow = rb.Flow("stream-by-rb-run")
    seen: list[int] = []
    flow.source([1, 2, 3]).map(lambda n: n * 2, name="double").sink(seen.append)
    result = rb.run(flow, store=False, progress=False)
    assert result.ok
    assert seen == [2, 4, 6]
    assert result.stages["double"].events_out == 3


def test_rb_run_refuses_stream_options_for_a_workflow_naming_them():
    with pytest.raises(TypeError, match=r"workflow, which takes no batch_size, seed"):
        rb.run(_workflow("wf-options", []), "x", store=False, batch_size=10, seed=3)


def test_a_workflow_takes_the_options_that_ask_for_what_it_does(tmp_path):
    """progress=False, raise_on_failure (a FAILED workflow is returned either way),
    checkpoint_interval (every step is committed) and params (recorded with the run) are
    taken by a workflow too, so that whoever runs a stored run again needs not ask which
    kind of flow it holds; progress=True, which it cannot show, is refused by name."""
    store = f"sqlite:///{tmp_path}/runs.db"
    flow = _workflow("wf-same-options", [])
    common = {"progress": False, "raise_on_failure": False, "checkpoint_interval": 3.0}
    result = rb.run(flow, "ada", store=store, params={"who": "ada"}, **common)
    assert result.output == "ADA"
    with rb.open_store(store) as opened:
        assert opened.get_run(result.run_id).params == {"who": "ada"}
    with pytest.raises(TypeError, match=r"workflow, which takes no progress"):
        rb.run(flow, "x", store=False, progress=True)


def test_a_workflow_rerun_of_a_run_uses_its_recorded_input(tmp_path):
    store = f"sqlite:///{tmp_path}/runs.db"
    calls: list[str] = []
    flow = _workflow("wf-rerun", calls)
    first = rb.run(flow, "ada", store=store)
    again = rb.run(flow, store=store, rerun_of=first.run_id)
    assert again.run_id != first.run_id
    assert again.output == "ADA"
    assert calls == ["ada", "ada"]  # called again: a re-run is not a replay
    with rb.open_store(store) as opened:
        assert opened.get_run(again.run_id).rerun_of == first.run_id
