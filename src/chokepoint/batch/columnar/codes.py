"""Rows as integer codes: dictionary-encoded columns, rows grouped by tuples of codes,
and values interned to codes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chokepoint.batch.columnar import arrow
from chokepoint.engine.logic import Unknown

SPARSE_LIMIT = 1 << 21  # above: sorting the keys costs less than a presence array
CODE = np.int32
"""The type of the codes kept per row (a column's, a fact's, a rule's answer): half the
memory of int64, and memory a new process touches for the first time costs a page fault
per 4 KiB (a fresh process's first block spent a fifth of its time in them). Arrays used
to index with (packed keys, group ids) stay int64, which ``np.take`` reads fastest."""


def code_type(count: int) -> np.dtype[Any]:
    """The narrowest signed type for codes 0 .. ``count`` - 1 and -1 (none): a rule's
    answers and most facts take a few dozen values, and an int8 per row is a quarter of the
    memory a fresh process faults in and the bandwidth two processes share."""
    if count <= 127:
        return np.dtype(np.int8)
    if count <= 32767:
        return np.dtype(np.int16)
    return np.dtype(CODE)


def fitted(codes: np.ndarray, count: int) -> np.ndarray:
    """``codes`` in a type that holds codes up to ``count`` - 1 (itself if it does)."""
    wanted = code_type(count)
    return codes if codes.dtype.itemsize >= wanted.itemsize else codes.astype(wanted)


class Unsupported(Exception):
    """The book or the rule data uses something the columnar path cannot split by fact."""


@dataclass
class Groups:
    """Rows grouped by a combined key: ``ids`` per row, ``count`` groups, ``rep`` one row
    of each group (any row: every row of a group gives the same answer)."""

    ids: np.ndarray
    count: int
    rep: np.ndarray


def _densify(key: np.ndarray, space: int) -> tuple[np.ndarray, int]:
    """Keys in 0 .. space - 1 renumbered 0 .. n - 1 in key order (n distinct keys)."""
    if space <= SPARSE_LIMIT:
        present = np.zeros(space, dtype=np.bool_)
        present[key] = True
        seen = np.flatnonzero(present)
        # (a rank written only where a key is: the rest of the array is never touched,
        # where a running count over the whole space wrote - and faulted in - all of it)
        rank = np.empty(space, dtype=np.int64)
        rank[seen] = np.arange(len(seen), dtype=np.int64)
        return rank[key], len(seen)
    uniq, ids = np.unique(key, return_inverse=True)
    return ids.astype(np.int64), len(uniq)


_ROW_NUMBERS: list[np.ndarray] = [np.arange(0, dtype=np.int64)]


def row_numbers(rows: int) -> np.ndarray:
    """0, 1, ... rows - 1 (one array kept and sliced: never write to it)."""
    if len(_ROW_NUMBERS[0]) < rows:
        _ROW_NUMBERS[0] = np.arange(rows, dtype=np.int64)
    return _ROW_NUMBERS[0][:rows]


def group(parts: list[tuple[np.ndarray, int]], rows: int) -> Groups:
    """Rows grouped by the tuple of their codes (each part: codes, number of codes)."""
    key = np.zeros(rows, dtype=np.int64)
    space = 1
    for codes, size in parts:
        if size <= 1:
            continue
        if space > 1 and space * size > SPARSE_LIMIT:
            # renumber the combinations so far (few, as a rule) before the space gets too
            # large for a presence array: cheaper than sorting the keys at the end
            key, space = _densify(key, space)
        key *= size
        key += codes
        space *= size
    ids, count = _densify(key, space)
    rep = np.empty(count, dtype=np.int64)
    rep[ids] = row_numbers(rows)
    return Groups(ids, count, rep)


_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)  # json.dumps's, built once
_SCALARS = (str, bool, int, float)


def _plain(value: tuple[Any, ...]) -> bool:
    """Text, booleans and None in tuples, all the way down, as rule results are (their
    unknowns are text by type): such a value can be its own key, as no number in it could
    be taken for a boolean."""
    for v in value:
        kind = type(v)
        if kind is str or kind is bool or v is None or kind is Unknown:
            continue
        if kind is tuple and _plain(v):
            continue
        return False
    return True


def canonical(value: Any) -> str:
    """A value (lists, dicts, scalars) as text that is equal exactly when the values are."""
    return _CANONICAL.encode(value)


def key_of(value: Any) -> Any:
    """What :class:`Interner` tells values apart by: equal keys, equal values."""
    kind = type(value)
    if value is None or kind in _SCALARS:
        return (kind, value)
    if kind is tuple and _plain(value):
        return value
    return canonical(value)


def kept(rules: Any, name: str, limit: int) -> dict[Any, Any]:
    """A cache kept with a rule set from block to block (``rules.memo``), emptied when it
    holds more than ``limit`` entries."""
    memo: dict[Any, Any] = rules.memo(name)
    if len(memo) > limit:
        memo.clear()
    return memo


class Interner:
    """Values (any, via a canonical text) to dense integer codes."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []

    def code(self, value: Any) -> int:
        return self.code_keyed(key_of(value), value)

    def code_keyed(self, key: Any, value: Any) -> int:
        """The code of a value whose :func:`key_of` is already known."""
        found = self.codes.get(key)
        if found is None:
            found = self.codes[key] = len(self.values)
            self.values.append(value)
        return found

    @property
    def size(self) -> int:
        return len(self.values)

    def keys(self) -> list[Any]:
        """Each code's key: equal keys, equal values (in any block)."""
        return list(self.codes)  # in code order: codes are given in insertion order


@dataclass
class Column:
    """A flat column dictionary-encoded: ``codes`` per row into ``values`` (None = empty)."""

    codes: np.ndarray
    values: list[Any]

    @property
    def size(self) -> int:
        return len(self.values)


def readable(kind: pa.DataType) -> bool:
    """Whether :func:`encode` reads a column of this type (text, scalars - decimals
    included -, dates - read as the row-by-row engine reads them, YYYY-MM-DD - or text read
    dictionary-encoded; not lists, nor timestamps, whose time of day the contract's dates
    do not take)."""
    if pa.types.is_dictionary(kind):
        return readable(kind.value_type)
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or pa.types.is_boolean(kind) or pa.types.is_integer(kind)
                or pa.types.is_floating(kind) or pa.types.is_null(kind)
                or pa.types.is_date(kind) or pa.types.is_decimal(kind))


def encode(array: pa.Array | pa.ChunkedArray | None, rows: int) -> Column:
    if array is None:
        return Column(np.zeros(rows, dtype=np.int8), [None])
    if isinstance(array, pa.ChunkedArray):
        array = (array.unify_dictionaries() if pa.types.is_dictionary(array.type)
                 else array).combine_chunks()
    if pa.types.is_dictionary(array.type):  # read dictionary-encoded (columnar_run.blocks)
        return _encoded(array.dictionary, array.indices, rows)
    if not readable(array.type):
        raise Unsupported(f"a column of type {array.type} (write lists and timestamps as "
                          "text)")
    if pa.types.is_null(array.type):
        return Column(np.zeros(rows, dtype=np.int8), [None])
    encoded = pc.dictionary_encode(array)
    values = encoded.dictionary.to_pylist()
    codes = arrow.codes(encoded.indices, len(values))
    return Column(codes.astype(code_type(len(values) + 1)), [*values, None])


def _encoded(dictionary: pa.Array, indices: pa.Array, rows: int) -> Column:
    """A dictionary-encoded column's codes, over its distinct values (a dictionary may
    repeat a value, e.g. one per row group: each value gets one code)."""
    inner = encode(dictionary, len(dictionary))
    empty = inner.size - 1  # the code of an empty cell
    codes = arrow.codes(indices, len(dictionary))
    lookup = np.append(inner.codes, empty).astype(code_type(inner.size))
    return Column(np.take(lookup, codes), inner.values)


@dataclass
class Coded:
    """A per-row code over a table of values; ``site``: the site whose stable codes these
    are (sites.py), None when they hold for this block only."""

    codes: np.ndarray
    table: list[Any]
    site: int | None = None


def only(where: np.ndarray, part: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
    """A part's codes where they matter, a code of its own elsewhere."""
    codes, size = part
    out = codes.astype(code_type(size + 1))
    out += 1
    out *= where
    return out, size + 1
