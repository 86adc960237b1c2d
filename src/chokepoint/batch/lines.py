"""Result rows as text a block at a time: CSV as csv.DictWriter writes it and JSON Lines
as json.dumps writes them (the row-by-row engine's bytes), built by Arrow's compute
functions a column at a time. Row by row (``to_pylist`` and a writer), a 500,000-row
block took 24 s as CSV and more as JSON, most of a whole run's time.

Literal texts are made Arrow scalars from buffers (:func:`_texts`): given as Python
texts, pyarrow would make them with ``pa.scalar``, which imports pandas (0.3 s a
process) in the columnar path.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chokepoint.batch.columnar.arrow import strings

Text = bytes | memoryview
"""UTF-8 text as written to a file (a view of an Arrow buffer, not copied)."""


def csv_lines(table: Any) -> Text:
    """Rows as csv.DictWriter writes them, UTF-8: a cell quoted only when it holds a comma,
    a quote or a line break, its quotes doubled; a null an empty cell; lines ending in CRLF
    (a screening hit's "Co., Ltd." is quoted in nearly every block of a real book)."""
    cells = []
    for column in table.columns:
        text = column.cast(pa.string()).combine_chunks()
        if not _holds(text, b',"\r\n'):  # (most columns never need quotes)
            cells.append(text)
            continue
        needs = pc.match_substring_regex(text, '[,"\r\n]')
        if pc.any(needs).as_py():
            quoted = pc.replace_substring_regex(pc.replace_substring(text, '"', '""'),
                                                pattern=r"(?s)\A(.*)\z",
                                                replacement=r'"\1"')
            text = pc.if_else(needs, quoted, text)
        cells.append(text)
    comma, end, empty = _texts(",", "\r\n", "")
    if cells:  # (the line's end joined to its last cell: one pass over a column, not all)
        cells[-1] = pc.binary_join_element_wise(cells[-1], end, empty,
                                                null_handling="replace", null_replacement="")
    lines = pc.binary_join_element_wise(*cells, comma, null_handling="replace",
                                        null_replacement="")
    return _data(lines)


def json_lines(table: Any) -> Text:
    """Rows as ``json.dumps(row, ensure_ascii=False)`` writes them, UTF-8, one a line ("\\n"):
    keys in the table's column order, text escaped as json escapes it (quote, backslash,
    control characters; other characters as they are), a null ``null``. A column neither
    integer nor text sends the block row by row."""
    pieces: list[Any] = []
    names = table.column_names
    for k, (name, column) in enumerate(zip(names, table.columns, strict=True)):
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if pa.types.is_integer(kind):
            value = column.cast(pa.string()).combine_chunks()
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            value = _json_text(column.cast(pa.string()).combine_chunks())
        else:
            rows: list[dict[str, Any]] = table.to_pylist()
            return "".join(json.dumps(row, ensure_ascii=False) + "\n"
                           for row in rows).encode("utf-8")
        key = json.dumps(name, ensure_ascii=False) + ": "
        pieces += [("{" if k == 0 else ", ") + key, value]
    if not pieces:
        return b"{}\n" * int(table.num_rows)
    literals = iter(_texts(*(p for p in pieces[::2]), "}\n", ""))
    args = [next(literals) if i % 2 == 0 else p for i, p in enumerate(pieces)]
    close, empty = next(literals), next(literals)
    lines = pc.binary_join_element_wise(*args, close, empty, null_handling="replace",
                                        null_replacement="null")
    return _data(lines)


_JSON_ESCAPES = {0x5C: "\\\\", 0x22: '\\"', 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n",
                 0x0D: "\\r", 0x09: "\\t"}
"""How json.dumps escapes these bytes in a text (other control characters as \\u00XX)."""


def _json_text(text: pa.Array) -> pa.Array:
    """A text array as JSON strings (quoted, escaped as json.dumps escapes; nulls kept)."""
    marks = b'\\"' + bytes(range(0x20))
    if _holds(text, marks):
        data = np.frombuffer(text.buffers()[2], dtype=np.uint8)
        present = set(np.unique(data[np.isin(data, list(marks))]).tolist())
        for byte in [0x5C, *sorted(present - {0x5C})]:  # (backslashes first)
            if byte in present:
                text = pc.replace_substring(text, chr(byte), _JSON_ESCAPES.get(
                    byte, f"\\u{byte:04x}"))
    quote = _texts('"')[0]
    return pc.binary_join_element_wise(quote, text, quote, _texts("")[0])


def _holds(text: pa.Array, marks: bytes) -> bool:
    """Whether a text array's bytes hold any of ``marks`` anywhere (in its data buffer: a
    sliced array's neighbours may say yes too, never no wrongly)."""
    data = text.buffers()[2]
    if data is None or not data.size:
        return False
    table = np.zeros(256, dtype=np.bool_)
    table[list(marks)] = True
    return bool(table[np.frombuffer(data, dtype=np.uint8)].any())


def _texts(*values: str) -> list[pa.Scalar]:
    return list(strings(list(values)))


def _data(lines: pa.Array) -> Text:
    """The lines' bytes, each already ended: the text array's data as it lies (no copy)."""
    if not len(lines):
        return b""
    wide = pa.types.is_large_string(lines.type)
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64 if wide else np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return memoryview(lines.buffers()[2]).cast("B")[first:last]
