"""How a file of a book is named and packed: its format by its name (``orders.csv.gz`` is
CSV), its compression, and opening it decompressed, with errors that name the file."""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from chokepoint.batch.errors import BatchError

TEXT = (".csv", ".jsonl")
COMPRESSED = {".gz": "gzip", ".bz2": "bz2"}
"""How a text book or part may be compressed, by its name's last suffix (``orders.csv.gz``,
``part-00000.csv.bz2`` as Spark writes with ``compression``): every engine reads these
(pyarrow, Python's modules, and Spark by Hadoop's codecs for the same suffixes)."""


def book_format(path: Path) -> str:
    """A book's format by its name: ``.csv``, ``.parquet`` or ``.jsonl`` - for a
    compressed text file, the suffix before the compression's - or else its last suffix."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) > 1 and suffixes[-1] in COMPRESSED and suffixes[-2] in TEXT:
        return suffixes[-2]
    return path.suffix.lower()


def compression(path: Path) -> str | None:
    """How a file of the book is compressed ("gzip", "bz2"; None: not), by its name."""
    if path.is_dir() or book_format(path) == path.suffix.lower():
        return None
    return COMPRESSED[path.suffix.lower()]


def open_bytes(path: Path) -> BinaryIO:
    """A file of the book as bytes, decompressed."""
    kind = compression(path)
    if kind == "gzip":
        return cast(BinaryIO, gzip.open(path, "rb"))
    if kind == "bz2":
        return cast(BinaryIO, bz2.open(path, "rb"))
    return path.open("rb")


def open_text(path: Path, encoding: str) -> IO[str]:
    """A text file of the book, decompressed and decoded (newlines as written: the csv
    module reads them)."""
    kind = compression(path)
    if kind == "gzip":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    if kind == "bz2":
        return bz2.open(path, "rt", encoding=encoding, newline="")
    return path.open(encoding=encoding, newline="")


@contextmanager
def decompressing(path: Path) -> Iterator[None]:
    """Around a read of a compressed file: BatchError naming it when it is not compressed as
    its name says, or is cut short (gzip's, bz2's and pyarrow's errors)."""
    try:
        yield
    except (OSError, EOFError) as exc:
        if compression(path) is None:
            raise
        raise BatchError(f"{path}: not readable as {compression(path)} ({exc}); is the file "
                         "whole, and named as it is compressed?") from exc


def arrow_stream(path: Path) -> Any:
    """A file of the book as pyarrow reads it, decompressed as it is read."""
    import pyarrow as pa

    return pa.input_stream(str(path), compression=compression(path))
