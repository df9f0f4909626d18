"""A store opened ``read_only`` (what ``riverbed runs list`` and ``show`` use) reads what
others wrote and can write nothing, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

import riverbed as rb
from tests.store.conftest import make_letter, make_run, make_stage_run


def test_read_only_store_reads_and_refuses_every_write(store_url: str) -> None:
    """Runs, history, stage runs and dead letters written by a writable store are read
    through a read-only one; a write through it is a StoreError that says read-only, and
    nothing of it is kept."""
    run = make_run()
    with rb.open_store(store_url) as writer:
        writer.create_run(run)
        writer.save_stage_runs(run.run_id, [make_stage_run(run.run_id)])
        writer.add_dead_letters([make_letter(run.run_id)])
    with rb.open_store(store_url, read_only=True) as reader:
        assert reader.get_run(run.run_id[:8]).run_id == run.run_id
        assert [t.status for t in reader.history(run.run_id)] == [rb.RunStatus.RUNNING]
        assert [s.stage for s in reader.stage_runs(run.run_id)] == ["parse"]
        assert len(reader.dead_letters(run_id=run.run_id)) == 1
        with pytest.raises(rb.StoreError, match="read-only"):
            reader.transition(run.run_id, rb.RunStatus.CRASHED)
        with pytest.raises(rb.StoreError, match="read-only"):
            reader.mark_replayed([1], "someone")
    with rb.open_store(store_url) as writer:
        assert writer.get_run(run.run_id).status is rb.RunStatus.RUNNING


def test_read_only_opening_of_a_new_store_creates_it(store_url: str) -> None:
    """Nothing recorded yet: the read-only opening creates the empty store (once, with
    write access) and lists no runs, as a writable one would."""
    with rb.open_store(store_url, read_only=True) as reader:
        assert reader.list_runs() == []
