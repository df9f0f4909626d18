"""Run statuses and their transitions, independent of any backend."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import riverbed as rb
from riverbed._records import check_transition

S = rb.RunStatus
LEGAL = {
    (S.SCHEDULED, S.RUNNING),
    (S.SCHEDULED, S.CANCELLED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.CRASHED),
    (S.RUNNING, S.SCHEDULED),  # released by a worker shutting down
    (S.FAILED, S.RUNNING),
    (S.FAILED, S.SCHEDULED),
    (S.CRASHED, S.RUNNING),
    (S.CRASHED, S.SCHEDULED),
    (S.CANCELLED, S.RUNNING),
    (S.CANCELLED, S.SCHEDULED),
}


@given(st.sampled_from(S), st.sampled_from(S))
def test_check_transition_follows_the_table(old: rb.RunStatus, new: rb.RunStatus) -> None:
    """check_transition allows exactly the pairs of the documented table."""
    if (old, new) in LEGAL:
        check_transition(old, new)
    else:
        with pytest.raises(rb.InvalidTransitionError) as caught:
            check_transition(old, new, run_id="r1")
        assert caught.value.old is old
        assert caught.value.new is new
        assert caught.value.run_id == "r1"


def test_invalid_transition_message_names_run_and_legal_moves() -> None:
    """The message names the run, both statuses and what is legal instead."""
    with pytest.raises(rb.InvalidTransitionError) as caught:
        rb.check_transition(S.FAILED, S.SUCCEEDED, run_id="X")
    assert str(caught.value) == (
        "run X cannot go from failed to succeeded; legal from failed: running, scheduled"
    )
    assert isinstance(caught.value, ValueError)


def test_succeeded_is_final() -> None:
    """SUCCEEDED has no successor, and the message says so."""
    assert S.SUCCEEDED.final
    assert S.SUCCEEDED.successors == ()
    with pytest.raises(rb.InvalidTransitionError, match=r"nothing \(it is final\)"):
        check_transition(S.SUCCEEDED, S.RUNNING)


def test_status_properties() -> None:
    """``ended`` is true for every status but SCHEDULED and RUNNING; only SUCCEEDED is final."""
    assert {s for s in S if s.ended} == {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.CRASHED}
    assert {s for s in S if s.final} == {S.SUCCEEDED}
    assert {(old, new) for old in S for new in old.successors} == LEGAL


def test_status_values_are_lower_case_names() -> None:
    """Stored values are the lower-case member names, for both enums."""
    for enum in (rb.RunStatus, rb.StageStatus):
        for member in enum:
            assert member.value == member.name.lower()


def test_store_errors_subclass_the_fitting_builtins() -> None:
    """Store errors subclass RuntimeError, LookupError or ValueError as fits."""
    assert issubclass(rb.StoreVersionError, rb.StoreError)
    assert issubclass(rb.DuplicateRunError, rb.StoreError)
    assert issubclass(rb.StoreError, RuntimeError)
    assert issubclass(rb.RunNotFoundError, LookupError)
    assert issubclass(rb.InvalidTransitionError, ValueError)


def test_run_status_is_the_same_object_everywhere() -> None:
    """The runners' RunStatus is the store's (it moved; nothing kept a copy)."""
    from riverbed._runtime.result import RunStatus

    assert RunStatus is rb.RunStatus


def test_records_pickle_by_their_public_names() -> None:
    """Records cross process boundaries (workers, Ray): they pickle as ``riverbed.<Name>``."""
    import pickle
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    records = [
        rb.RunRecord(
            run_id="r",
            flow="f",
            flow_version="v",
            status=S.CRASHED,
            created_at=now,
            error=rb.ErrorInfo(None, "E", "m", "tb"),
        ),
        rb.StageRun("r", "s", rb.StageKind.MAP, rb.StageStatus.PENDING),
        rb.Checkpoint("r", 1, "v", {"src": {"0": 1}}, {"s": b"x"}, now),
        rb.DeadLetterRecord(1, "r", "f", "s", b"e", "'e'", "E", "m", "tb", 1, now),
        rb.StepRecord("r", 0, "s", b"o", now),
    ]
    for record in records:
        assert type(record).__module__ == "riverbed"
        assert pickle.loads(pickle.dumps(record)) == record


def test_both_stores_implement_the_protocol_with_its_signatures() -> None:
    """SQLiteStore and PostgresStore have every Store method, with the protocol's signature."""
    import inspect

    from riverbed._store.postgres import PostgresStore
    from riverbed._store.sqlite import SQLiteStore

    protocols = [cls for cls in rb.Store.__mro__ if getattr(cls, "_is_protocol", False)]
    methods = {
        name
        for protocol in protocols
        for name, value in vars(protocol).items()
        if callable(value) and (not name.startswith("_") or name in ("__enter__", "__exit__"))
    }
    assert len(methods) >= 25
    for cls in (SQLiteStore, PostgresStore):
        for name in methods:
            expected = inspect.signature(getattr(rb.Store, name))
            actual = inspect.signature(getattr(cls, name))
            assert list(actual.parameters) == list(expected.parameters), (cls, name)
            for param in expected.parameters.values():
                assert actual.parameters[param.name].default == param.default, (cls, name)
                assert actual.parameters[param.name].kind == param.kind, (cls, name)
