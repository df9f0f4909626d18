"""Stable key hashing: the same key gives the same hash in every process and on every
machine, unlike Python's ``hash()``, which is salted per process for str and bytes.

Keys are encoded canonically (a type tag, then the value) and hashed with BLAKE2b; keys
that are equal in Python (True, 1 and 1.0) hash alike, as they share one dict entry.
Supported keys: None, bool, int, float, str, bytes, and tuples of these; anything else
raises a TypeError that says what to use instead.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

__all__ = ["partition_for", "stable_hash"]


def _encode(key: Any, out: bytearray) -> None:
    # Keys that are equal in Python (one dict key: True == 1 == 1.0, -0.0 == 0.0) must
    # route alike, so bools and integral floats are encoded as the int they equal.
    if key is None:
        out += b"N"
    elif isinstance(key, int) or (isinstance(key, float) and key.is_integer()):
        # Two's complement, not str(): str() refuses ints past 4300 digits, and a subclass
        # may override __str__.
        number = int(key)
        raw = number.to_bytes(number.bit_length() // 8 + 1, "big", signed=True)
        out += b"i" + struct.pack(">I", len(raw)) + raw
    elif isinstance(key, float):
        out += b"f" + struct.pack(">d", key)
    elif isinstance(key, str):
        raw = key.encode("utf-8", "surrogatepass")
        out += b"s" + struct.pack(">I", len(raw)) + raw
    elif isinstance(key, bytes):
        out += b"b" + struct.pack(">I", len(key)) + key
    elif isinstance(key, tuple):
        out += b"t" + struct.pack(">I", len(key))
        for item in key:
            _encode(item, out)
    else:
        raise TypeError(
            f"a key must be None, bool, int, float, str, bytes or a tuple of them, got "
            f"{type(key).__name__} {key!r:.60}; return one of those from your key function"
        )


def stable_hash(key: Any) -> int:
    """A 64-bit hash of ``key`` that is the same in every process.

    >>> stable_hash("machine-7") == stable_hash("machine-7")
    True
    """
    out = bytearray()
    _encode(key, out)
    return int.from_bytes(hashlib.blake2b(bytes(out), digest_size=8).digest(), "big")


stable_hash.__module__ = "riverbed"  # it is public as riverbed.stable_hash


def partition_for(key: Any, partitions: int) -> int:
    """The partition (0 .. partitions-1) that owns ``key``."""
    return stable_hash(key) % partitions
