"""A text book compressed as exports and Spark write them (``orders.csv.gz``,
``part-00000.csv.bz2``, ``orders.jsonl.gz``) is read by every engine as the book it holds;
a file not compressed as its name says is refused, naming it, never half read."""

from __future__ import annotations

import bz2
import gzip
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

from chokepoint.batch.compressed import book_format, compression
from chokepoint.batch.errors import BatchError
from chokepoint.batch.impact import book_impact
from chokepoint.batch.run import count_rows, run_batch
from chokepoint.rules.ruleset import RuleSet

ROWS = 3_000


def _csv(tmp_path: Path, seed: int = 4) -> Path:
    """A plain CSV book with a BOM and a quoted line break in a cell."""
    from chokepoint.batch.synthetic import write_book

    write_book(tmp_path / "plain.parquet", ROWS, seed=seed)
    table = pq.read_table(tmp_path / "plain.parquet")
    names = table.column("party_name").to_pylist()
    names[7] = "Example\nTwo Lines"
    table = table.set_column(table.schema.get_field_index("party_name"), "party_name",
                             pa.array(names, pa.string()))
    plain = tmp_path / "plain.csv"
    pacsv.write_csv(table, plain)
    plain.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    return plain


def _gzip_members(data: bytes, cut: int) -> bytes:
    """The data as two gzip members one after the other (as `cat a.gz b.gz` makes, or a
    writer that flushes in pieces)."""
    return gzip.compress(data[:cut]) + gzip.compress(data[cut:])


