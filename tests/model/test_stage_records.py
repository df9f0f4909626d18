"""Stage kinds as records of their own: each kind's record, settings and JSON form come
from one table (``KINDS``), and a record of the wrong class for its kind is refused."""

from __future__ import annotations

import dataclasses

import pytest

import riverbed as rb
from riverbed._model.stages import KINDS
from tests.model import flowlib


def test_every_builder_makes_the_record_of_its_kind() -> None:
    """Every stage the builders make is exactly the record ``KINDS`` names for its kind."""
    flow = flowlib.full_flow()
    kinds = {stage.kind for stage in flow.stages}
    assert {rb.StageKind.STATEFUL, rb.StageKind.FOLD, rb.StageKind.SINK} <= kinds
    for stage in flow.stages:
        assert type(stage) is KINDS[stage.kind].record, stage.name


def test_kind_settings_live_on_their_kind_only() -> None:
    """``method`` is a stateful stage's, ``running`` a fold's, ``sink_mode`` a sink's."""
    flow = flowlib.full_flow()
    by_name = {stage.name: stage for stage in flow.stages}
    assert isinstance(by_name["add"], rb.StatefulStage)
    assert by_name["add"].method is flowlib.Average.add
    assert by_name["add"].function is flowlib.Average.add  # what messages name
    fold = next(s for s in flow.stages if isinstance(s, rb.FoldStage) and s.running)
    assert fold.initial is flowlib.zero
    for stage in flow.stages:
        assert hasattr(stage, "sink_mode") == stage.is_sink
        assert hasattr(stage, "running") == (stage.kind is rb.StageKind.FOLD)


@pytest.mark.parametrize(
    ("kind", "record"),
    [
        (rb.StageKind.STATEFUL, "StatefulStage"),
        (rb.StageKind.FOLD, "FoldStage"),
        (rb.StageKind.SINK, "SinkStage"),
    ],
)
def test_a_plain_stage_of_a_kind_with_its_own_record_is_refused(
    kind: rb.StageKind, record: str
) -> None:
    """``rb.Stage(kind=SINK)`` says which record to make instead."""
    with pytest.raises(rb.FlowDefinitionError, match=f"riverbed.{record}") as caught:
        rb.Stage(name="s", kind=kind, inputs=(rb.Port("src"),), fn=print)
    assert caught.value.stage == "s"


def test_a_record_of_another_kind_is_refused() -> None:
    """A SinkStage saying it is a map, or the shared base of the keyed kinds, is refused."""
    with pytest.raises(
        rb.FlowDefinitionError,
        match=r"a map stage \(one output per event\) is a Stage, not a SinkStage",
    ):
        rb.SinkStage(name="s", kind=rb.StageKind.MAP, fn=print)
    with pytest.raises(rb.FlowDefinitionError, match="FoldStage"):
        rb.KeyedStateStage(name="s", kind=rb.StageKind.FOLD, fn=flowlib.add)


def test_a_sink_record_takes_its_mode_from_its_target() -> None:
    """Without ``sink_mode``, a sink object is written a batch at a time, a callable per
    event; replacing the target keeps the mode given."""
    by_object = rb.SinkStage(name="o", kind=rb.StageKind.SINK, fn=flowlib.Printer())
    by_event = rb.SinkStage(name="e", kind=rb.StageKind.SINK, fn=print)
    assert (by_object.sink_mode, by_event.sink_mode) == (rb.SinkMode.OBJECT, rb.SinkMode.EVENT)
    assert by_object.outputs == ()
    batch = dataclasses.replace(by_event, sink_mode=rb.SinkMode.BATCH)
    assert batch.sink_mode is rb.SinkMode.BATCH


def test_the_json_form_keeps_records_and_their_settings() -> None:
    """A flow read back from its JSON has the same records, settings and version."""
    flow = flowlib.full_flow()
    again = rb.Flow.from_json(flow.to_json())
    assert again.version == flow.version
    for before, after in zip(flow.stages, again.stages, strict=True):
        assert type(after) is type(before)
        assert after.kind_settings() == before.kind_settings()
        assert list(after.callables()) == list(before.callables())
