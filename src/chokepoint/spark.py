"""Order books beyond one machine: the same evaluation applied to a Spark DataFrame.

``determine_dataframe`` maps a DataFrame in the flat layout (``docs/batch.md``, string
columns, plus a ``row`` number) to result rows with ``mapInArrow``; each Arrow batch is
evaluated by the columnar engine (``chokepoint.batch.columnar``). The rule files are
shipped to the executors once, by broadcast, and rebuilt there (cached per process by their
content hash), so every executor answers with the same ``rules_version`` as the driver; so
are the screening lists imported on the driver's machine, which the executors screen
against in place of any of their own.
Rows that cannot be read come back with ``reject_field``/``reject_message`` set.

Cluster use: ``examples/spark_job.py`` (docs/batch.md, "Spark on a cluster").
"""

from __future__ import annotations

import codecs
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import date
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from chokepoint.batch.columns import CellMap, cell_maps, not_text, recode_table
from chokepoint.batch.compressed import COMPRESSED
from chokepoint.batch.compressed import book_format as file_format
from chokepoint.batch.flat import RAGGED, ragged
from chokepoint.batch.parts import inside, read_here
from chokepoint.batch.run import (
    OUT_COLUMNS,
    Summary,
    book_header,
    check_header,
    count_reject,
    count_results,
    evaluate_row,
    new_summary,
    review_note,
    text_encoding,
)
from chokepoint.rules.loader import DATA_DIR, content_hash, read_rule_tree, rules_from_bytes
from chokepoint.rules.ruleset import RuleSet
from chokepoint.spark_progress import Report, watched

RESULT_SCHEMA = pa.schema([(c, pa.int64() if c == "row" else pa.string())
                           for c in [*OUT_COLUMNS, "reject_field", "reject_message"]])
_RULES: dict[str, RuleSet] = {}


def rule_files() -> dict[str, bytes]:
    """The bundled rule tree as bytes, for broadcasting."""
    return read_rule_tree(DATA_DIR)


def rules_from_files(files: dict[str, bytes]) -> RuleSet:
    """Rebuild a rule set from broadcast bytes (once per executor process)."""
    key = content_hash(files)
    if key not in _RULES:
        _RULES[key] = rules_from_bytes(files, "broadcast rules")
    return _RULES[key]


def evaluate_rows(rows: list[dict[str, Any]], rules: RuleSet, override: date | None,
                  today: date) -> list[dict[str, Any]]:
    """Result rows for flat input rows (each with its ``row`` number), rejects included."""
    out = []
    for raw in rows:
        n = int(raw.pop("row"))
        kind, row = evaluate_row((n, raw), rules, override, today, False)
        if kind == "ok":
            out.append({**row, "reject_field": "", "reject_message": ""})
        else:
            out.append({c: "" for c in OUT_COLUMNS} | {
                "row": n, "id": row["id"], "reject_field": row["field"],
                "reject_message": row["message"]})
    return out


