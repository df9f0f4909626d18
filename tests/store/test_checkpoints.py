"""Stage runs, checkpoints and dead letters; on every backend."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riverbed as rb
from tests.store.conftest import NOW, WITH_STORE, make_letter, make_run, make_stage_run, new_id


def _checkpoint(run_id: str, n: int, **states: bytes) -> rb.Checkpoint:
    return rb.Checkpoint(
        run_id=run_id,
        checkpoint_id=n,
        flow_version="v1",
        positions={"lines": {"0": n * 10, "1": {"offset": n, "file": "a.txt"}}},
        states=states,
        created_at=NOW + timedelta(seconds=n),
    )


@pytest.fixture
def run_id(store: rb.Store) -> str:
    """The id of a stored RUNNING run."""
    run = make_run()
    store.create_run(run)
    return run.run_id


def test_stage_runs_upsert_and_keep_first_order(store: rb.Store, run_id: str) -> None:
    """save_stage_runs inserts new stages and updates known ones in place, by first save."""
    first = [make_stage_run(run_id, "b"), make_stage_run(run_id, "a")]
    store.save_stage_runs(run_id, first)
    done = make_stage_run(
        run_id,
        "b",
        status=rb.StageStatus.SUCCEEDED,
        events_in=10,
        events_out=9,
        errors=1,
        retries=2,
        skipped=3,
        dead_lettered=4,
        seconds=1.25,
        started_at=NOW,
        ended_at=NOW + timedelta(seconds=2),
    )
    store.save_stage_runs(run_id, [done, make_stage_run(run_id, "c")])
    assert store.stage_runs(run_id) == [done, first[1], make_stage_run(run_id, "c")]
    assert store.stage_runs("other") == []


def test_stage_runs_of_another_run_are_refused(store: rb.Store, run_id: str) -> None:
    """A stage run whose run_id differs from the one given is a ValueError."""
    with pytest.raises(ValueError, match="belongs to run 'other'"):
        store.save_stage_runs(run_id, [make_stage_run("other")])


def test_checkpoint_round_trips(store: rb.Store, run_id: str) -> None:
    """A committed checkpoint reads back equal: positions, states (bytes) and times."""
    checkpoint = _checkpoint(run_id, 1, parse=b"\x80\x04state", empty=b"")
    store.commit_checkpoint(checkpoint)
    assert store.latest_checkpoint(run_id) == checkpoint


def test_checkpoint_without_states(store: rb.Store, run_id: str) -> None:
    """A checkpoint of a flow with no stateful stage has an empty ``states``."""
    checkpoint = _checkpoint(run_id, 1)
    store.commit_checkpoint(checkpoint)
    assert store.latest_checkpoint(run_id) == checkpoint


def test_no_checkpoint_is_none(store: rb.Store, run_id: str) -> None:
    """latest_checkpoint of a run that never checkpointed is None."""
    assert store.latest_checkpoint(run_id) is None


def test_checkpoint_commits_stage_runs_and_dead_letters(store: rb.Store, run_id: str) -> None:
    """commit_checkpoint stores the checkpoint, its stage runs and its dead letters."""
    stage_run = make_stage_run(run_id, events_in=5)
    letter = make_letter(run_id)
    store.commit_checkpoint(_checkpoint(run_id, 1, parse=b"s"), [stage_run], [letter])
    assert store.stage_runs(run_id) == [stage_run]
    [stored] = store.dead_letters(run_id=run_id)
    assert stored == dataclasses.replace(letter, id=stored.id)


def test_only_the_newest_two_checkpoints_are_kept(store: rb.Store, run_id: str) -> None:
    """After each commit, only the run's newest two checkpoints (and their states) remain."""
    other = make_run()
    store.create_run(other)
    store.commit_checkpoint(_checkpoint(other.run_id, 1, s=b"other"))
    for n in range(1, 6):
        store.commit_checkpoint(_checkpoint(run_id, n, s=bytes([n]), t=b"t"))
        assert store.latest_checkpoint(run_id) == _checkpoint(run_id, n, s=bytes([n]), t=b"t")
    kept = _kept(store, run_id)
    assert kept == {"checkpoints": [4, 5], "states": [4, 4, 5, 5]}
    assert store.latest_checkpoint(other.run_id) == _checkpoint(other.run_id, 1, s=b"other")


