"""Arrow arrays to and from NumPy through their buffers.

pyarrow's own conversions (``pa.array``, ``Array.to_numpy``, ``pa.scalar``, ``fill_null``
with a Python value) first ask whether a value is a pandas object, and so import pandas
(0.3 s) in every process that calls them, though no pandas object is ever involved here.
The columnar path's conversions are all of integer codes and text, which these few
functions build from and read into buffers directly: the same arrays, no import.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

_INTEGERS: dict[pa.DataType, np.dtype[Any]] = {
    pa.from_numpy_dtype(np.dtype(t)): np.dtype(t)
    for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
              np.uint64)}


def integers(values: np.ndarray) -> pa.Array:
    """A NumPy integer array as an Arrow array of the same type (no nulls)."""
    values = np.ascontiguousarray(values)
    kind = pa.from_numpy_dtype(values.dtype)
    if kind not in _INTEGERS:
        raise TypeError(f"not an integer array: {values.dtype}")
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def codes(indices: pa.Array, null_code: int) -> np.ndarray:
    """An Arrow integer array (a dictionary's indices) as NumPy, ``null_code`` where null."""
    dtype = _INTEGERS.get(indices.type)
    if dtype is None:
        raise TypeError(f"not an integer array: {indices.type}")
    n = len(indices)
    validity, data = indices.buffers()[:2]
    out: np.ndarray = (
        np.frombuffer(data, dtype=dtype, count=n, offset=indices.offset * dtype.itemsize)
        if n else np.empty(0, dtype=dtype))
    if indices.null_count:
        bits = np.frombuffer(validity, dtype=np.uint8)
        valid = np.unpackbits(bits, bitorder="little")[indices.offset:indices.offset + n]
        out = np.where(valid.astype(np.bool_), out, np.asarray(null_code, dtype=dtype))
    return out


def strings(values: list[str]) -> pa.Array:
    """Python texts as an Arrow string array (large_string past 2 GiB of text)."""
    encoded = [v.encode("utf-8") for v in values]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = pa.py_buffer(b"".join(encoded))
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(pa.string(), len(encoded),
                                     [None, pa.py_buffer(offsets.astype(np.int32)), data])
    large = pa.Array.from_buffers(pa.large_string(), len(encoded),
                                  [None, pa.py_buffer(offsets), data])
    return large


def repeated(value: str | None, n: int) -> pa.Array:
    """``value`` (None: null) ``n`` times, as a text dictionary of one entry."""
    zeros = np.zeros(n, dtype=np.int32)
    if value is None:  # (every index null: a validity bitmap of zeros)
        indices = pa.Array.from_buffers(
            pa.int32(), n, [pa.py_buffer(np.zeros(-(-n // 8), dtype=np.uint8)),
                            pa.py_buffer(zeros)], null_count=n)
    else:
        indices = integers(zeros)
    return pa.DictionaryArray.from_arrays(indices, strings([value or ""]))
