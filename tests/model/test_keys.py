"""Stable key hashing: the same key routes to the same partition in every process."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riverbed import stable_hash
from riverbed._model.keys import partition_for

SRC = Path(__file__).resolve().parents[2] / "src"

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
keys = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4).map(tuple), max_leaves=12)


@given(keys)
def test_hash_is_deterministic(key: Any) -> None:
    """Hashing a key twice gives the same 64-bit value."""
    value = stable_hash(key)
    assert value == stable_hash(key)
    assert 0 <= value < 2**64


@given(keys)
def test_equal_keys_hash_alike(key: Any) -> None:
    """An equal copy of a key (not the same object), tuples included, hashes alike."""
    copy = pickle.loads(pickle.dumps(key))
    assert stable_hash(copy) == stable_hash(key)


@given(keys, keys)
def test_different_keys_hash_differently(a: Any, b: Any) -> None:
    """Keys that are unequal in Python hash differently (64-bit collisions aside); equal
    ones (False == 0 == 0.0, also inside tuples) share a dict entry and hash alike."""
    if a != b:
        assert stable_hash(a) != stable_hash(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (0, None),
        ("1", 1),
        ("a", b"a"),
        ((), None),
        ((1,), 1),
        ((1, 2), ((1, 2),)),
        (("ab", "c"), ("a", "bc")),
        (("a", ""), ("a",)),
        (b"", ""),
        (-1, 1),
        (2**64, 0),
    ],
)
def test_keys_of_different_type_or_shape_hash_differently(a: Any, b: Any) -> None:
    """True is not 1, 1 is not 1.0, a str is not bytes, and tuple boundaries count."""
    assert stable_hash(a) != stable_hash(b)


def test_negative_zero_hashes_like_zero() -> None:
    """-0.0 == 0.0 and is the same dict key, so it routes to the same partition."""
    assert stable_hash(-0.0) == stable_hash(0.0)
    assert stable_hash((-0.0, "x")) == stable_hash((0.0, "x"))


def test_huge_ints_hash() -> None:
    """Ints past Python's 4300-digit str() limit hash like any other int."""
    big = 10**5000
    assert stable_hash(big) == stable_hash(10**5000)
    assert stable_hash(big) != stable_hash(big + 1)
    assert stable_hash(-big) != stable_hash(big)


def test_int_subclasses_hash_like_their_value() -> None:
    """An int subclass with its own ``__str__`` hashes like the plain int it equals."""

    class Id(int):
        def __str__(self) -> str:
            return f"Id<{id(self)}>"

    assert stable_hash(Id(7)) == stable_hash(7)


def _blake(encoded: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "big")


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        (None, b"N"),
        (True, b"i\x00\x00\x00\x01\x01"),
        (False, b"i\x00\x00\x00\x01\x00"),
        (2.0, b"i\x00\x00\x00\x01\x02"),
        ("ab", b"s" + struct.pack(">I", 2) + b"ab"),
        (b"\x00", b"b" + struct.pack(">I", 1) + b"\x00"),
        (1.5, b"f" + struct.pack(">d", 1.5)),
        (("a", None), b"t" + struct.pack(">I", 2) + b"s" + struct.pack(">I", 1) + b"a" + b"N"),
        (5, b"i" + struct.pack(">I", 1) + b"\x05"),
        (-129, b"i" + struct.pack(">I", 2) + b"\xff\x7f"),
    ],
)
def test_hash_is_blake2b_of_the_documented_encoding(key: Any, encoded: bytes) -> None:
    """The hash is BLAKE2b-64 of the documented type-tagged encoding, pinned across releases."""
    assert stable_hash(key) == _blake(encoded)


@pytest.mark.parametrize(
    "key", [[1, 2], {"a": 1}, {1}, frozenset(), object(), bytearray(b"x"), (1, [2]), 1j]
)
def test_unsupported_keys_are_refused(key: Any) -> None:
    """Lists, dicts, sets and other objects, also inside tuples, are a TypeError."""
    with pytest.raises(TypeError, match=r"a key must be None, bool, int, float, str, bytes"):
        stable_hash(key)


@given(keys, st.integers(min_value=1, max_value=1024))
def test_partition_for_is_in_range_and_follows_the_hash(key: Any, partitions: int) -> None:
    """A key's partition is ``stable_hash(key) % partitions``, in 0 .. partitions-1."""
    partition = partition_for(key, partitions)
    assert 0 <= partition < partitions
    assert partition == stable_hash(key) % partitions


SAMPLE_KEYS: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -7,
    2**70,
    3.25,
    -0.0,
    "",
    "machine-7",
    "ünïcødé ✓",
    b"\x00\xffbytes",
    ("sensor", 3),
    (("nested", (1, 2.5)), None, b"x"),
]

_SCRIPT = """
import sys
sys.path.insert(0, {src!r})
from riverbed import stable_hash
keys = {keys!r}
print(hash("salted"))
print(*[stable_hash(key) for key in keys])
"""


def _hashes_in_subprocess(seed: str) -> tuple[str, list[int]]:
    script = _SCRIPT.format(src=str(SRC), keys=SAMPLE_KEYS)
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    salted, hashes = done.stdout.splitlines()
    return salted, [int(value) for value in hashes.split()]


def test_hash_is_the_same_in_processes_with_other_hash_seeds() -> None:
    """Interpreters with other PYTHONHASHSEEDs give the same hashes as this one."""
    salted_a, hashes_a = _hashes_in_subprocess("1")
    salted_b, hashes_b = _hashes_in_subprocess("4242")
    assert salted_a != salted_b  # the seeds took effect
    assert hashes_a == hashes_b == [stable_hash(key) for key in SAMPLE_KEYS]


@pytest.mark.parametrize(
    ("a", "b"), [(True, 1), (False, 0), (1, 1.0), (-0.0, 0), ((1, True), (1.0, 1))]
)
def test_keys_equal_in_python_hash_alike(a: Any, b: Any) -> None:
    """Keys that are one dict key in Python (True == 1 == 1.0) route to one partition."""
    assert a == b
    assert stable_hash(a) == stable_hash(b)