def evaluate_batch(batch: pa.RecordBatch, rules: RuleSet, override: date | None,
                   today: date) -> pa.RecordBatch:
    """Result rows for one Arrow batch of flat rows, by the columnar engine (the scalar
    engine takes the rows that cannot be read, and the whole batch if the columnar engine
    cannot take it); sorted by row number, as the batch came."""
    from chokepoint.batch.columnar import Unsupported, evaluate_table
    from chokepoint.batch.run import REGIMES

    table = pa.Table.from_batches([batch])
    ragged_rows: list[dict[str, Any]] = []  # (rows read whole: the scalar engine rejects them)
    if RAGGED in table.column_names:
        import pyarrow.compute as pc

        read = pc.is_null(table.column(RAGGED))
        if not pc.all(read).as_py():
            ragged_rows = evaluate_rows([{**row, RAGGED: _counted(row[RAGGED])} for row in
                                         table.filter(pc.invert(read)).to_pylist()],
                                        rules, override, today)
            table = table.filter(read)
        table = table.drop_columns([RAGGED])
        if not table.num_rows:
            return pa.RecordBatch.from_pylist(ragged_rows, schema=RESULT_SCHEMA)
    numbers = table.column("row").to_numpy(zero_copy_only=False)
    try:
        result, left = evaluate_table(table.drop_columns(["row"]), rules, override, today, 1,
                                      REGIMES, OUT_COLUMNS)
    except Unsupported:
        rows = evaluate_rows(table.to_pylist(), rules, override, today) + ragged_rows
        return pa.RecordBatch.from_pylist(sorted(rows, key=lambda r: int(r["row"])),
                                          schema=RESULT_SCHEMA)
    index = result.column("row").to_numpy() - 1
    result = result.set_column(0, "row", pa.array(numbers[index], type=pa.int64()))
    blank = pa.array([""] * result.num_rows, type=pa.string())
    result = result.append_column("reject_field", blank).append_column("reject_message", blank)
    scalar = ragged_rows
    if len(left):
        scalar = scalar + evaluate_rows(table.take(pa.array(left)).to_pylist(), rules,
                                        override, today)
    if scalar:
        result = pa.concat_tables([result.cast(RESULT_SCHEMA),
                                   pa.Table.from_pylist(scalar, schema=RESULT_SCHEMA)])
    ordered = result.cast(RESULT_SCHEMA).sort_by("row").combine_chunks()
    return ordered.to_batches()[0] if ordered.num_rows else pa.RecordBatch.from_pylist(
        [], schema=RESULT_SCHEMA)


_WHOLE = "_chokepoint_whole_row"  # a CSV row Spark could not split as its header says


def _counted(mark: str) -> str:
    """A ragged row's :data:`~chokepoint.batch.flat.RAGGED` cell from what
    :func:`read_book` keeps of it: the header's length, a line break, the row's text."""
    import csv
    import io

    header, text = mark.split("\n", 1)
    cells = next(csv.reader(io.StringIO(text)), [])
    return ragged(len(cells), int(header))[RAGGED]


def determine_dataframe(df: Any, override: date | None = None,
                        today: date | None = None) -> Any:
    """Results for every row of a Spark DataFrame in the flat layout (with a ``row`` column)."""
    from chokepoint.screening.service import imported_files, use_imported_files

    spark = df.sparkSession
    shipped = spark.sparkContext.broadcast(rule_files())
    # the lists imported on this machine: the executors screen against these alone
    lists = spark.sparkContext.broadcast(imported_files())
    day = today or date.today()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rules = rules_from_files(shipped.value)
        use_imported_files(lists.value)
        for batch in batches:
            yield evaluate_batch(batch, rules, override, day)

    from pyspark.sql.pandas.types import from_arrow_schema

    return df.mapInArrow(run, from_arrow_schema(RESULT_SCHEMA))


def book_format(inp: str | PurePath, given: str | None = None) -> str:
    """"parquet" or "csv": ``given``, or the book's suffix (a file's or a directory's of
    part files, a local path or any URI Spark reads, e.g. ``s3a://bucket/book.parquet``;
    a CSV file may be compressed, ``book.csv.gz``: Hadoop's codecs read it)."""
    if given is not None:
        if given not in ("parquet", "csv"):
            raise ValueError(f"format {given!r}: the flat layout is read from parquet or csv")
        return given
    # (the text itself: a PurePath would fold the "//" of a URI)
    name = str(inp).rstrip("/").rsplit("/", 1)[-1].lower()
    for fmt, packed in (("parquet", ()), ("csv", tuple(COMPRESSED))):
        if any(name.endswith(f".{fmt}{suffix}") for suffix in ("", *packed)):
            return fmt
    raise ValueError(f"{inp}: Spark reads the flat layout from .csv or .parquet; name "
                     "the format of a book whose name has neither")


