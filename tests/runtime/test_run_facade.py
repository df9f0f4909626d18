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
