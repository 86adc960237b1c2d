"""A book as one file or as a directory of part files (a dataset as Spark, Hive or an ERP
export writes one): its files in the order their rows are numbered, and what a resumed
run checks of them."""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from chokepoint.batch.errors import BatchError

FORMATS = (".csv", ".parquet")
"""Directories of these are read as one book (JSON Lines are one file)."""

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


def part_files(book: Path) -> list[Path]:
    """The files holding ``book``'s rows, in row order: the book itself, or a directory's
    files in the order of their names (as ``--engine spark`` numbers them; CSV parts may be
    compressed, see :data:`COMPRESSED`). Names starting
    with ``_`` or ``.`` are left out, as Spark leaves them (``_SUCCESS``, ``.crc`` files).
    BatchError for a directory not named .csv or .parquet, one holding a directory (a
    partitioned dataset) or a file of another format, or one with no part file."""
    if not book.is_dir():
        return [book]
    suffix = book.suffix.lower()
    if suffix not in FORMATS:
        raise BatchError(f"{book}: a directory of part files is read as CSV or Parquet; "
                         "name it .csv or .parquet as its parts are")
    parts = []
    for path in sorted(book.iterdir(), key=lambda p: p.name):
        if path.name.startswith(("_", ".")):
            continue
        if path.is_dir():
            raise BatchError(f"{path}: a directory inside the book (a partitioned "
                             "dataset?); chokepoint reads the part files of one directory "
                             "(--engine spark reads a partitioned dataset)")
        if book_format(path) != suffix:
            raise BatchError(f"{path}: not a {suffix} part of the book {book.name}; move it "
                             "out of the directory (every other file is read as a part)")
        parts.append(path)
    if not parts:
        raise BatchError(f"{book}: a directory with no {suffix} part files")
    return parts


def read_here(book: Path) -> bool:
    """Whether chokepoint's own readers take the book: a file, or a directory of part files
    as :func:`part_files` reads it (not, e.g., a partitioned dataset, which only
    ``--engine spark`` reads)."""
    try:
        part_files(book)
    except BatchError:
        return False
    return True


def stamp(book: Path) -> list[Any]:
    """What tells a resumed run that the book is the one the interrupted run read: its
    name, and the size and modification time of its file or of each part."""
    if not book.is_dir():
        stat = book.stat()
        return [book.name, stat.st_size, stat.st_mtime_ns]
    return [book.name, [[p.name, p.stat().st_size, p.stat().st_mtime_ns]
                        for p in part_files(book)]]


def inside(out: Path, book: Path) -> bool:
    """Whether ``out`` would be written into the book's directory (where the next run
    would read it as a part)."""
    return book.is_dir() and book.resolve() in out.resolve().parents