def _kept(store: rb.Store, run_id: str) -> dict[str, list[int]]:
    """The checkpoint ids stored for ``run_id``, read under the store's API: of their
    heads, and of their stages' states (each checkpoint's own row of metadata aside)."""
    from riverbed._store.codec import META_STAGE
    from riverbed._store.sql import SQLStore

    assert isinstance(store, SQLStore)
    with store.core.database.statement() as tx:
        tx.execute(
            "SELECT checkpoint_id FROM riverbed_checkpoints WHERE run_id = ? ORDER BY 1",
            (run_id,),
        )
        checkpoints = [row[0] for row in tx.fetchall()]
        tx.execute(
            "SELECT checkpoint_id FROM riverbed_checkpoint_states WHERE run_id = ? AND stage <> ? "
            "ORDER BY 1",
            (run_id, META_STAGE),
        )
        states = [row[0] for row in tx.fetchall()]
    return {"checkpoints": checkpoints, "states": states}


def test_checkpoint_commit_is_all_or_nothing(store: rb.Store, run_id: str) -> None:
    """A commit that fails at its last dead letter stores none of its parts."""
    before = make_stage_run(run_id, events_in=1)
    store.commit_checkpoint(_checkpoint(run_id, 1, s=b"one"), [before], [make_letter(run_id)])
    broken = make_letter(run_id, event=None)  # NOT NULL: fails after everything else
    with pytest.raises(rb.StoreError):
        store.commit_checkpoint(
            _checkpoint(run_id, 2, s=b"two"),
            [make_stage_run(run_id, events_in=2)],
            [make_letter(run_id, message="new"), broken],
        )
    assert store.latest_checkpoint(run_id) == _checkpoint(run_id, 1, s=b"one")
    assert store.stage_runs(run_id) == [before]
    assert [letter.message for letter in store.dead_letters(run_id=run_id)] == ["bad"]
    assert _kept(store, run_id) == {"checkpoints": [1], "states": [1]}


def test_duplicate_checkpoint_id_is_a_store_error(store: rb.Store, run_id: str) -> None:
    """Committing a checkpoint id twice for one run fails and keeps the first."""
    store.commit_checkpoint(_checkpoint(run_id, 1, s=b"first"))
    with pytest.raises(rb.StoreError):
        store.commit_checkpoint(_checkpoint(run_id, 1, s=b"second"))
    assert store.latest_checkpoint(run_id) == _checkpoint(run_id, 1, s=b"first")


def test_latest_checkpoint_without_states(store: rb.Store, run_id: str) -> None:
    """``states=False`` reads the newest checkpoint's head, counters and positions without
    its states (what the dashboard polls)."""
    checkpoint = dataclasses.replace(
        _checkpoint(run_id, 2, parse=b"state" * 1000), counters={"parse": {"events_in": 5}}
    )
    store.commit_checkpoint(_checkpoint(run_id, 1, parse=b"old"))
    store.commit_checkpoint(checkpoint)
    assert store.latest_checkpoint(run_id, states=False) == dataclasses.replace(
        checkpoint, states={}
    )
    assert store.latest_checkpoint(run_id) == checkpoint
    assert store.latest_checkpoint("no-such-run", states=False) is None


def test_dead_letters_get_ids_and_filter(store: rb.Store, run_id: str) -> None:
    """Dead letters get increasing ids and filter by run, flow, stage; oldest first."""
    letters = [
        make_letter(run_id, stage="parse"),
        make_letter(run_id, stage="save"),
        make_letter("other-run", flow="other", stage="parse"),
    ]
    ids = store.add_dead_letters(letters)
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    stored = [dataclasses.replace(letter, id=i) for letter, i in zip(letters, ids, strict=True)]
    assert store.dead_letters() == stored
    assert store.dead_letters(run_id=run_id) == stored[:2]
    assert store.dead_letters(flow="other") == stored[2:]
    assert store.dead_letters(stage="parse") == [stored[0], stored[2]]
    assert store.dead_letters(flow="flow", stage="save") == [stored[1]]
    assert store.dead_letters(limit=1) == stored[:1]
    assert store.add_dead_letters([]) == []


