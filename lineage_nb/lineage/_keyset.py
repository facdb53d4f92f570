"""Packed key sets: the keys one read returned, stored in a few bytes per record.

Integer keys (the common case) become runs of consecutive values, written as ``gap:length`` pairs
and compressed: a whole-table read of a million rows is a dozen bytes. Other keys (text, UUIDs,
composite keys as JSON arrays) are stored as a compressed JSON array of their texts. The first
byte says which: ``R`` (runs) or ``J`` (JSON).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["decode", "encode", "encode_integers", "sorted_unique"]

_INTEGER = re.compile(r"0|-?[1-9][0-9]{0,17}")


def encode(keys: Iterable[str]) -> bytes:
    """Pack key texts (duplicates dropped)."""
    unique = set(keys)
    if unique and all(_INTEGER.fullmatch(k) for k in unique):
        return encode_integers(np.fromiter((int(k) for k in unique), dtype=np.int64))
    return b"J" + zlib.compress(json.dumps(sorted(unique), ensure_ascii=False).encode())


def sorted_unique(values: Sequence[int] | np.ndarray) -> np.ndarray:
    """``values`` as a sorted int64 array without repeats (a sort and a mask: ``np.unique``
    takes a hashing path that is an order of magnitude slower on a million keys)."""
    array = np.sort(np.asarray(values, dtype=np.int64))
    if array.size > 1:
        array = array[np.concatenate(([True], array[1:] != array[:-1]))]
    return array


def encode_integers(values: Sequence[int] | np.ndarray, *, prepared: bool = False) -> bytes:
    """Pack integer keys (any order, duplicates dropped) as runs of consecutive values;
    ``prepared``: they are already :func:`sorted_unique`."""
    array = np.asarray(values, dtype=np.int64) if prepared else sorted_unique(values)
    if array.size == 0:
        return b"R" + zlib.compress(b"")
    breaks = np.flatnonzero(np.diff(array) != 1) + 1
    starts = array[np.concatenate(([0], breaks))]
    lengths = np.diff(np.concatenate(([0], breaks, [array.size])))
    ends = starts + lengths - 1
    gaps = starts - np.concatenate(([0], ends[:-1]))
    text = ",".join(f"{g}:{n}" for g, n in zip(gaps.tolist(), lengths.tolist(), strict=True))
    return b"R" + zlib.compress(text.encode(), 9)


def decode(packed: bytes) -> list[str]:
    """The key texts of a packed set (integers ascending, others sorted)."""
    kind, body = packed[:1], zlib.decompress(packed[1:])
    if kind == b"J":
        keys: list[str] = json.loads(body)
        return keys
    if kind != b"R":
        raise ValueError(f"not a packed key set (first byte {kind!r})")
    found: list[str] = []
    end = 0
    for pair in body.decode().split(",") if body else ():
        gap, length = (int(part) for part in pair.split(":"))
        start = end + gap
        found.extend(str(v) for v in range(start, start + length))
        end = start + length - 1
    return found
