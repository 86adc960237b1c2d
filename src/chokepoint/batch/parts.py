"""A book as one file or as a directory of part files (a dataset as Spark, Hive or an ERP
export writes one, partitioned in key=value directories or not): its files in the order
their rows are numbered, the cells a partition's directories give, and what a resumed run
checks of them. How each file is compressed and opened: ``compressed``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from chokepoint.batch.compressed import book_format
from chokepoint.batch.errors import BatchError

FORMATS = (".csv", ".parquet")
"""Directories of these are read as one book (JSON Lines are one file)."""

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
"""The directory value Hive and Spark write for a null partition value (an unknown fact)."""


def part_files(book: Path) -> list[Path]:
    """The files holding ``book``'s rows, in row order: the book itself, or a directory's
    files in the order of their paths within it (as ``--engine spark`` numbers them; CSV
    parts may be compressed, see :data:`compressed.COMPRESSED`). The files may sit in ``key=value``
    directories, a partitioned dataset (:func:`partition_values`). Names starting with
    ``_`` or ``.`` are left out, as Spark leaves them (``_SUCCESS``, ``.crc`` files).
    BatchError for a directory not named .csv or .parquet or with no part file, and inside
    it for a file of another format, a directory not named ``key=value``, or parts not all
    under the same partition keys."""
    if not book.is_dir():
        return [book]
    suffix = book.suffix.lower()
    if suffix not in FORMATS:
        raise BatchError(f"{book}: a directory of part files is read as CSV or Parquet; "
                         "name it .csv or .parquet as its parts are")
    keys: dict[Path, tuple[str, ...]] = {}
    _walk(book, book, (), suffix, keys)
    if not keys:
        raise BatchError(f"{book}: a directory with no {suffix} part files")
    parts = sorted(keys, key=lambda p: p.relative_to(book).as_posix())
    first = parts[0]
    for part in parts[1:]:
        if keys[part] != keys[first]:
            raise BatchError(
                f"{part}: under the partition keys {list(keys[part])}, unlike "
                f"{first.relative_to(book)} ({list(keys[first])}); every part of a "
                "partitioned dataset sits under the same key=value directories")
    return parts


def _walk(book: Path, directory: Path, above: tuple[str, ...], suffix: str,
          keys: dict[Path, tuple[str, ...]]) -> None:
    """Each part file under ``directory`` into ``keys``, with the partition keys of the
    directories above it (BatchError as :func:`part_files` says)."""
    entries = sorted((p for p in directory.iterdir() if not p.name.startswith(("_", "."))),
                     key=lambda p: p.name)  # (the same file named in every refusal)
    inner = [p for p in entries if p.is_dir()]
    if inner and len(inner) < len(entries):
        raise BatchError(f"{inner[0]}: a directory beside part files; the parts of a "
                         "partitioned dataset sit only in its key=value directories")
    for path in entries:
        if not path.is_dir():
            if book_format(path) != suffix:
                raise BatchError(f"{path}: not a {suffix} part of the book {book.name}; "
                                 "move it out of the directory (every other file is read "
                                 "as a part)")
            keys[path] = above
            continue
        key, equals, value = path.name.partition("=")
        if not equals or not key:
            raise BatchError(f"{path}: a directory inside the book not named key=value; "
                             "chokepoint reads part files, and the directories of a "
                             "partitioned dataset (date=2025-06-02/)")
        if not value:
            raise BatchError(f"{path}: an empty partition value (a null one is written "
                             f"{NULL_PARTITION}, as Hive and Spark write it)")
        if unquote(key) in above:
            raise BatchError(f"{path}: partitioned by {unquote(key)!r} twice")
        _walk(book, path, (*above, unquote(key)), suffix, keys)


def partition_values(book: Path, part: Path) -> dict[str, str | None]:
    """The cells a part's ``key=value`` directories give each of its rows, by key (text,
    as Hive and Spark escape it undone; None for :data:`NULL_PARTITION`, unknown)."""
    if part == book:
        return {}
    values: dict[str, str | None] = {}
    for name in part.relative_to(book).parent.parts:
        key, _, value = name.partition("=")
        values[unquote(key)] = None if value == NULL_PARTITION else unquote(value)
    return values


def read_here(book: Path) -> bool:
    """Whether chokepoint's own readers take the book: a file, or a directory of part files
    as :func:`part_files` reads it (not, e.g., one holding parts of other names, which
    ``--engine spark`` reads as CSV)."""
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
    return [book.name, [[p.relative_to(book).as_posix(), p.stat().st_size,
                         p.stat().st_mtime_ns] for p in part_files(book)]]


def inside(out: Path, book: Path) -> bool:
    """Whether ``out`` would be written into the book's directory (where the next run
    would read it as a part)."""
    return book.is_dir() and book.resolve() in out.resolve().parents
