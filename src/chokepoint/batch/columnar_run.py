"""Running a book through the columnar path: blocks of rows, each evaluated whole, written
in input order with a checkpoint after each block (see :mod:`chokepoint.batch.run`).

Rows the columnar path leaves (invalid ones) are determined - and reported - by the scalar
path, so the rejects file is the same whichever engine ran. A book whose columns (e.g.
Parquet lists) or rules the columnar path cannot take is refused with a message saying to
use the scalar engine.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from itertools import chain
from pathlib import Path
from typing import Any

import pyarrow as pa

from chokepoint.batch.columnar import Unsupported, cache, evaluate_table
from chokepoint.batch.columnar.arrow import repeated
from chokepoint.batch.columnar.codes import readable
from chokepoint.batch.columnar.items import check_supported
from chokepoint.batch.columns import cell_maps, recode_table
from chokepoint.batch.compressed import arrow_stream, book_format, decompressing
from chokepoint.batch.errors import ColumnarRefused
from chokepoint.batch.parts import part_files, partition_values
from chokepoint.batch.run import (
    REGIMES,
    ResultWriter,
    Summary,
    book_header,
    checkpoint_after,
    conformed,
    count_reject,
    count_results,
    count_rows,
    evaluate_row,
    not_text,
    write_part,
)
from chokepoint.rules.ruleset import RuleSet

BLOCK = 500_000
"""Rows evaluated together (and per checkpoint): larger blocks share more work, smaller
ones hold less memory - a peak of about 0.75-1 GB a process at this size (session 9)."""


def blocks(path: Path, mapping: dict[str, str], block: int, encoding: str | None = None
           ) -> Iterator[pa.Table]:
    """The book in blocks of rows, columns renamed by the column map; CSV cells as text,
    read in ``encoding`` (default UTF-8)."""
    parts = part_files(path)  # (a directory's parts: one book, rows numbered on)
    if book_format(path) == ".parquet":
        # text columns as read from the file's dictionary pages: no text per row to build
        # and hash again (codes.encode); the id column is all distinct, so read as text.
        # (The reader then stops each batch at the end of a row group.)
        yield from _rebatched(chain.from_iterable(
            _alike(_partitioned(_parquet(p, mapping).iter_batches(batch_size=block),
                                partition_values(path, p))) for p in parts),
            block, mapping)
        return
    yield from _rebatched(chain.from_iterable(
        _partitioned(_csv_batches(p, encoding), partition_values(path, p)) for p in parts),
        block, mapping)


def _partitioned(batches: Iterable[pa.RecordBatch], values: dict[str, str | None]
                 ) -> Iterator[pa.RecordBatch]:
    """Record batches with a column for each partition value of their part (a partitioned
    dataset's ``key=value`` directories), after the file's own, as Spark adds them."""
    for batch in batches:
        if values:
            batch = pa.RecordBatch.from_arrays(
                [*batch.columns, *(repeated(v, batch.num_rows) for v in values.values())],
                names=[*batch.schema.names, *values])
        yield batch


def _alike(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Record batches with every column nullable and no schema metadata, which parts
    written by different writers may differ in (no answer reads them), so that a block
    may join rows of two parts (their column names and types are checked alike:
    run.book_header)."""
    for batch in batches:
        yield pa.RecordBatch.from_arrays(batch.columns, schema=_loosened(batch.schema))


def _loosened(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema])


def _csv_batches(path: Path, encoding: str | None) -> Iterator[pa.RecordBatch]:
    """A CSV file's record batches, every cell as text."""
    import pyarrow.csv as pacsv

    header = book_header(path, encoding)
    if not header:  # (an empty file: no rows, as the row-by-row engine reads it)
        return
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                   strings_can_be_null=False)
    # (another encoding is transcoded to UTF-8 as the file is read)
    read = pacsv.ReadOptions(encoding=encoding) if encoding is not None else None
    try:
        with decompressing(path):
            yield from pacsv.open_csv(arrow_stream(path), read_options=read,
                                      convert_options=convert)
    except pa.ArrowInvalid as exc:
        if "UTF8" in str(exc):  # (no engine can read it in this encoding)
            raise not_text(path, encoding) from exc
        raise ColumnarRefused(f"{path}: the columnar engine cannot read this CSV "
                              f"({exc})") from exc


def cannot_take(inp: Path, with_trace: bool, rules: RuleSet) -> str | None:
    """Why the columnar engine cannot take a run (None: it can), asked before one starts
    (``batch --engine auto``): it gives the scalar engine's rows, but not a trace, nor JSON
    Lines, nor list columns, nor rule sets whose classification reads beyond the item."""
    if with_trace:
        return "--trace needs each row's full determination"
    suffix = book_format(inp)
    if suffix not in (".csv", ".parquet"):
        return f"it reads .csv or .parquet books, not {suffix or 'this file'}"
    try:
        check_supported(rules)
    except Unsupported as exc:
        return str(exc)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for f in pq.read_schema(part_files(inp)[0]):  # (parts alike: book_header)
            if not readable(f.type):
                return (f"column {f.name!r} is of type {f.type} (write lists and timestamps as "
                        "text)")
    return None


