"""Runs: create, read (by id or prefix), list, transition, update; on every backend."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riverbed as rb
from tests.store.conftest import NOW, WITH_STORE, make_run

S = rb.RunStatus


def test_create_then_get_round_trips(store: rb.Store) -> None:
    """A run with every field set reads back equal."""
    run = make_run(
        params={"n": 3, "names": ["a", "b"], "deep": {"x": None, "y": 1.5}},
        input=b"\x00\xffin",
        output=b"out",
        target="app:flow",
        started_at=NOW,
        ended_at=NOW + timedelta(seconds=1),
        error=rb.ErrorInfo("parse", "ValueError", "bad line", "Traceback..."),
        attempt=3,
        rerun_of="abc",
        worker="w1",
        lease_until=NOW + timedelta(seconds=30),
    )
    store.create_run(run)
    assert store.get_run(run.run_id) == run


def test_times_come_back_in_utc(store: rb.Store) -> None:
    """A time given in another zone reads back as the same instant, in UTC."""
    paris = datetime(2026, 5, 1, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    run = make_run(created_at=paris)
    store.create_run(run)
    got = store.get_run(run.run_id).created_at
    assert got == paris
    assert got.tzinfo == UTC


def test_naive_times_are_refused(store: rb.Store) -> None:
    """A naive datetime is a ValueError naming the field (its zone would be a guess)."""
    with pytest.raises(ValueError, match="created_at must be a timezone-aware datetime"):
        store.create_run(make_run(created_at=datetime(2026, 1, 1)))


def test_params_must_be_json(store: rb.Store) -> None:
    """Params that JSON cannot hold are refused with a ValueError."""
    with pytest.raises(ValueError, match="params must be JSON-able"):
        store.create_run(make_run(params={"x": object()}))
    with pytest.raises(ValueError, match="params must be JSON-able"):
        store.create_run(make_run(params={"x": float("nan")}))


def test_duplicate_run_id_is_refused(store: rb.Store) -> None:
    """Creating a run whose id exists raises DuplicateRunError naming it."""
    run = make_run()
    store.create_run(run)
    with pytest.raises(rb.DuplicateRunError, match=run.run_id) as caught:
        store.create_run(make_run(run_id=run.run_id))
    assert caught.value.run_id == run.run_id


def test_missing_run_says_how_to_find_runs(store: rb.Store) -> None:
    """get_run of an unknown id raises RunNotFoundError pointing to `riverbed runs list`."""
    with pytest.raises(rb.RunNotFoundError, match="riverbed runs list") as caught:
        store.get_run("nope")
    assert caught.value.run_id == "nope"
    assert isinstance(caught.value, LookupError)


def test_unique_prefix_finds_the_run(store: rb.Store) -> None:
    """A unique prefix of 6 or more characters finds a run; a shorter one does not."""
    run = make_run(run_id="0123456789abcdef")
    store.create_run(run)
    store.create_run(make_run(run_id="fedcba9876543210"))
    assert store.get_run("012345") == run
    assert store.get_run("0123456789") == run
    with pytest.raises(rb.RunNotFoundError):
        store.get_run("01234")


def test_ambiguous_prefix_lists_the_candidates(store: rb.Store) -> None:
    """A prefix matching several runs raises RunNotFoundError listing them."""
    store.create_run(make_run(run_id="abcdef-1"))
    store.create_run(make_run(run_id="abcdef-2"))
    with pytest.raises(rb.RunNotFoundError, match="ambiguous") as caught:
        store.get_run("abcdef")
    assert set(caught.value.candidates) == {"abcdef-1", "abcdef-2"}


def test_prefix_with_like_wildcards_matches_literally(store: rb.Store) -> None:
    """``%`` and ``_`` in a prefix are characters, not patterns."""
    store.create_run(make_run(run_id="abc_ef123"))
    store.create_run(make_run(run_id="abcdef456"))
    assert store.get_run("abc_ef").run_id == "abc_ef123"
    with pytest.raises(rb.RunNotFoundError):
        store.get_run("abc%ef")


def test_list_runs_newest_first_with_filters(store: rb.Store) -> None:
    """list_runs gives the newest first, filtered by flow and status, up to ``limit``."""
    runs = [
        make_run(flow="a", status=S.RUNNING),
        make_run(flow="b", status=S.SUCCEEDED),
        make_run(flow="a", status=S.FAILED),
        make_run(flow="a", status=S.RUNNING),
    ]
    for run in runs:
        store.create_run(run)
    assert store.list_runs() == runs[::-1]
    assert store.list_runs(flow="a") == [runs[3], runs[2], runs[0]]
    assert store.list_runs(status=S.RUNNING) == [runs[3], runs[0]]
    assert store.list_runs(flow="a", status=S.FAILED) == [runs[2]]
    assert store.list_runs(limit=2) == [runs[3], runs[2]]
    assert store.list_runs(flow="zzz") == []


def test_transition_sets_status_and_fields(store: rb.Store) -> None:
    """A legal transition writes the status and the given fields, and returns the record."""
    run = make_run()
    store.create_run(run)
    error = rb.ErrorInfo(None, "KeyError", "'k'", "tb")
    ended = NOW + timedelta(minutes=1)
    updated = store.transition(run.run_id, S.FAILED, ended_at=ended, error=error)
    assert updated == dataclasses.replace(run, status=S.FAILED, ended_at=ended, error=error)
    assert store.get_run(run.run_id) == updated


def test_transition_can_set_every_other_field(store: rb.Store) -> None:
    """transition accepts any RunRecord field but run_id and status."""
    run = make_run()
    store.create_run(run)
    fields = {
        "flow_version": "v2",
        "params": {"k": [1]},
        "output": b"o",
        "attempt": 2,
        "worker": "w",
        "lease_until": NOW,
        "started_at": NOW,
    }
    updated = store.transition(run.run_id, S.SUCCEEDED, **fields)
    assert updated == dataclasses.replace(run, status=S.SUCCEEDED, **fields)


def test_illegal_transition_changes_nothing(store: rb.Store) -> None:
    """An illegal transition raises InvalidTransitionError and leaves the run as it was."""
    run = make_run(status=S.SUCCEEDED)
    store.create_run(run)
    with pytest.raises(rb.InvalidTransitionError, match=f"run {run.run_id} cannot go"):
        store.transition(run.run_id, S.RUNNING, worker="w")
    assert store.get_run(run.run_id) == run


def test_transition_refuses_run_id_and_status_fields(store: rb.Store) -> None:
    """Fields that are not settable are a TypeError naming them."""
    run = make_run()
    store.create_run(run)
    with pytest.raises(TypeError, match="cannot set status"):
        store.transition(run.run_id, S.FAILED, status=S.FAILED)
    with pytest.raises(TypeError, match="cannot set colour"):
        store.transition(run.run_id, S.FAILED, colour="red")


def test_transition_of_missing_run(store: rb.Store) -> None:
    """Transitioning an unknown run raises RunNotFoundError."""
    with pytest.raises(rb.RunNotFoundError):
        store.transition("missing", S.RUNNING)


@given(old=st.sampled_from(S), new=st.sampled_from(S))
@settings(WITH_STORE, max_examples=36)
def test_store_transitions_follow_check_transition(
    store: rb.Store, old: rb.RunStatus, new: rb.RunStatus
) -> None:
    """For any pair of statuses, the store allows exactly what check_transition allows."""
    run = make_run(status=old)
    store.create_run(run)
    try:
        rb.check_transition(old, new)
    except rb.InvalidTransitionError:
        with pytest.raises(rb.InvalidTransitionError):
            store.transition(run.run_id, new)
        assert store.get_run(run.run_id).status is old
    else:
        assert store.transition(run.run_id, new).status is new


def _race(first: rb.Store, second: rb.Store, run_id: str) -> dict[rb.RunStatus, str]:
    """End ``run_id`` as SUCCEEDED through ``first`` and as CANCELLED through ``second`` at
    the same moment; say which won."""
    barrier = threading.Barrier(2)
    outcomes: dict[rb.RunStatus, str] = {}

    def end(store: rb.Store, status: rb.RunStatus) -> None:
        barrier.wait()
        try:
            store.transition(run_id, status)
            outcomes[status] = "won"
        except rb.InvalidTransitionError:
            outcomes[status] = "lost"

    threads = [
        threading.Thread(target=end, args=(first, S.SUCCEEDED)),
        threading.Thread(target=end, args=(second, S.CANCELLED)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_transitions_exactly_one_wins(store_url: str) -> None:
    """Of two racing transitions of one run (two connections), exactly one wins."""
    with rb.open_store(store_url) as first, rb.open_store(store_url) as second:
        for _ in range(5):
            run = make_run()
            first.create_run(run)
            outcomes = _race(first, second, run.run_id)
            assert sorted(outcomes.values()) == ["lost", "won"]
            winner = next(status for status, outcome in outcomes.items() if outcome == "won")
            assert second.get_run(run.run_id).status is winner


def test_update_run_sets_non_status_fields(store: rb.Store) -> None:
    """update_run changes the fields given and nothing else."""
    run = make_run()
    store.create_run(run)
    store.update_run(run.run_id, params={"new": True}, target="m:f")
    assert store.get_run(run.run_id) == dataclasses.replace(run, params={"new": True}, target="m:f")


def test_update_run_refuses_status_and_missing_runs(store: rb.Store) -> None:
    """update_run cannot change a status, and raises RunNotFoundError for unknown runs."""
    run = make_run()
    store.create_run(run)
    with pytest.raises(TypeError, match="use transition"):
        store.update_run(run.run_id, status=S.FAILED)
    with pytest.raises(rb.RunNotFoundError):
        store.update_run("missing", params={})
    with pytest.raises(rb.RunNotFoundError):
        store.update_run("missing")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    # Any text, NUL and lone surrogates included: JSON escapes them as \u0000 and \ud800.
    | st.text(st.characters(codec=None)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(codec=None)), inner, max_size=4)
    ),
    max_leaves=12,
)
times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(
    params=st.dictionaries(st.text(st.characters(codec=None)), json_values),
    data=st.none() | st.binary(),
    created_at=times,
    lease_until=st.none() | times,
    attempt=st.integers(min_value=1, max_value=2**31 - 1),
)
@settings(WITH_STORE, max_examples=25)
def test_any_run_round_trips(
    store: rb.Store,
    params: dict[str, object],
    data: bytes | None,
    created_at: datetime,
    lease_until: datetime | None,
    attempt: int,
) -> None:
    """Arbitrary JSON params, bytes and times survive a write and a read unchanged."""
    run = make_run(
        params=params,
        input=data,
        output=data,
        created_at=created_at,
        lease_until=lease_until,
        attempt=attempt,
    )
    store.create_run(run)
    assert store.get_run(run.run_id) == run


def test_params_with_nul_and_lone_surrogates_round_trip(store: rb.Store) -> None:
    """JSON params keep NUL characters and lone surrogates (escaped in the JSON text)."""
    run = make_run(params={"\x00key": ["\ud800", "a\x00b"]})
    store.create_run(run)
    assert store.get_run(run.run_id).params == run.params


def test_list_runs_pages_by_seek(store: rb.Store) -> None:
    """``before`` a run id gives the runs stored before it: the pages of a listing, each
    starting where the last one ended, with the filters kept, never a run twice."""
    runs = [make_run(flow="ab"[i % 2], status=S.RUNNING) for i in range(7)]
    for run in runs:
        store.create_run(run)
    pages: list[list[rb.RunRecord]] = []
    before = None
    while page := store.list_runs(limit=3, before=before):
        pages.append(page)
        before = page[-1].run_id
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [run for page in pages for run in page] == runs[::-1]
    assert store.list_runs(flow="a", before=runs[4].run_id) == [runs[2], runs[0]]
    assert store.list_runs(before=runs[0].run_id) == []


def test_list_runs_before_an_unknown_run_says_so(store: rb.Store) -> None:
    """Paging from a run that is not stored (pruned meanwhile) is an error naming it."""
    with pytest.raises(rb.RunNotFoundError, match="nosuchrun"):
        store.list_runs(before="nosuchrun")


def test_list_runs_since_a_time(store: rb.Store) -> None:
    """``since`` keeps the runs created at or after a time (a timezone-aware one)."""
    runs = [make_run(created_at=NOW + timedelta(minutes=i)) for i in range(4)]
    for run in runs:
        store.create_run(run)
    assert store.list_runs(since=NOW + timedelta(minutes=2)) == [runs[3], runs[2]]
    paris = timezone(timedelta(hours=2))
    assert store.list_runs(since=(NOW + timedelta(minutes=3)).astimezone(paris)) == [runs[3]]
    with pytest.raises(ValueError, match="timezone-aware"):
        store.list_runs(since=datetime(2026, 1, 1))


def test_list_runs_pages_through_many_runs(store: rb.Store) -> None:
    """Paging 1,000 runs of two flows in pages of 100 gives each run of the flow once,
    newest first (the dashboard's listing; its speed at 100,000 runs is in benchmarks)."""
    runs = [make_run(flow="ab"[i % 3 == 0]) for i in range(1000)]
    for run in runs:
        store.create_run(run)
    seen: list[str] = []
    before = None
    while page := store.list_runs(flow="b", limit=100, before=before):
        seen += [run.run_id for run in page]
        before = page[-1].run_id
    assert seen == [run.run_id for run in runs[::-1] if run.flow == "b"]