def read_book(spark: Any, inp: str | PurePath, mapping: dict[str, str] | None = None,
              fmt: str | None = None, encoding: str | None = None) -> Any:
    """The book as a Spark DataFrame (see :func:`numbered_book`)."""
    return numbered_book(spark, inp, mapping, fmt, encoding)[0]


def numbered_book(spark: Any, inp: str | PurePath, mapping: dict[str, str] | None = None,
                  fmt: str | None = None, encoding: str | None = None) -> tuple[Any, int]:
    """The book as a Spark DataFrame of strings in the flat layout (columns renamed by
    ``mapping``, a column map as ``batch --columns`` reads it), read by Spark itself (no
    row passes through the driver), with ``row`` numbered in file order from 1. ``inp``
    is a file or a directory of part files, local or any URI Spark reads; ``fmt``
    ("parquet" or "csv") is needed when its name does not end in either, ``encoding`` for a
    CSV book not in UTF-8. With the number of rows. A partitioned dataset's partition
    values (``date=2025-06-02/``) are read as text, as every other cell."""
    with _partition_values_as_text(spark):
        return _numbered_book(spark, inp, mapping, fmt, encoding)


@contextmanager
def _partition_values_as_text(spark: Any) -> Iterator[None]:
    """Spark's inference of partition values' types off while the book is read (and put
    back as it was): it would read ``item_eccn=3E001`` as the number 30 and ``0801`` as
    801."""
    key = "spark.sql.sources.partitionColumnTypeInference.enabled"
    before = spark.conf.get(key, None)
    spark.conf.set(key, "false")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _numbered_book(spark: Any, inp: str | PurePath, mapping: dict[str, str] | None,
                   fmt: str | None, encoding: str | None) -> tuple[Any, int]:
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.types import ArrayType, StringType

    whole = None
    if book_format(inp, fmt) == "parquet":
        df = spark.read.parquet(str(inp))
    else:
        from pyspark.sql.types import StructField, StructType

        # RFC 4180 quoting, as Python's csv module reads it; empty cells are nulls (unknown)
        reader_options = {
            "escape": '"', "multiLine": True,
            # (Python's name for it, which the JDK knows too: gbk, cp1252, shift_jis)
            "encoding": codecs.lookup(encoding).name if encoding else "UTF-8"}
        # every part's header checked against the schema, by position: Spark otherwise
        # reads each part's cells under the first part's names (a part whose columns are in
        # another order would be read with its facts swapped)
        reader = (spark.read.options(**reader_options).option("header", True)
                  .option("enforceSchema", False))
        # The header as written: Spark renames a column named twice (to_country1,
        # to_country4), which would leave such a book's rows without their facts.
        header = spark.read.options(**reader_options).option("header", False).csv(
            str(inp)).first()
        check_header(inp, [str(c or "").lstrip("\ufeff") for c in header or ()],
                     mapping or {})
        names = reader.csv(str(inp)).columns  # (the header)
        # A row of more or fewer cells than the header is kept whole in a column of its
        # own, to be rejected as the row-by-row engine rejects it (flat.RAGGED); Spark
        # would otherwise drop or pad its cells.
        whole = _WHOLE
        schema = StructType([StructField(n, StringType()) for n in names]
                            + [StructField(whole, StringType())])
        df = (reader.schema(schema).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", whole).csv(str(inp)))
    cells = []
    if whole is not None:
        cells.append(F.when(F.col(whole).isNotNull(), F.concat(
            F.lit(f"{len(df.columns) - 1}\n"), F.col(whole))).alias(RAGGED))
    recode = cell_maps(mapping)
    for f in df.schema.fields:
        if f.name in (whole, RAGGED):  # (a book cannot set the row's own cell)
            continue
        name = f.name.lstrip("\ufeff")
        name = (mapping or {}).get(name, name)
        if name in recode and not isinstance(f.dataType, StringType):
            raise not_text(str(inp), f.name, f.dataType.simpleString())
        col = F.col(f"`{f.name}`")
        if isinstance(f.dataType, ArrayType):  # (as flat.list_cell: [] is "known: none")
            items = col.cast("array<string>")
            cell = F.when(F.size(items) == 0, F.lit("[]")).otherwise(F.concat_ws(";", items))
        else:
            cell = col.cast("string")
        cells.append(cell.alias(name))
    # Row numbers without a global sort: monotonically_increasing_id is ordered inside a
    # partition, and a file's rows are in order across the partitions holding its parts;
    # Spark packs files into partitions by size, so the runs of rows (a file's in a
    # partition) are counted and numbered in the order of the files' names, then of
    # the partitions.
    tagged = df.select(*cells, F.input_file_name().alias("_file"),
                       F.spark_partition_id().alias("_part"),
                       F.monotonically_increasing_id().alias("_mid"))
    runs = tagged.groupBy("_file", "_part").agg(F.count(F.lit(1)).alias("n"),
                                                 F.min("_mid").alias("first")).collect()
    starts, total = [], 0
    # (by the names as the local engines sort them: a URI escapes a name's characters, and
    # "part 2" < "part!" but "part%202" > "part!")
    for run in sorted(runs, key=lambda r: (unquote(r["_file"]), r["_part"])):
        # (each run's rows are numbered from its first id: row = id + its start)
        starts += [F.lit(f"{run['_file']}\0{run['_part']}"), F.lit(total - run["first"])]
        total += run["n"]
    run_of = F.concat_ws("\0", F.col("_file"), F.col("_part").cast("string"))
    base = F.create_map(*starts) if starts else F.create_map(F.lit(""), F.lit(0))
    row = (base[run_of] + F.col("_mid") + 1).cast("long")
    book = tagged.withColumn("row", row).drop("_file", "_part", "_mid")
    if recode:  # (in Python, as the local engines convert them: the same cells match)
        book = book.mapInArrow(_recoding(recode), book.schema)
    return book, total


def _recoding(recode: dict[str, CellMap]
              ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function converting the flat book's cells by the column map (its
    value maps and date format)."""
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = recode_table(pa.Table.from_batches([batch]), recode)
            yield from table.cast(batch.schema).to_batches()
    return run


SPREAD_MIN_ROWS = 1_000  # runs of fewer rows are not worth a slice of their own
SPREAD_RUNS_PER_CORE = 8  # (hashed to partitions: more runs even out the cores' shares)


def spread(book: Any, rows: int, cores: int) -> Any:
    """The numbered book over at least ``cores`` partitions, each holding whole runs of
    consecutive rows in order. A book Spark reads as that many partitions or more is
    left as read: no row moves. One read as fewer (a CSV file, which Spark does not split
    when cells may hold line breaks; a small Parquet file) is cut into runs of rows,
    spread by a hash shuffle and sorted inside each partition - without the pass over
    the book that a range partitioning makes to sample its ranges."""
    from pyspark.sql import functions as F  # noqa: N812

    if book.rdd.getNumPartitions() >= cores:
        return book
    run = max(SPREAD_MIN_ROWS, -(-rows // (cores * SPREAD_RUNS_PER_CORE)))
    return (book.repartition(cores, F.floor((F.col("row") - 1) / run))
            .sortWithinPartitions("row"))


def in_row_order(parts: list[Path], rows: int) -> Iterator[pa.Table]:
    """The rows of result part files (each a partition's rows: runs of consecutive row
    numbers, in any order) in the order of their ``row``, at most 100,000 rows at a time.
    RuntimeError if the parts do not hold rows 1 to ``rows`` once each."""
    import numpy as np
    import pyarrow.parquet as pq

    runs = []  # (first row, length, part, offset in the part)
    for part in parts:
        numbers = pq.read_table(part, columns=["row"]).column("row").to_numpy()
        cuts = np.flatnonzero(np.diff(numbers) != 1) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(numbers)], strict=True):
            if hi > lo:
                runs.append((int(numbers[lo]), int(hi - lo), part, int(lo)))
    runs.sort(key=lambda r: r[0])
    expected = 1
    for first, length, _, _ in runs:
        if first != expected:
            break
        expected += length
    if expected != rows + 1:
        raise RuntimeError(f"Spark's results do not hold rows 1 to {rows} once each "
                           f"(the rows in order end at {expected - 1})")
    files: dict[Path, Any] = {}  # (each open until its last run is copied)
    left = Counter(part for _, _, part, _ in runs)
    for _, length, part, offset in runs:
        if part not in files:
            files[part] = pq.ParquetFile(part)
        yield from _slice(files[part], offset, length)
        left[part] -= 1
        if not left[part]:
            files.pop(part).close()


def _slice(file: Any, offset: int, length: int) -> Iterator[pa.Table]:
    """Rows ``offset`` to ``offset + length`` of a Parquet file, in batches of at most
    100,000 rows (the row groups it does not reach are not read)."""
    start = 0
    for i in range(file.metadata.num_row_groups):
        size = file.metadata.row_group(i).num_rows
        if start < offset + length and offset < start + size:
            for batch in file.iter_batches(batch_size=100_000, row_groups=[i]):
                lo, hi = max(offset, start), min(offset + length, start + batch.num_rows)
                if lo < hi:
                    yield pa.Table.from_batches([batch.slice(lo - start, hi - lo)])
                start += batch.num_rows
        else:
            start += size


def spark_failure(exc: BaseException) -> str | None:
    """What a failure raised by Spark says, without the Java stack traces (None: not one
    of Spark's): the first line of each exception in the chain of causes, and the whole
    message of the last, which names the file and the problem."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    if isinstance(exc, PySparkException):
        return str(exc).strip()
    if not isinstance(exc, Py4JJavaError):
        return None
    lines: list[str] = []
    java, last = exc.java_exception, ""
    for _ in range(20):  # (a chain of causes; never a loop, but bounded all the same)
        if java is None:
            break
        text = str(java.getMessage() or "").strip()
        if text:
            last = text
            if text.splitlines()[0] not in lines:
                lines.append(text.splitlines()[0])
        java = java.getCause()
    lines += [line for line in last.splitlines()[1:] if line.strip()]
    return "\n".join(lines) or str(exc).splitlines()[0]


READING, DETERMINING, WRITING = ("reading the book (Spark tasks)",
                                 "determinations (Spark tasks)", "writing in row order")
"""The phases of :func:`run_spark_batch` as its ``progress`` is told them."""


def _phase(spark: Any, label: str, progress: Report | None) -> AbstractContextManager[None]:
    return nullcontext() if progress is None else watched(spark, label, progress)


def run_spark_batch(inp: Any, out: Any, override: date | None = None,
                    master: str = "local[2]", mapping: dict[str, str] | None = None,
                    encoding: str | None = None, conf: dict[str, str] | None = None,
                    progress: Report | None = None) -> Summary:
    """``chokepoint batch --engine spark``: Spark reads the book and evaluates it; the results
    stream back in input order into the same files as the local path writes (same columns,
    rejects file, OUT written only when complete), counted as the local engines count
    theirs. ``conf``: more Spark settings. ``progress`` is told how far each phase has
    got: reading the book and determining (in Spark's tasks), then writing OUT (in rows);
    Spark's own console bar is then off."""
    import csv
    import os
    import shutil
    import sys

    import pyarrow.compute as pc
    from pyspark.sql import SparkSession

    import chokepoint
    from chokepoint.batch.run import OUTPUTS, REJECT_COLUMNS, ResultWriter

    if file_format(inp) not in (".csv", ".parquet"):
        raise ValueError("--engine spark reads the flat layout (.csv or .parquet, or a "
                         "directory of part files so named; CSV may be compressed: "
                         ".csv.gz, .csv.bz2)")
    if not inp.exists():
        raise ValueError(f"{inp}: no such file")
    if out.resolve() == inp.resolve():
        raise ValueError(f"{out}: the results would replace the book; name another file")
    if inside(out, inp):  # (where the next run would read them as parts)
        raise ValueError(f"{out}: the results would be written among the book's parts; "
                         f"name a file outside {inp.name}")
    if file_format(out) not in (".csv", ".parquet", ".jsonl"):
        raise ValueError(f"{out}: output must be {OUTPUTS}")
    text_encoding(inp, encoding)  # (BatchError, a ValueError, for a name Python lacks)
    if read_here(inp):
        # (a directory's parts must share one header - BatchError naming the first that
        # differs; Spark would read each part's cells by the first's column positions)
        check_header(inp, book_header(inp, encoding), mapping or {})
    # The workers run this interpreter, with the package importable from where it is.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    package_root = str(Path(chokepoint.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    builder = SparkSession.builder
    if progress is not None:  # (one bar a line: Spark's would draw over it)
        builder = builder.config("spark.ui.showConsoleProgress", "false")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = (builder.master(master).appName("chokepoint")
             .config("spark.ui.enabled", "false")
             # larger Arrow batches: the columnar engine shares work within a batch
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
             .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
             # the JDK's charsets for CSV books (Spark 4 reads only UTF-8/16/32 and
             # Latin-1 without it)
             .config("spark.sql.legacy.javaCharsets", "true")
             .getOrCreate())
    summary = new_summary(rules_from_files(rule_files()))  # (the rules shipped below)
    writer = ResultWriter(out, list(OUT_COLUMNS), append=False, checkpoints=False)
    staging = out.with_name(out.name + ".spark")  # the executors' part files
    rejects_path = out.with_name(out.name + ".rejects.csv")
    rejects_partial = rejects_path.with_name(rejects_path.name + ".partial")
    try:
        with _phase(spark, READING, progress):
            book, rows = numbered_book(spark, inp, mapping, encoding=encoding)
        book = spread(book, rows, max(1, spark.sparkContext.defaultParallelism))
        results = determine_dataframe(book, override)
        # The executors write the results themselves, every partition at once; the driver
        # then copies them into OUT in row order, at most 100,000 rows at a time (no row is
        # held whole in the driver, none travels as a Python object).
        shutil.rmtree(staging, ignore_errors=True)
        with _phase(spark, DETERMINING, progress):
            results.write.parquet(str(staging))
        copied = 0
        with rejects_partial.open("w", newline="", encoding="utf-8") as fh:
            rejects = csv.DictWriter(fh, fieldnames=REJECT_COLUMNS)
            rejects.writeheader()
            for table in in_row_order(sorted(staging.glob("part-*.parquet")), rows):
                bad = pc.not_equal(pc.fill_null(table.column("reject_message"), ""), "")
                for r in table.filter(bad).to_pylist():
                    reject = {"row": r["row"], "id": r["id"], "field": r["reject_field"],
                              "message": r["reject_message"]}
                    rejects.writerow(reject)
                    count_reject(summary, reject)
                ok = table.filter(pc.invert(bad)).select(list(OUT_COLUMNS))
                if ok.num_rows:
                    writer.write_table(ok)
                    count_results(summary, ok)
                copied += table.num_rows
                if progress is not None:
                    progress(WRITING, copied, rows)
        writer.close()
    except BaseException:
        writer.close()
        for partial in (writer.partial, rejects_partial):  # no half-written output remains
            partial.unlink(missing_ok=True)
        raise
    finally:
        spark.stop()
        shutil.rmtree(staging, ignore_errors=True)
    writer.partial.replace(out)
    rejects_partial.replace(rejects_path)
    summary.rows = rows
    review_note(summary)
    return summary