def _parquet(path: Path, mapping: dict[str, str]) -> Any:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    coded = [f.name for f in schema if mapping.get(f.name, f.name) != "id"
             and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
    return pq.ParquetFile(path, read_dictionary=coded)


def block_at(path: Path, mapping: dict[str, str], start: int, count: int) -> pa.Table:
    """Rows ``start`` to ``start + count - 1`` (from 0) of a Parquet book, read as
    :func:`blocks` reads them: only the row groups that hold them are read."""
    pieces: list[pa.Table] = []
    pos = 0
    for part in part_files(path):
        reader = _parquet(part, mapping)
        meta = reader.metadata
        wanted: list[int] = []
        offset = 0
        for i in range(meta.num_row_groups):
            n = meta.row_group(i).num_rows
            if pos + n > start and pos < start + count:
                if not wanted:
                    offset = max(start - pos, 0)
                wanted.append(i)
            pos += n
        if wanted:
            table = reader.read_row_groups(wanted, use_threads=False)
            table = pa.Table.from_arrays(table.columns, schema=_loosened(table.schema))
            table = table.slice(offset, count - sum(t.num_rows for t in pieces))
            for key, value in partition_values(path, part).items():
                table = table.append_column(key, repeated(value, table.num_rows))
            pieces.append(table)
        if pos >= start + count:
            break
    return _renamed(pa.concat_tables(pieces), mapping)


def _row_groups_within(path: Path, size: int) -> bool:
    """Whether no row group of a Parquet book is larger than a block (so that a worker
    reads little more than its block)."""
    import pyarrow.parquet as pq

    for part in part_files(path):
        meta = pq.read_metadata(part)
        if any(meta.row_group(i).num_rows > size for i in range(meta.num_row_groups)):
            return False
    return True


def _rebatched(batches: Iterable[pa.RecordBatch], block: int, mapping: dict[str, str]
               ) -> Iterator[pa.Table]:
    """Record batches regrouped into tables of ``block`` rows (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        pending.append(batch)
        size += batch.num_rows
        while size >= block:
            table = pa.Table.from_batches(pending)
            yield _renamed(table.slice(0, block), mapping)
            rest = table.slice(block)
            pending, size = rest.to_batches(), rest.num_rows
    if size:
        yield _renamed(pa.Table.from_batches(pending), mapping)


def _renamed(table: pa.Table, mapping: dict[str, str]) -> pa.Table:
    """A block's columns named as the flat layout, with the column map's value maps."""
    table = table.rename_columns([mapping.get(c, c) for c in table.column_names])
    recode = cell_maps(mapping)
    return recode_table(table, recode) if recode else table


def _raw(value: Any) -> Any:
    """A cell as the scalar path reads it (a Parquet list as ``;``-separated text)."""
    return ";".join(map(str, value)) if isinstance(value, list) else value


def evaluate_block(table: pa.Table, first: int, rules: RuleSet, override: date | None,
                   today: date, columns: list[str]
                   ) -> tuple[pa.Table, list[dict[str, Any]]]:
    """One block's result rows (in input order) and its rejects."""
    result, left = evaluate_table(table, rules, override, today, first, REGIMES, columns)
    if not len(left):
        return result, []
    extra: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for i, raw in zip(left.tolist(), table.take(pa.array(left)).to_pylist(), strict=True):
        kind, row = evaluate_row((first + i, {k: _raw(v) for k, v in raw.items()}), rules,
                                 override, today, False)
        (extra if kind == "ok" else rejects).append(row)
    if extra:
        more = pa.Table.from_pylist(extra, schema=result.schema)
        result = pa.concat_tables([result, more]).sort_by("row")
    return result, rejects


def block_size(block: int | None, workers: int) -> int:
    """Rows per block: as asked, or two blocks of ``BLOCK`` rows shared by the workers,
    whose blocks are evaluated at once: one or two processes take whole blocks (a block's
    work per distinct combination of facts is the same whatever its size, so larger blocks
    go faster: docs/notes.md), more processes smaller ones, so that together they hold
    about the memory of two."""
    workers = max(workers, 1)
    return block or max(BLOCK * min(workers, 2) // workers, 10_000)


_WORKER: dict[str, Any] = {}


def _in_worker(item: tuple[pa.Table | tuple[int, int], int]
               ) -> tuple[pa.Table | Path, list[dict[str, Any]], int]:
    """One block, given as its rows or (Parquet) as where they are in the book. Its result
    comes back as rows, or - for a Parquet output - as the part file the worker wrote
    (no rows through the pipe; the parent takes the file as its next part)."""
    table, first = item
    if isinstance(table, tuple):
        start, count = table
        path, mapping = _WORKER["book"]
        table = block_at(path, mapping, start, count)
    result, rejects = evaluate_block(table, first, **_WORKER["settings"])
    last = first + table.num_rows - 1
    parts: Path | None = _WORKER.get("parts")
    if parts is None:
        return result, rejects, last
    written = parts / f"block-{first:012d}.arrow"
    write_part(conformed(result, _WORKER["settings"]["columns"]), written)
    return written, rejects, last


def _save_in_worker(_: int = 0) -> bool:
    """:func:`cache.save` of the rule set a worker holds (its own copy, filled by the
    blocks it evaluated)."""
    return cache.save(_WORKER["settings"]["rules"])


def write_columnar(inp: Path, mapping: dict[str, str], done: int, rules: RuleSet,
                   override: date | None, today: date, workers: int, columns: list[str],
                   writer: ResultWriter, rejects: Any, rej_fh: Any, checkpoint: Path,
                   summary: Summary, progress: Callable[[int], None] | None,
                   block: int | None = None, encoding: str | None = None) -> None:
    """Evaluate the rows after ``done`` block by block, writing and checkpointing each."""
    assert summary.outcomes is not None
    size = block_size(block, workers)

    def begin(first: int, last: int) -> int | None:
        """Where the block of rows ``first`` to ``last`` starts after ``done`` rows (None:
        done already)."""
        return first + max(0, done - first + 1) if last > done else None

    def todo() -> Iterator[tuple[pa.Table, int]]:
        first = 1
        for table in blocks(inp, mapping, size, encoding):
            last = first + table.num_rows - 1
            start = begin(first, last)
            if start is not None:
                yield table.slice(start - first), start
            first = last + 1

    def where() -> Iterator[tuple[tuple[int, int], int]]:
        """The blocks of :func:`todo` as (first row from 0, rows) and first row number."""
        total = count_rows(inp) or 0  # (a Parquet book's, from its parts' metadata)
        for first in range(1, total + 1, size):
            last = min(first + size - 1, total)
            start = begin(first, last)
            if start is not None:
                yield (start - 1, last - start + 1), start

    settings = {"rules": rules, "override": override, "today": today, "columns": columns}
    # answers kept by an earlier run with these rules (before the fork), left out of the
    # garbage collector's passes until the run ends (the workers' and this process's)
    cache.load(rules, freeze=True)
    pool = None
    try:
        pool, results = _started(inp, mapping, workers, settings, writer, size, todo, where,
                                 encoding)
        for result, block_rejects, last in results:
            if isinstance(result, Path):
                result = writer.adopt(result)
            else:
                writer.write_table(result)
            for row in block_rejects:
                rejects.writerow(row)
                count_reject(summary, row)
            count_results(summary, result)
            summary.rows = last
            checkpoint_after(checkpoint, last, writer.offset(), rej_fh)
            if progress is not None:
                progress(last)
        # for the next run: what this process (or each worker: the one that has evaluated
        # the most stays) has kept
        if pool is not None:
            pool.map(_save_in_worker, range(workers), chunksize=1)
        else:
            cache.save(rules)
    except Unsupported as exc:
        raise ColumnarRefused(f"the columnar engine cannot take this book: {exc}") from exc
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        gc.unfreeze()  # (frozen since the load, and again before the fork)


def _started(inp: Path, mapping: dict[str, str], workers: int, settings: dict[str, Any],
             writer: ResultWriter, size: int,
             todo: Callable[[], Iterator[tuple[pa.Table, int]]],
             where: Callable[[], Iterator[tuple[tuple[int, int], int]]],
             encoding: str | None = None
             ) -> tuple[Any, Iterator[tuple[Any, list[dict[str, Any]], int]]]:
    """The workers' pool (None: one process) and the blocks' results, in order."""
    if workers <= 1:
        return None, ((*evaluate_block(t, first, **settings), first + t.num_rows - 1)
                      for t, first in todo())
    # More workers than cores: warm the caches they inherit (day snapshots, screening
    # indexes, compiled rules) on a sample of the book first, or each would build them
    # again on a shared core. Up to one a core, each builds its own at the same time:
    # a serial sample only held them all up (10^6 rows on two: 4.7-5.1 -> 3.9-4.3 s).
    if workers > (os.cpu_count() or 1):
        sample = next(blocks(inp, mapping, 5000, encoding), None)
        if sample is not None:
            evaluate_block(sample, 1, **settings)
    _WORKER.update(settings=settings, book=(inp, mapping),
                   parts=writer.parts_dir if writer.takes_parts else None)
    tasks: Iterator[tuple[Any, int]] = todo()
    if book_format(inp) == ".parquet" and _row_groups_within(inp, size):
        tasks = where()  # each worker reads its own rows: none passed through pipes
    # what the parent holds (rules, kept answers) is left out of the workers' garbage
    # collections: each would otherwise write to every object's header, copying the
    # parent's pages into the worker (0.4 s a worker with the answers of cache.py)
    gc.freeze()
    pool = multiprocessing.get_context("fork").Pool(workers)
    return pool, pool.imap(_in_worker, tasks)