def test_a_compressed_csv_book_gives_the_plain_books_rows_in_every_engine(
        tmp_path: Path, rules: RuleSet) -> None:
    plain = _csv(tmp_path)
    data = plain.read_bytes()
    packed = {"gz": tmp_path / "orders.csv.gz", "bz2": tmp_path / "orders.CSV.BZ2"}
    packed["gz"].write_bytes(_gzip_members(data, len(data) // 3))
    packed["bz2"].write_bytes(bz2.compress(data))
    run_batch(plain, tmp_path / "ref.csv", rules, engine="scalar")
    ref = (tmp_path / "ref.csv").read_bytes()
    assert count_rows(plain) == ROWS
    for kind, book in packed.items():
        assert book_format(book) == ".csv"
        assert compression(book) == {"gz": "gzip", "bz2": "bz2"}[kind]
        assert count_rows(book) == ROWS
        for engine, workers in (("scalar", 1), ("columnar", 1), ("columnar", 2),
                                ("auto", 1)):
            out = tmp_path / f"{kind}-{engine}-{workers}.csv"
            summary = run_batch(book, out, rules, engine=engine, workers=workers,
                                block=1_000)
            assert summary.rows == summary.written == ROWS
            assert out.read_bytes() == ref, (kind, engine, workers)


def test_a_compressed_book_in_another_encoding_and_json_lines(
        tmp_path: Path, rules: RuleSet) -> None:
    """--encoding applies to the text inside the compression; JSON Lines too may be
    compressed."""
    rows = ("id,item_kind,to_country,from_country,party_name,party_role\n"
            "a,chip,CN,US,中芯国际集成电路制造有限公司,end_user\n"
            "b,chip,CN,US,Example Ltd,end_user\n")
    plain = tmp_path / "gbk.csv"
    plain.write_bytes(rows.encode("gbk"))
    (tmp_path / "gbk.csv.gz").write_bytes(gzip.compress(rows.encode("gbk")))
    for engine in ("scalar", "columnar"):
        run_batch(plain, tmp_path / f"ref-{engine}.csv", rules, engine=engine,
                  encoding="gbk")
        run_batch(tmp_path / "gbk.csv.gz", tmp_path / f"gz-{engine}.csv", rules,
                  engine=engine, encoding="gbk")
        assert ((tmp_path / f"gz-{engine}.csv").read_bytes()
                == (tmp_path / f"ref-{engine}.csv").read_bytes())
    lines = [json.dumps({"id": "j1", "item": {"kind": "chip"}, "to_country": "CN"}),
             json.dumps({"id": "j2", "item": {"kind": "tool"}, "to_country": "NL"})]
    text = "\n".join(lines) + "\n"
    (tmp_path / "t.jsonl").write_text(text)
    (tmp_path / "t.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    run_batch(tmp_path / "t.jsonl", tmp_path / "j.csv", rules)
    run_batch(tmp_path / "t.jsonl.gz", tmp_path / "jgz.csv", rules)
    assert count_rows(tmp_path / "t.jsonl.gz") == 2
    assert (tmp_path / "jgz.csv").read_bytes() == (tmp_path / "j.csv").read_bytes()


def test_a_directory_of_compressed_csv_parts(tmp_path: Path, rules: RuleSet) -> None:
    """Parts as Spark writes them with compression=gzip, next to a bzip2 part and a plain
    one (each with its header), read in the order of their names."""
    plain = _csv(tmp_path, seed=5)
    table = pacsv.read_csv(plain, convert_options=pacsv.ConvertOptions(
        column_types={"id": pa.string()}))
    book = tmp_path / "export.csv"
    book.mkdir()
    for k, (a, b), suffix, pack in ((0, (0, 1000), ".gz", gzip.compress),
                                    (1, (1000, 1001), ".bz2", bz2.compress),
                                    (2, (1001, ROWS), "", bytes)):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table.slice(a, b - a), sink)
        (book / f"part-{k:05d}-c000.csv{suffix}").write_bytes(
            pack(sink.getvalue().to_pybytes()))
    (book / "_SUCCESS").write_text("")
    # an empty partition's file, compressed: no header, no rows (first and between)
    for name in ("part-0.csv.gz", "part-00001-c001.csv.bz2"):
        (book / name).write_bytes(gzip.compress(b"") if name.endswith("gz")
                                  else bz2.compress(b""))
    joined = tmp_path / "joined.csv"
    pacsv.write_csv(table, joined)
    run_batch(joined, tmp_path / "ref.csv", rules, engine="columnar")
    ref = (tmp_path / "ref.csv").read_bytes()
    assert count_rows(book) == ROWS
    for engine in ("scalar", "columnar"):
        run_batch(book, tmp_path / f"{engine}.csv", rules, engine=engine)
        assert (tmp_path / f"{engine}.csv").read_bytes() == ref, engine
    (book / "part-00003.csv.zst").write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(BatchError, match=r"part-00003\.csv\.zst: not a \.csv part"):
        run_batch(book, tmp_path / "x.csv", rules)


@pytest.mark.parametrize("engine", ["scalar", "columnar"])
def test_a_file_not_compressed_as_its_name_says_is_refused_naming_it(
        tmp_path: Path, rules: RuleSet, engine: str) -> None:
    """Plain text named .gz, and a gzip file cut short (a download stopped half way): no
    OUT, and a message naming the file - not a traceback, not the rows before the cut."""
    plain = _csv(tmp_path)
    named = tmp_path / "named.csv.gz"
    named.write_bytes(plain.read_bytes())
    cut = tmp_path / "cut.csv.gz"
    whole = gzip.compress(plain.read_bytes())
    cut.write_bytes(whole[:len(whole) // 2])
    for book in (named, cut):
        out = tmp_path / f"{book.stem}-{engine}.csv"
        with pytest.raises(BatchError, match=rf"{book.name}: not readable as gzip"):
            run_batch(book, out, rules, engine=engine)
        assert not out.exists()
        with pytest.raises(BatchError, match=rf"{book.name}: not readable as gzip"):
            count_rows(book)


def test_other_compressions_and_compressed_parquet_are_refused(tmp_path: Path,
                                                               rules: RuleSet) -> None:
    for name in ("orders.csv.zst", "orders.parquet.gz", "orders.csv.zip"):
        (tmp_path / name).write_bytes(b"\0")
        with pytest.raises(BatchError, match="may be compressed: .csv.gz"):
            run_batch(tmp_path / name, tmp_path / "out.csv", rules)
    for name in ("out.parquet.gz", "out.csv.zst"):
        with pytest.raises(BatchError, match=r"output must be .*may be \.gz or \.bz2"):
            run_batch(_csv(tmp_path), tmp_path / name, rules)


def _unpacked(path: Path) -> bytes:
    return (gzip if path.suffix == ".gz" else bz2).decompress(path.read_bytes())


def test_a_compressed_output_holds_the_plain_outputs_rows(tmp_path: Path,
                                                          rules: RuleSet) -> None:
    """OUT named .csv.gz or .jsonl.bz2 holds, decompressed, the bytes of the plain OUT; it
    is written in members (one ends at each checkpoint), and the same run gives the same
    bytes (no time in the gzip header)."""
    plain = _csv(tmp_path)
    for suffix in (".csv", ".jsonl"):
        run_batch(plain, tmp_path / f"ref{suffix}", rules, engine="columnar")
        ref = (tmp_path / f"ref{suffix}").read_bytes()
        for packing in (".gz", ".bz2"):
            for engine, workers in (("scalar", 1), ("columnar", 2)):
                out = tmp_path / f"{engine}{suffix}{packing}"
                run_batch(plain, out, rules, engine=engine, workers=workers, block=1000)
                assert _unpacked(out) == ref, (out.name, engine)
                assert (tmp_path / f"{out.name}.rejects.csv").exists()
    # (JSON Lines rows had their keys in another order row by row than in blocks)
    run_batch(plain, tmp_path / "scalar.jsonl", rules, engine="scalar")
    assert (tmp_path / "scalar.jsonl").read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
    first = (tmp_path / "scalar.csv.gz").read_bytes()
    assert first.count(b"\x1f\x8b\x08") >= 3  # (a member a checkpoint: 1,000 rows)
    run_batch(plain, tmp_path / "scalar.csv.gz", rules, engine="scalar", workers=1,
              block=1000)
    assert (tmp_path / "scalar.csv.gz").read_bytes() == first


def test_a_compressed_book_resumes_to_a_clean_runs_rows(
        tmp_path: Path, rules: RuleSet, interrupt: Any) -> None:
    """A compressed book, written to a compressed OUT: a run stopped after 2,000 rows
    leaves no OUT, and its resume (cutting the partial file at the last checkpoint's
    member) ends with the bytes of an uninterrupted run."""
    book = tmp_path / "orders.csv.gz"
    book.write_bytes(gzip.compress(_csv(tmp_path).read_bytes()))
    for engine in ("scalar", "columnar"):
        clean, out = tmp_path / f"clean-{engine}.csv.gz", tmp_path / f"out-{engine}.csv.gz"
        run_batch(book, clean, rules, engine=engine, block=1000, today=date(2026, 1, 1))
        interrupt(lambda progress, engine=engine, out=out: run_batch(
            book, out, rules, engine=engine, block=1000, today=date(2026, 1, 1),
            progress=progress), 2000)
        assert not out.exists()
        run_batch(book, out, rules, engine=engine, block=1000, today=date(2026, 1, 1),
                  resume=True)
        assert out.read_bytes() == clean.read_bytes(), engine


def test_the_cli_and_diff_read_a_compressed_book(tmp_path: Path, rules: RuleSet) -> None:
    plain = _csv(tmp_path)
    book = tmp_path / "orders.csv.gz"
    book.write_bytes(gzip.compress(plain.read_bytes()))
    d1, d2 = date(2024, 12, 1), date(2024, 12, 2)
    assert book_impact(book, rules, d1, d2) == book_impact(plain, rules, d1, d2)
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(book),
                           str(tmp_path / "out.parquet")], capture_output=True, text=True,
                          check=False, env={**os.environ, "FORCE_COLOR": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{ROWS} rows: {ROWS} determined" in done.stderr
    # (on a terminal, a spinner while the rows are counted through the decompression)
    assert "counting the book's rows" in done.stderr
    assert pq.read_table(tmp_path / "out.parquet").num_rows == ROWS
    for name in ("moved.csv", "moved.csv.gz"):
        cli = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from",
                              "2024-12-01", "--to", "2024-12-02", str(book), "--out",
                              str(tmp_path / name)], capture_output=True, text=True,
                             check=False)
        assert cli.returncode == 0, cli.stderr[-2000:]
    moved = (tmp_path / "moved.csv").read_bytes()
    assert moved.count(b"\n") > 1 and _unpacked(tmp_path / "moved.csv.gz") == moved
    bad = tmp_path / "bad.csv.bz2"
    bad.write_bytes(plain.read_bytes())
    for command in (["batch", str(bad), str(tmp_path / "bad.csv")],
                    ["diff", "--from", "2024-12-01", "--to", "2024-12-02", str(bad)]):
        done = subprocess.run([sys.executable, "-m", "chokepoint", *command],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 2, (command, done.stderr[-2000:])
        assert "bad.csv.bz2: not readable as bz2" in done.stderr
        assert "Traceback" not in done.stderr