def test_mark_replayed(store: rb.Store, run_id: str) -> None:
    """mark_replayed records the replaying run; ``replayed=`` filters on it."""
    ids = store.add_dead_letters([make_letter(run_id) for _ in range(3)])
    store.mark_replayed(ids[:2], by_run="replay-1")
    store.mark_replayed([], by_run="nobody")
    assert [letter.id for letter in store.dead_letters(replayed=True)] == ids[:2]
    assert [letter.id for letter in store.dead_letters(replayed=False)] == ids[2:]
    assert {letter.replayed_by for letter in store.dead_letters(replayed=True)} == {"replay-1"}


def test_discard_dead_letters(store: rb.Store, run_id: str) -> None:
    """discard_dead_letters deletes pending letters by id and says how many; a replayed
    letter (the replay's record) and an unknown id are left alone."""
    ids = store.add_dead_letters([make_letter(run_id) for _ in range(3)])
    store.mark_replayed(ids[:1], by_run="replay-1")
    assert store.discard_dead_letters([*ids[:2], 10**9]) == 1
    assert [letter.id for letter in store.dead_letters()] == [ids[0], ids[2]]
    assert store.discard_dead_letters([]) == 0


# No NUL (PostgreSQL text cannot hold it) and no lone surrogates (UTF-8 cannot).
names = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=20
)
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | names
)


@given(
    positions=st.dictionaries(names, st.dictionaries(names, json_leaf, max_size=3), max_size=3),
    states=st.dictionaries(names, st.binary(max_size=300), max_size=4),
    event=st.binary(max_size=300),
    text=names,
)
@settings(WITH_STORE, max_examples=20)
def test_any_checkpoint_and_dead_letter_round_trips(
    store: rb.Store,
    positions: dict[str, dict[str, object]],
    states: dict[str, bytes],
    event: bytes,
    text: str,
) -> None:
    """Arbitrary JSON positions, state bytes, event bytes and texts survive unchanged."""
    run_id = new_id()
    checkpoint = rb.Checkpoint(run_id, 1, "v", positions, states, NOW)  # type: ignore[arg-type]
    letter = make_letter(run_id, event=event, event_repr=text, message=text, traceback=text)
    store.commit_checkpoint(checkpoint, dead_letters=[letter])
    assert store.latest_checkpoint(run_id) == checkpoint
    [stored] = store.dead_letters(run_id=run_id)
    assert stored == dataclasses.replace(letter, id=stored.id)


def test_surrogates_in_diagnostic_text_are_escaped(store: rb.Store, run_id: str) -> None:
    """Lone surrogates in messages and reprs are stored escaped, not lost."""
    bad = "open('\udcff.txt') failed"
    [letter_id] = store.add_dead_letters([make_letter(run_id, message=bad, event_repr=bad)])
    [stored] = store.dead_letters(run_id=run_id)
    assert stored.id == letter_id
    assert stored.message == stored.event_repr == "open('\\udcff.txt') failed"
    error = rb.ErrorInfo("parse", "OSError", bad, bad)
    assert store.transition(run_id, rb.RunStatus.FAILED, error=error).error == rb.ErrorInfo(
        "parse", "OSError", "open('\\udcff.txt') failed", "open('\\udcff.txt') failed"
    )


def test_a_checkpoints_own_data_are_fields_that_round_trip(store: rb.Store, run_id: str) -> None:
    """Counters, finished chains, stage versions and the drained mark are the record's
    fields, stored and read back as given; they never appear among the stages' states."""
    checkpoint = dataclasses.replace(
        _checkpoint(run_id, 1, fold=b"state"),
        counters={"fold": {"events_in": 7, "seconds": 0.5}},
        finished=("fold",),
        stage_versions={"fold": "abc", "lines": "def"},
        ended=True,
    )
    store.commit_checkpoint(checkpoint)
    back = store.latest_checkpoint(run_id)
    assert back == checkpoint
    assert set(back.states) == {"fold"}


def test_a_checkpoint_without_own_data_reads_back_with_the_defaults(
    store: rb.Store, run_id: str
) -> None:
    store.commit_checkpoint(_checkpoint(run_id, 1, fold=b"state"))
    back = store.latest_checkpoint(run_id)
    assert back is not None
    assert (back.counters, back.finished, back.stage_versions, back.ended) == ({}, (), {}, False)
