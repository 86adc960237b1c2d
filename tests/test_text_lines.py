"""The CSV and JSON Lines rows the columnar engine and Spark write a block at a time
(batch.lines) are the bytes Python's csv.DictWriter and json.dumps write row by row (the
row-by-row engine's): a CSV cell quoted only when it holds a comma, a quote or a line
break, quotes doubled, a null an empty cell, CRLF; JSON text escaped as json escapes it."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from chokepoint.batch.lines import csv_lines, json_lines

CELL = st.one_of(st.none(), st.lists(st.sampled_from(
    list('ab ,"\r\n;:->()中芯\u00e9\t') + ["Co., Ltd.", '""']), max_size=8).map("".join))


def _text(lines: bytes | memoryview) -> str:
    """The lines as text (they are UTF-8 bytes, written to the file as they are)."""
    return bytes(lines).decode("utf-8")


def _reference(table: pa.Table) -> str:
    out = io.StringIO()
    rows = csv.writer(out)
    for row in table.to_pylist():
        rows.writerow(["" if v is None else v for v in row.values()])
    return out.getvalue()


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(1, 10**9), CELL, CELL), max_size=30),
       cut=st.integers(0, 30), offset=st.integers(0, 5))
def test_block_rows_are_the_csv_writers_bytes(rows: list[tuple[int, str | None, str | None]],
                                              cut: int, offset: int) -> None:
    """Text, dictionary and integer columns, in two chunks, sliced (an array's buffers then
    hold cells outside the slice)."""
    numbers, first, second = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [],
                                                                                      [])
    cut = min(cut, len(rows))
    table = pa.table({
        "row": pa.chunked_array([pa.array(numbers[:cut], pa.int64()),
                                 pa.array(numbers[cut:], pa.int64())]),
        "text": pa.chunked_array([pa.array(first[:cut], pa.string()),
                                  pa.array(first[cut:], pa.string())]),
        "coded": pa.array(second, pa.string()).dictionary_encode(),
    })
    part = table.slice(min(offset, len(rows)))
    assert _text(csv_lines(part)) == _reference(part)


JSON_CELL = st.one_of(st.none(), st.text(alphabet=st.one_of(
    st.sampled_from(list('ab ,"\\/;中芯\u00e9\u2028\x7f')),
    st.characters(max_codepoint=0x1F)), max_size=8))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.none(), st.integers(-5, 10**12)), JSON_CELL,
                               JSON_CELL), max_size=30),
       offset=st.integers(0, 5))
def test_block_rows_are_json_dumps_lines(rows: list[tuple[int | None, str | None,
                                                           str | None]],
                                         offset: int) -> None:
    """Quotes, backslashes and every control character escaped as json escapes them
    (backslashes first), other characters kept (ensure_ascii=False), nulls null."""
    numbers, first, second = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [],
                                                                                      [])
    table = pa.table({"row": pa.array(numbers, pa.int64()),
                      "text": pa.array(first, pa.string()),
                      "coded": pa.array(second, pa.string()).dictionary_encode()})
    part = table.slice(min(offset, len(rows)))
    want = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part.to_pylist())
    assert _text(json_lines(part)) == want


def test_json_rows_of_other_types_are_written_row_by_row() -> None:
    table = pa.table({"row": pa.array([1], pa.int64()), "flag": [True], "x": [0.5]})
    assert _text(json_lines(table)) == '{"row": 1, "flag": true, "x": 0.5}\n'


def test_a_real_blocks_screening_hits_are_quoted_as_the_scalar_path_does() -> None:
    table = pa.table({"row": pa.array([1, 2], pa.int64()), "outcome": ["a", None],
                      "screening_hits": ["Example Co., Ltd.->Example Co., Ltd. (1.0)", ""]})
    assert _text(csv_lines(table)) == (
        '1,a,"Example Co., Ltd.->Example Co., Ltd. (1.0)"\r\n2,,\r\n')
    assert _text(csv_lines(table.slice(0, 0))) == ""
