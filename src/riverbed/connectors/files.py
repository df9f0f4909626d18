"""Files: text lines, JSON Lines and CSV, read from a file, a glob or a watched directory,
and written exactly once per checkpoint.

``FileSource`` reads every file that ``path`` names (a file, a directory, or a glob), in
the order of their names, line by line. Its position is each file's byte offset (of the
decompressed data for ``.gz`` files): a resumed run goes on exactly where its checkpoint
was. With ``follow=True`` it never ends: it keeps watching for lines appended to the files
and for new files (tail -f over a directory). A line is read once it ends with a newline;
without ``follow``, a last line without one is read at the end of its file.

``FileSink`` writes JSON Lines or CSV into a directory, one part file per checkpoint:
the lines go to a hidden temporary file, which is renamed into place (atomically) once the
checkpoint that covers them is committed. A crashed run never leaves a half-written part,
and a resumed run never writes one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import glob
import gzip
import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Literal

from riverbed.connectors._common import Decode, Decoder

__all__ = ["FileSink", "FileSource"]

Format = Literal["lines", "jsonl", "csv"]

_DEFAULT_DECODE: dict[str, Decode] = {"lines": "text", "jsonl": "json", "csv": "text"}


class FileSource:
    """Read lines, JSON Lines or CSV rows from the files ``path`` names.

    ``path`` is a file, a directory (every file in it) or a glob (``logs/*.jsonl.gz``).
    ``format`` is ``"lines"`` (each line as text, without its newline), ``"jsonl"`` (each
    line as JSON) or ``"csv"`` (each row as a dict by the file's header line).
    ``decode=`` decodes each line's bytes otherwise (``"bytes"``, ``"text"``, ``"json"``,
    ``"msgpack"`` or a function); a line that cannot be decoded becomes a dead letter with
    its raw bytes. ``follow=True`` watches for appended lines and new files every
    ``poll`` seconds, and never ends.

    >>> source = FileSource("readings/*.jsonl", format="jsonl")
    >>> flow.source(source).map(parse)  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: Format = "lines",
        decode: Decode | None = None,
        follow: bool = False,
        poll: float = 0.5,
        delimiter: str = ",",
    ) -> None:
        if format not in _DEFAULT_DECODE:
            raise ValueError(f"FileSource: format={format!r} is not 'lines', 'jsonl' or 'csv'")
        self.path = os.fspath(path)
        self.format = format
        self.decode: Decode = decode if decode is not None else _DEFAULT_DECODE[format]
        self.follow = follow
        self.poll = poll
        self.delimiter = delimiter

    def __repr__(self) -> str:
        return f"FileSource({self.path!r}, format={self.format!r})"

    def partitions(self) -> Sequence[str]:
        """One partition: the files are read in the order of their names."""
        return ["files"]

    def open(self, partition: str, position: dict[str, int] | None) -> _FilesReader:
        """A reader starting at ``position``: each file's byte offset."""
        if not self.follow and not self.files():
            raise FileNotFoundError(f"FileSource: no file matches {self.path!r}")
        return _FilesReader(self, dict(position or {}))

    def files(self) -> list[str]:
        """The files ``path`` names now, in the order they are read."""
        if os.path.isdir(self.path):
            pattern = os.path.join(glob.escape(self.path), "*")
        elif glob.has_magic(self.path):
            pattern = self.path
        else:
            return [self.path] if os.path.exists(self.path) else []
        return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))


class _FilesReader:
    """Reads a ``FileSource``'s files; the position is each file's byte offset."""

    def __init__(self, source: FileSource, offsets: dict[str, int]) -> None:
        self.source = source
        self.offsets = offsets
        self.decoder = Decoder(source.decode, f"FileSource({source.path!r})")
        self.headers: dict[str, list[str]] = {}
        self.exhausted: set[str] = set()
        """Compressed files read to their end (they do not grow)."""
        self._open: tuple[str, IO[bytes]] | None = None

    def read(self, max_events: int) -> list[Any] | asyncio.Future[list[Any]] | None:
        """Up to ``max_events`` events from the files, in order; ``None`` at the end (or,
        following, a pause of ``poll`` seconds when nothing is new)."""
        batch: list[Any] = []
        moved = False
        for name in self.source.files():
            if len(batch) >= max_events:
                break
            if self._finished(name):
                continue
            before = self.offsets.get(name, 0)
            batch.extend(self._read_file(name, max_events - len(batch)))
            moved = moved or self.offsets[name] != before
        if batch or moved:
            return batch  # [] when every line read was undecodable: ask again
        self._close()
        if not self.source.follow:
            return None
        return asyncio.ensure_future(_after(self.source.poll, []))

    def _finished(self, name: str) -> bool:
        """True if ``name`` has nothing new (a compressed file read to its end, or a plain
        one no longer than what was read)."""
        if _gz(name):
            return name in self.exhausted
        try:
            return os.path.getsize(name) <= self.offsets.get(name, 0)
        except FileNotFoundError:  # removed meanwhile (rotated away)
            return True

    def _read_file(self, name: str, limit: int) -> list[Any]:
        offset = self.offsets.get(name, 0)
        stream = self._stream(name, offset)
        if self.source.format == "csv" and name not in self.headers:
            offset = self._header(name, stream, offset)
        whole = not self.source.follow or _gz(name)
        lines, offset = _lines(stream, offset, limit, whole=whole)
        self.offsets[name] = offset
        if len(lines) < limit and _gz(name):
            self.exhausted.add(name)
        if self.source.format == "csv":
            texts = self.decoder.decode(lines)
            return [
                dict(zip(self.headers[name], row, strict=False))
                for row in csv.reader(texts, delimiter=self.source.delimiter)
            ]
        return self.decoder.decode([line.rstrip(b"\r\n") for line in lines])

    def _header(self, name: str, stream: IO[bytes], offset: int) -> int:
        """Learn a CSV file's header: read here at its start (the offset after it is
        returned), or read again from its start when resuming in its middle."""
        if offset == 0:
            first = stream.readline()
            text = first.decode("utf-8")
            offset = len(first)
        else:
            with _open(name) as again:
                text = again.readline().decode("utf-8")
        self.headers[name] = next(csv.reader([text], delimiter=self.source.delimiter))
        return offset

    def _stream(self, name: str, offset: int) -> IO[bytes]:
        """The open file ``name`` at ``offset`` (kept open while it is read in turn)."""
        if self._open is not None and self._open[0] == name:
            return self._open[1]
        self._close()
        stream = _open(name)
        stream.seek(offset)
        self._open = (name, stream)
        return stream

    def rejected(self) -> list[tuple[bytes, BaseException]]:
        """Lines that could not be decoded since last asked."""
        return self.decoder.rejected()

    def position(self) -> dict[str, int]:
        """Each file's byte offset, read up to."""
        return dict(self.offsets)

    def _close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

    def close(self) -> None:
        """Close the file being read."""
        self._close()


def _gz(name: str) -> bool:
    return name.endswith(".gz")


def _open(name: str) -> IO[bytes]:
    """``name`` opened for reading bytes, decompressed if it ends in ``.gz``."""
    if _gz(name):
        return gzip.open(name, "rb")  # type: ignore[return-value]
    return open(name, "rb")


def _lines(stream: IO[bytes], offset: int, limit: int, *, whole: bool) -> tuple[list[bytes], int]:
    """Up to ``limit`` complete lines from ``stream`` at ``offset``, and the offset after
    them. A last line without a newline counts only when ``whole`` (the file is complete);
    else the stream goes back to its start, to be read when it ends."""
    lines: list[bytes] = []
    while len(lines) < limit:
        line = stream.readline()
        if not line:
            break
        if not line.endswith(b"\n") and not whole:
            stream.seek(offset)
            break
        offset += len(line)
        if line.strip():
            lines.append(line)
    return lines, offset


async def _after(seconds: float, value: list[Any]) -> list[Any]:
    await asyncio.sleep(seconds)
    return value


class FileSink:
    """Write JSON Lines or CSV part files into ``directory``, exactly once per checkpoint.

    Each checkpoint's events go to one part file, ``part-<time>-<id>.jsonl`` (or
    ``.csv``, with a header row of ``columns``), renamed into place once the checkpoint is
    committed (a ``TransactionalSink``). ``format="csv"`` takes events that are mappings
    (by column name) or sequences (by position). A crashed attempt's uncommitted part is a
    hidden ``.tmp`` file, removed by the next commit: write one run into a directory at a
    time.

    >>> sink = FileSink("out/", format="jsonl")
    >>> flow.source(events).sink(sink)  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        format: Literal["jsonl", "csv"] = "jsonl",
        columns: Sequence[str] = (),
    ) -> None:
        if format not in ("jsonl", "csv"):
            raise ValueError(f"FileSink: format={format!r} is not 'jsonl' or 'csv'")
        if format == "csv" and not columns:
            raise ValueError("FileSink: format='csv' needs columns=[...] (the header row)")
        self.directory = Path(directory)
        self.format = format
        self.columns = tuple(columns)
        self._temp: tuple[str, IO[bytes]] | None = None

    def __repr__(self) -> str:
        return f"FileSink({str(self.directory)!r}, format={self.format!r})"

    def write_batch(self, events: list[Any]) -> None:
        """Append ``events`` to this checkpoint's temporary part file."""
        if not events:
            return
        stream = self._stream()
        stream.write(self._encode(events))

    def _stream(self) -> IO[bytes]:
        if self._temp is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f".part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.tmp"
            stream = open(self.directory / name, "wb")  # noqa: SIM115 - kept open across batches
            if self.format == "csv":
                stream.write(self._encode_csv([self.columns]))
            self._temp = (name, stream)
        return self._temp[1]

    def _encode(self, events: list[Any]) -> bytes:
        if self.format == "jsonl":
            return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()
        return self._encode_csv(self._row(e) for e in events)

    def _encode_csv(self, rows: Any) -> bytes:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        return text.getvalue().encode()

    def _row(self, event: Any) -> Sequence[Any]:
        if isinstance(event, dict):
            return [event.get(c) for c in self.columns]
        return list(event)

    def prepare(self) -> str | None:
        """Make this checkpoint's part durable (flush, fsync); its temporary name, or None
        if nothing was written."""
        if self._temp is None:
            return None
        name, stream = self._temp
        self._temp = None
        stream.flush()
        os.fsync(stream.fileno())
        stream.close()
        return name

    def commit(self, key: str, prepared: str | None) -> None:
        """Rename the part into place (once: a part already in place is left alone), then
        remove older temporary parts, left by crashed attempts."""
        if prepared is None:
            return
        final = self.directory / self._final_name(key, prepared)
        temp = self.directory / prepared
        if temp.exists():
            os.replace(temp, final)
            _fsync_dir(self.directory)
        elif not final.exists():
            raise FileNotFoundError(
                f"{self!r}: the part of checkpoint {key!r} ({temp}) is gone; was the "
                "directory written by another run, or cleaned by hand?"
            )
        for old in self.directory.glob(".part-*.tmp"):
            if old.name < prepared:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def _final_name(self, key: str, prepared: str) -> str:
        stamp = prepared.split("-")[1]
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return f"part-{stamp}-{digest}.{self.format}"

    def close(self) -> None:
        """Close the temporary part being written (it is committed, or not, by its
        checkpoint)."""
        if self._temp is not None:
            self._temp[1].close()


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
