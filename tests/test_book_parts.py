"""A book given as a directory of part files (a dataset as Spark or an ERP writes one) is
read by every engine as the one book its parts joined in name order make."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from chokepoint.batch.errors import BatchError
from chokepoint.batch.impact import book_impact
from chokepoint.batch.run import count_rows, run_batch
from chokepoint.rules.ruleset import RuleSet

SPLITS = (0, 1700, 1701, 4000)  # three parts: 1,700 rows, 1 row, 2,299 rows


def _whole(tmp_path: Path, seed: int = 6) -> pa.Table:
    from chokepoint.batch.synthetic import write_book

    whole = tmp_path / "whole.parquet"
    write_book(whole, SPLITS[-1], seed=seed)
    return pq.read_table(whole)


def _parquet_parts(tmp_path: Path, table: pa.Table, name: str = "book.parquet") -> Path:
    """The table as a Spark-like directory: parts in row groups of 500 rows (the last part
    written first, so file times do not give the order, and by another writer), a
    _SUCCESS marker and .crc files."""
    book = tmp_path / name
    book.mkdir()
    pieces = list(zip(SPLITS, SPLITS[1:], strict=False))
    for k, (a, b) in reversed(list(enumerate(pieces))):
        part = book / f"part-{k:05d}-c000.snappy.parquet"
        piece = table.slice(a, b - a)
        if k == 2:  # (as another writer may: a column not nullable, metadata of its own)
            piece = piece.cast(pa.schema([f.with_nullable(f.name != "id")
                                          for f in piece.schema])
                               ).replace_schema_metadata({"writer": "erp"})
        pq.write_table(piece, part, row_group_size=500)
        (book / f".{part.name}.crc").write_bytes(b"\0\1")
    (book / "_SUCCESS").write_text("")
    return book


def test_every_engine_reads_a_directory_of_parquet_parts_as_the_parts_joined(
        tmp_path: Path, rules: RuleSet) -> None:
    """Rows numbered on across the parts, in the order of their names; the output is the
    bytes of a run over one file holding the same rows. Two workers with 1,200-row blocks
    read their own row groups, and their blocks span parts."""
    from chokepoint.batch.columnar_run import _row_groups_within, block_at

    table = _whole(tmp_path)
    book = _parquet_parts(tmp_path, table)
    run_batch(tmp_path / "whole.parquet", tmp_path / "ref.csv", rules, engine="columnar")
    ref = (tmp_path / "ref.csv").read_bytes()
    assert count_rows(book) == 4000
    assert _row_groups_within(book, 1200)  # (so the workers read their blocks themselves)
    # a block from the end of the first part to the start of the third
    assert block_at(book, {}, 1500, 1200).to_pylist() == table.slice(1500, 1200).to_pylist()
    for engine, workers, block in (("scalar", 1, None), ("columnar", 1, None),
                                   ("columnar", 2, 1200), ("auto", 1, None)):
        out = tmp_path / f"{engine}-{workers}.csv"
        summary = run_batch(book, out, rules, engine=engine, workers=workers, block=block)
        assert summary.rows == summary.written == 4000
        assert out.read_bytes() == ref, (engine, workers)


def test_a_directory_of_csv_parts_each_with_its_header(tmp_path: Path,
                                                       rules: RuleSet) -> None:
    """CSV parts as Spark writes them with a header: every part has its own, which is not
    a row; a BOM on one part is skipped, and a quoted line break stays in its cell."""
    table = _whole(tmp_path, seed=8)
    names = table.column("party_name").to_pylist()
    names[5] = "Example\nTwo Lines"
    table = table.set_column(table.schema.get_field_index("party_name"), "party_name",
                             pa.array(names, pa.string()))
    whole, book = tmp_path / "whole.csv", tmp_path / "book.csv"
    pacsv.write_csv(table, whole)
    book.mkdir()
    for k, (a, b) in enumerate(zip(SPLITS, SPLITS[1:], strict=False)):
        pacsv.write_csv(table.slice(a, b - a), book / f"part-{k:05d}.csv")
    first = book / "part-00000.csv"
    first.write_bytes(b"\xef\xbb\xbf" + first.read_bytes())
    (book / "part-000.csv").write_bytes(b"")  # (an empty partition's file: no header)
    assert count_rows(book) == 4000
    run_batch(whole, tmp_path / "ref.csv", rules, engine="columnar")
    ref = (tmp_path / "ref.csv").read_bytes()
    for engine in ("scalar", "columnar"):
        out = tmp_path / f"{engine}.csv"
        run_batch(book, out, rules, engine=engine)
        assert out.read_bytes() == ref, engine


def test_a_run_over_parts_resumes_and_refuses_a_changed_part(
        tmp_path: Path, rules: RuleSet, interrupt: Any) -> None:
    """A run stopped in the third part resumes to the rows of a clean run; a part
    rewritten in between (its time changed) makes the resume refuse."""
    book = _parquet_parts(tmp_path, _whole(tmp_path, seed=2))
    clean, out = tmp_path / "clean.csv", tmp_path / "out.csv"
    run_batch(book, clean, rules, engine="columnar", block=1000, today=date(2026, 1, 1))
    interrupt(lambda progress: run_batch(book, out, rules, engine="columnar", block=1000,
                                         today=date(2026, 1, 1), progress=progress), 3000)
    assert not out.exists()
    assert json.loads((tmp_path / "out.csv.checkpoint").read_text())["rows"] == 3000
    part = book / "part-00002-c000.snappy.parquet"
    stat = part.stat()
    os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(BatchError, match=r"cannot resume: the book \(its size"):
        run_batch(book, out, rules, engine="columnar", block=1000, resume=True)
    os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    summary = run_batch(book, out, rules, engine="columnar", block=1000, resume=True)
    assert summary.rows == 4000
    assert out.read_bytes() == clean.read_bytes()


def test_a_directory_that_is_not_one_book_is_refused_naming_the_file(
        tmp_path: Path, rules: RuleSet) -> None:
    table = _whole(tmp_path).slice(0, 50)

    def refused(book: Path, match: str, out: Path | None = None) -> None:
        for engine in ("scalar", "columnar", "auto"):
            with pytest.raises(BatchError, match=match):
                run_batch(book, out or tmp_path / "out.csv", rules, engine=engine)
        assert not (out or tmp_path / "out.csv").exists()

    def parts(name: str, *tables: pa.Table) -> Path:
        book = tmp_path / name
        book.mkdir()
        for k, t in enumerate(tables):
            pq.write_table(t, book / f"part-{k}.parquet")
        return book

    renamed = table.rename_columns(["Dest" if c == "to_country" else c
                                    for c in table.column_names])
    refused(parts("names.parquet", table, renamed),
            r"part-1\.parquet: its columns are .*'Dest'.*, unlike part-0\.parquet")
    shares = table.set_column(table.schema.get_field_index("us_controlled_share"),
                              "us_controlled_share",
                              table.column("us_controlled_share").cast(pa.string()))
    refused(parts("types.parquet", table, shares),
            r"part-1\.parquet: its column 'us_controlled_share' is of type string, not "
            "double")
    nested = parts("nested.parquet", table)
    (nested / "date=2025-01-01").mkdir()
    refused(nested, r"date=2025-01-01: a directory beside part files")
    for name, layout, match in (
            ("plain", ["2025/part-0.parquet"], r"2025: a directory inside the book not "
             "named key=value"),
            ("blank", ["date=/part-0.parquet"], r"date=: an empty partition value"),
            ("twice", ["date=1/date=2/part-0.parquet"], r"date=2: partitioned by 'date' "
             "twice"),
            ("depths", ["a=1/b=2/part-0.parquet", "a=2/part-0.parquet"],
             r"a=2/part-0\.parquet: under the partition keys \['a'\], unlike "
             r"a=1/b=2/part-0\.parquet \(\['a', 'b'\]\)"),
            ("keys", ["a=1/part-0.parquet", "b=1/part-0.parquet"],
             r"b=1/part-0\.parquet: under the partition keys \['b'\]"),
            ("again", ["to_country=CN/part-0.parquet"],
             r"the column 'to_country' appears 2 times")):
        book = tmp_path / f"{name}.parquet"
        for part in layout:
            (book / part).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, book / part)
        refused(book, match)
    stray = parts("stray.parquet", table)
    (stray / "README.txt").write_text("exported nightly")
    refused(stray, r"README\.txt: not a \.parquet part of the book stray\.parquet")
    refused(parts("empty.parquet"), "a directory with no .parquet part files")
    refused(parts("book"), "name it .csv or .parquet as its parts are")
    inside = parts("into.parquet", table)
    refused(inside, "would be written among the book's parts", inside / "out.parquet")


def test_the_commands_take_a_directory_of_parts(tmp_path: Path, rules: RuleSet) -> None:
    """`chokepoint batch` (default engine, its progress bar counting the parts' rows) and
    `chokepoint diff` answer a directory as they answer the file of its rows joined."""
    table = _whole(tmp_path, seed=4)
    book = _parquet_parts(tmp_path, table)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "chokepoint", *args],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    done = cli("batch", str(book), str(tmp_path / "out.csv"))
    assert "4000 rows: 4000 determined, 0 rejected" in done.stderr
    assert "4,000/4,000" in done.stderr or "4000/4000" in done.stderr
    run_batch(tmp_path / "whole.parquet", tmp_path / "ref.csv", rules)
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()
    moved = json.loads(cli("diff", "--from", "2024-12-01", "--to", "2024-12-02", str(book),
                           "--format", "json").stdout)
    assert moved["changed_rows"]
    assert moved == book_impact(tmp_path / "whole.parquet", rules, date(2024, 12, 1),
                                date(2024, 12, 2))
    refused = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from",
                              "2024-12-01", "--to", "2024-12-02", str(book), "--out",
                              str(book / "moved.csv")], capture_output=True, text=True,
                             check=False)
    assert refused.returncode == 2 and "among the book's parts" in refused.stderr
    assert not (book / "moved.csv").exists()


def _hive(book: Path, table: pa.Table, keys: list[str], write: Any) -> pa.Table:
    """The table as a partitioned dataset under ``book`` (``key=value`` directories as
    Hive and Spark name them: escaped, a null as __HIVE_DEFAULT_PARTITION__), one part
    a directory, written by ``write(table, path)``; and the table in the order of the
    parts' paths, which is the book's row order."""
    from urllib.parse import quote

    def directory(values: tuple[Any, ...]) -> str:
        return "/".join(f"{k}={'__HIVE_DEFAULT_PARTITION__' if v is None else quote(v, safe='')}"
                        for k, v in zip(keys, values, strict=True))

    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, values in enumerate(zip(*(table.column(k).to_pylist() for k in keys),
                                   strict=True)):
        groups.setdefault(values, []).append(i)
    ordered = []
    for values in sorted(groups, key=directory):
        rows = table.take(pa.array(groups[values], pa.int64()))
        (book / directory(values)).mkdir(parents=True)
        write(rows.drop_columns(keys), book / directory(values) / "part-0")
        ordered.append(rows)
    return pa.concat_tables(ordered)


def test_every_engine_reads_a_partitioned_dataset(tmp_path: Path, rules: RuleSet) -> None:
    """A dataset partitioned by two facts, as Spark or Hive writes one
    (``exporter_name=Tokyo%20Electron/item_eccn=3B993/part-0.parquet``): each part's rows
    get the values of its directories (escapes undone, Hive's null partition unknown), in
    the order of the parts' paths - the rows of a file holding them so. Two workers with
    700-row blocks read their own row groups across parts."""
    from chokepoint.batch.columnar_run import block_at

    table = _whole(tmp_path, seed=11)
    keys = ["exporter_name", "item_eccn"]
    names = table.column("exporter_name").to_pylist()
    names[3] = "Example Co/Ltd 100%"  # (escaped in its directory's name)
    table = table.set_column(table.schema.get_field_index("exporter_name"),
                             "exporter_name", pa.array(names, pa.string()))
    book = tmp_path / "lake.parquet"
    joined = _hive(book, table, keys,
                   lambda t, p: pq.write_table(t, p.with_suffix(".parquet"),
                                               row_group_size=300))
    assert table.column("item_eccn").null_count  # (a null partition among them)
    (book / "_SUCCESS").write_text("")
    pq.write_table(joined, tmp_path / "joined.parquet")
    run_batch(tmp_path / "joined.parquet", tmp_path / "ref.csv", rules, engine="scalar")
    ref = (tmp_path / "ref.csv").read_bytes()
    assert count_rows(book) == 4000
    part = block_at(book, {}, 1000, 700)
    assert part.select(joined.column_names).to_pylist() == joined.slice(1000, 700).to_pylist()
    for engine, workers, block in (("scalar", 1, None), ("columnar", 1, None),
                                   ("columnar", 2, 700), ("auto", 1, None)):
        out = tmp_path / f"{engine}-{workers}.csv"
        run_batch(book, out, rules, engine=engine, workers=workers, block=block)
        assert out.read_bytes() == ref, (engine, workers)


def test_a_partitioned_csv_dataset_and_its_resume(tmp_path: Path, rules: RuleSet,
                                                  interrupt: Any) -> None:
    table = _whole(tmp_path, seed=12)
    book = tmp_path / "lake.csv"
    joined = _hive(book, table, ["to_country"],
                   lambda t, p: pacsv.write_csv(t, p.with_suffix(".csv")))
    pacsv.write_csv(joined, tmp_path / "joined.csv")
    run_batch(tmp_path / "joined.csv", tmp_path / "ref.csv", rules, engine="scalar")
    ref = (tmp_path / "ref.csv").read_bytes()
    for engine in ("scalar", "columnar"):
        out = tmp_path / f"{engine}.csv"
        run_batch(book, out, rules, engine=engine)
        assert out.read_bytes() == ref, engine
    out = tmp_path / "resumed.csv"
    interrupt(lambda progress: run_batch(book, out, rules, engine="columnar", block=1000,
                                         progress=progress), 2000)
    run_batch(book, out, rules, engine="columnar", block=1000, resume=True)
    assert out.read_bytes() == ref


def test_partition_keys_are_mapped_as_columns_are(tmp_path: Path, rules: RuleSet) -> None:
    """An ERP's dataset partitioned under its own names (``Destination=CN/``): the column
    map renames the keys as it renames columns, in every local engine."""
    table = _whole(tmp_path, seed=13)
    ours = {"to_country": "Destination", "item_eccn": "Export Class"}
    table = table.rename_columns([ours.get(c, c) for c in table.column_names])
    columns = tmp_path / "map.yaml"
    columns.write_text("Destination: to_country\nExport Class: item_eccn\n")
    book = tmp_path / "lake.parquet"
    joined = _hive(book, table, ["Destination", "Export Class"],
                   lambda t, p: pq.write_table(t, p.with_suffix(".parquet"),
                                               row_group_size=300))
    pq.write_table(joined, tmp_path / "joined.parquet")
    run_batch(tmp_path / "joined.parquet", tmp_path / "ref.csv", rules, engine="scalar",
              columns=columns)
    ref = (tmp_path / "ref.csv").read_bytes()
    assert b",license_required," in ref  # (the mapped facts were read)
    for engine, workers, block in (("scalar", 1, None), ("columnar", 1, None),
                                   ("columnar", 2, 700)):
        out = tmp_path / f"{engine}-{workers}.csv"
        run_batch(book, out, rules, engine=engine, workers=workers, block=block,
                  columns=columns)
        assert out.read_bytes() == ref, (engine, workers)
