"""Arrow arrays to and from NumPy through their buffers (batch.columnar.arrow): the same
arrays pyarrow's own conversions give, and a columnar run that never imports pandas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from chokepoint.batch.columnar import arrow
from chokepoint.batch.synthetic import write_book


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint16])
def test_integers_are_the_array_pyarrow_makes(dtype: type) -> None:
    values = np.array([0, 5, 3, 7, 1], dtype=dtype)
    made = arrow.integers(values)
    assert made.equals(pa.array(values))
    assert made.type == pa.from_numpy_dtype(np.dtype(dtype))
    # a strided view (a slice with a step) is copied, not read with the wrong stride
    assert arrow.integers(values[::2]).to_pylist() == [0, 3, 1]


def test_integers_refuses_other_arrays() -> None:
    with pytest.raises(TypeError):
        arrow.integers(np.array([0.5, 1.5]))


def test_codes_read_a_sliced_array_with_nulls() -> None:
    indices = pa.array([4, None, 2, 1, None, 0, 3, 3, None, 1], type=pa.int32())
    for start in range(0, 6):
        part = indices.slice(start, 4)  # (an offset into the buffers, and into the bits)
        want = [9 if v is None else v for v in part.to_pylist()]
        got = arrow.codes(part, 9)
        assert got.tolist() == want and got.dtype == np.int32
    assert arrow.codes(pa.array([], type=pa.int8()), 0).tolist() == []
    with pytest.raises(TypeError):
        arrow.codes(pa.array(["a"]), 0)


def test_strings_are_the_array_pyarrow_makes() -> None:
    texts = ["", "a", "Huawei 华为", "x;y", ""]
    made = arrow.strings(texts)
    assert made.equals(pa.array(texts, type=pa.string()))
    assert arrow.strings([]).equals(pa.array([], type=pa.string()))


def test_a_columnar_run_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas on its first pa.array/to_numpy call (0.3 s a process): the
    columnar path, from reading the book to writing Parquet, CSV or JSON Lines (whose
    rows batch.lines builds with Arrow scalars made from buffers), never makes one."""
    book = tmp_path / "book.parquet"
    write_book(book, 2000, seed=3)
    script = f"""
import sys
from datetime import date
from pathlib import Path
from chokepoint.batch.run import run_batch
from chokepoint.rules.loader import load_rules
for name in ("out.parquet", "out.csv", "out.jsonl"):
    run_batch(Path({str(book)!r}), Path({str(tmp_path)!r}) / name, load_rules(),
              today=date(2026, 11, 26), engine="columnar", workers=1, block=500)
print("pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env={"CHOKEPOINT_CACHE_DIR": "off",
                                           "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout + done.stderr
    assert (tmp_path / "out.parquet").exists()
    assert '"' in (tmp_path / "out.csv").read_text()  # (a quoted cell was written)
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2000
