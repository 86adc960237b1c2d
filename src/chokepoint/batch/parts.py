"""A book as one file or as a directory of part files (a dataset as Spark, Hive or an ERP
export writes one): its files in the order their rows are numbered, and what a resumed
run checks of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chokepoint.batch.errors import BatchError

FORMATS = (".csv", ".parquet")
"""Directories of these are read as one book (JSON Lines are one file)."""


def part_files(book: Path) -> list[Path]:
    """The files holding ``book``'s rows, in row order: the book itself, or a directory's
    files in the order of their names (as ``--engine spark`` numbers them). Names starting
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
                             "dataset?); chokepoint reads the part files of one directory")
        if not path.name.lower().endswith(suffix):
            raise BatchError(f"{path}: not a {suffix} part of the book {book.name}; move it "
                             "out of the directory (every other file is read as a part)")
        parts.append(path)
    if not parts:
        raise BatchError(f"{book}: a directory with no {suffix} part files")
    return parts


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
