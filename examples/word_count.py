"""Word count: the ten most frequent words of a text file.

    python examples/word_count.py                       # examples/data/sample.txt
    python examples/word_count.py path/to/book.txt --top 20
    riverbed run examples.word_count:flow               # the sample file, from the CLI

Lines are read by a generator function, split into lowercase words (``flat_map``), keyed by
the word, and counted per word (``fold``), which emits one ``(word, count)`` pair per word
when the file ends. A sink object collects the pairs and prints the top ones when the run
closes it.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import re
from collections.abc import Iterator
from pathlib import Path

SAMPLE = Path(__file__).parent / "data" / "sample.txt"
TOP = 10

_WORD = re.compile(r"[a-z']+")


# -- the plain Python that does the work ----------------------------------------------------


def read_lines(path: str | Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, one at a time."""
    with open(path, encoding="utf-8") as file:
        yield from file


def words(line: str) -> list[str]:
    """The lowercase words of a line (letters and apostrophes)."""
    return _WORD.findall(line.lower())


def itself(word: str) -> str:
    """The key of a word is the word."""
    return word


def zero() -> int:
    """Every word's count starts at zero."""
    return 0


def add_one(count: int, word: str) -> int:
    """One more sighting of the word."""
    return count + 1


def top(counts: list[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    """The ``n`` most frequent words; ties go to the word first in alphabetical order."""
    return heapq.nsmallest(n, counts, key=lambda pair: (-pair[1], pair[0]))


class TopWords:
    """A sink: keeps every ``(word, count)`` it gets and prints the top ``n`` when closed."""

    def __init__(self, n: int = TOP) -> None:
        self.n = n
        self.counts: list[tuple[str, int]] = []

    def write_batch(self, pairs: list[tuple[str, int]]) -> None:
        self.counts.extend(pairs)

    def close(self) -> None:
        """Print the table, then forget the counts so that the next run starts afresh."""
        total = sum(count for _, count in self.counts)
        print(f"{total} words, {len(self.counts)} different; the top {self.n}:")
        for rank, (word, count) in enumerate(top(self.counts, self.n), start=1):
            print(f"{rank:>4}. {word:<16} {count:>6}")
        self.counts = []


# -- the wiring -----------------------------------------------------------------------------

import riverbed as rb  # noqa: E402 - kept apart on purpose: nothing above needs riverbed


def build(path: str | Path = SAMPLE, n: int = TOP) -> rb.Flow:
    """The word count of the file at ``path``, printing its top ``n`` words."""
    flow = rb.Flow("word-count")
    (
        flow.source(functools.partial(read_lines, path), name="lines")
        .flat_map(words)
        .key_by(itself, name="by_word")
        .fold(zero, add_one, name="count")
        .sink(TopWords(n), name="top_words")
    )
    return flow


flow = build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(SAMPLE), help="a UTF-8 text file")
    parser.add_argument("--top", type=int, default=TOP, help="how many words to print")
    args = parser.parse_args()
    if not Path(args.path).is_file():
        parser.error(f"no such file: {args.path}")
    result = build(args.path, args.top).run()
    print()
    print(result.summary())


if __name__ == "__main__":
    main()
