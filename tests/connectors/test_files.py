"""FileSource and FileSink: lines, JSON Lines and CSV, globs and directories, .gz, byte
offsets that resume exactly, follow mode, dead letters for undecodable lines, and part
files committed once per checkpoint."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed.connectors import FileSink, FileSource
from riverbed.testing import Capture


def _run(source: Any, **options: Any) -> tuple[list[Any], rb.RunResult]:
    seen = Capture()
    flow = rb.Flow("files")
    flow.source(source, name="read").sink(seen, name="out")
    result = flow.run(store=False, progress=False, **options)
    return seen.items, result


def test_lines_of_a_file_without_a_last_newline(tmp_path: Path) -> None:
    """Each line is an event without its newline; a last line without one is read too."""
    (tmp_path / "a.txt").write_text("one\ntwo\r\n\nthree")
    items, _ = _run(FileSource(tmp_path / "a.txt"))
    assert items == ["one", "two", "three"]


def test_a_glob_of_json_lines_and_gz_in_name_order(tmp_path: Path) -> None:
    """A glob reads its files in name order; a .gz file is decompressed."""
    (tmp_path / "b.jsonl").write_text('{"n": 3}\n{"n": 4}\n')
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as gz:
        gz.write('{"n": 1}\n{"n": 2}\n')
    items, _ = _run(FileSource(str(tmp_path / "*.jsonl*"), format="jsonl"), batch_size=3)
    assert items == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]


def test_csv_rows_by_header_in_a_directory(tmp_path: Path) -> None:
    """A directory reads every file in it; CSV rows are dicts by the header line."""
    (tmp_path / "x.csv").write_text('id,name\n1,a\n2,"b, c"\n')
    items, _ = _run(FileSource(tmp_path, format="csv"))
    assert items == [{"id": "1", "name": "a"}, {"id": "2", "name": "b, c"}]


def test_undecodable_lines_become_dead_letters_with_their_bytes(tmp_path: Path) -> None:
    """A line that is not JSON (or not UTF-8) is a dead letter with its raw bytes; the
    run goes on and succeeds."""
    (tmp_path / "a.jsonl").write_bytes(b'{"n": 1}\n{oops\n\xff\xfe\n{"n": 2}\n')
    items, result = _run(FileSource(tmp_path / "a.jsonl", format="jsonl"))
    assert items == [{"n": 1}, {"n": 2}]
    assert result.ok
    assert [letter.event for letter in result.dead_letters] == [b"{oops", b"\xff\xfe"]
    assert {letter.stage for letter in result.dead_letters} == {"read"}
    assert "could not decode b'{oops' as json" in result.dead_letters[0].message
    assert result.stages["read"].dead_lettered == 2


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A path that matches nothing fails the run naming it."""
    _, result = _run(FileSource(tmp_path / "nope.txt"), raise_on_failure=False)
    assert not result.ok
    assert "no file matches" in str(result.error)
    assert "nope.txt" in str(result.error)


def test_positions_are_byte_offsets_and_resume_exactly(tmp_path: Path) -> None:
    """Opened at a position (each file's byte offset), a reader goes on right after it,
    also in the middle of a CSV file or a .gz file."""
    (tmp_path / "a.csv").write_text("k,v\n1,x\n2,y\n3,z\n")
    source = FileSource(tmp_path / "a.csv", format="csv")
    reader = source.open("files", None)
    assert reader.read(2) == [{"k": "1", "v": "x"}, {"k": "2", "v": "y"}]
    position = reader.position()
    assert position == {str(tmp_path / "a.csv"): len("k,v\n1,x\n2,y\n")}
    again = source.open("files", json.loads(json.dumps(position)))
    assert again.read(10) == [{"k": "3", "v": "z"}]
    reader.close()
    again.close()
    with gzip.open(tmp_path / "b.gz", "wt") as gz:
        gz.write("".join(f"{i}\n" for i in range(10)))
    lines = FileSource(tmp_path / "b.gz")
    first = lines.open("files", None)
    assert first.read(4) == ["0", "1", "2", "3"]
    second = lines.open("files", first.position())
    assert second.read(100) == [str(i) for i in range(4, 10)]
    first.close()
    second.close()


def test_follow_reads_appended_lines_and_new_files(tmp_path: Path) -> None:
    """With follow=True, a half-written line waits for its newline, appended lines and
    new files are read as they come, and the reader never ends."""
    source = FileSource(tmp_path, follow=True, poll=0.01)
    reader = source.open("files", None)

    async def read() -> Any:
        batch = reader.read(100)
        return await batch if asyncio.isfuture(batch) else batch

    assert asyncio.run(read()) == []
    with open(tmp_path / "a.log", "w") as log:
        log.write("first\nsec")
        log.flush()
        assert asyncio.run(read()) == ["first"]
        log.write("ond\n")
        log.flush()
        assert asyncio.run(read()) == ["second"]
    (tmp_path / "b.log").write_text("third\n")
    assert asyncio.run(read()) == ["third"]
    assert asyncio.run(read()) == []
    reader.close()


def test_sink_writes_one_part_per_checkpoint_and_commits_once(tmp_path: Path) -> None:
    """FileSink renames each checkpoint's part into place at commit, once per key; a
    commit repeated (a resume) changes nothing; an older uncommitted part is removed."""
    sink = FileSink(tmp_path, format="jsonl")
    sink.write_batch([{"a": 1}, {"a": 2}])
    orphan = sink.prepare()
    sink.write_batch([{"a": 3}])
    prepared = sink.prepare()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("part")] == []
    sink.commit("run/out/2", prepared)
    sink.commit("run/out/2", prepared)  # again, after a resume: nothing more
    parts = sorted(tmp_path.glob("part-*.jsonl"))
    assert [p.read_text() for p in parts] == ['{"a":3}\n']
    assert not (tmp_path / str(orphan)).exists()


def test_csv_sink_in_a_durable_run(tmp_path: Path) -> None:
    """A checkpointed run writes CSV parts with a header each; all rows once."""
    sink = FileSink(tmp_path / "out", format="csv", columns=["n", "sq"])
    flow = rb.Flow("csv-out")
    flow.source(list(range(100)), name="nums").map(lambda n: {"n": n, "sq": n * n}).sink(sink)
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")
    flow.run(store=store, progress=False, checkpoint_events=30, batch_size=10)
    rows = []
    for part in sorted((tmp_path / "out").glob("part-*.csv")):
        header, *lines = part.read_text().splitlines()
        assert header == "n,sq"
        rows += [tuple(map(int, line.split(","))) for line in lines]
    assert rows == [(n, n * n) for n in range(100)]
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_sink_rejects_csv_without_columns() -> None:
    """format='csv' needs its header's columns."""
    with pytest.raises(ValueError, match="columns"):
        FileSink("x", format="csv")
