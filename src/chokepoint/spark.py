"""Order books beyond one machine: the same evaluation applied to a Spark DataFrame.

``determine_dataframe`` maps a DataFrame in the flat layout (``docs/batch.md``, string
columns, plus a ``row`` number) to result rows with ``mapInArrow``. The rule files are
shipped to the executors once, by broadcast, and rebuilt there (cached per process by their
content hash), so every executor answers with the same ``rules_version`` as the driver.
Rows that cannot be read come back with ``reject_field``/``reject_message`` set.

Cluster use::

    spark-submit --py-files chokepoint.whl my_job.py   # my_job calls determine_dataframe
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pyarrow as pa

from chokepoint.batch.flat import RowError, row_to_transaction
from chokepoint.batch.run import OUT_COLUMNS, result_row
from chokepoint.contract import InputError, validate_transaction
from chokepoint.engine.determine import as_of
from chokepoint.rules.loader import DATA_DIR, content_hash, read_rule_tree, rules_from_bytes
from chokepoint.rules.ruleset import RuleSet

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
    from chokepoint.screening.service import determine_screened

    out = []
    for raw in rows:
        n = int(raw.pop("row"))
        empty = {c: "" for c in OUT_COLUMNS} | {"row": n, "id": raw.get("id") or ""}
        try:
            txn = validate_transaction(row_to_transaction(raw), n - 1)
            d = determine_screened(txn, rules, as_of(txn, override, today))
            out.append({**result_row(n, d, False), "reject_field": "",
                        "reject_message": ""})
        except (InputError, RowError) as exc:
            message = str(exc)
            field = exc.column if isinstance(exc, RowError) else (
                message.split(": ")[1] if message.count(": ") >= 2 else "")
            out.append({**empty, "reject_field": field, "reject_message": message})
    return out


def determine_dataframe(df: Any, override: date | None = None,
                        today: date | None = None) -> Any:
    """Results for every row of a Spark DataFrame in the flat layout (with a ``row`` column)."""
    spark = df.sparkSession
    shipped = spark.sparkContext.broadcast(rule_files())
    day = today or date.today()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rules = rules_from_files(shipped.value)
        for batch in batches:
            results = evaluate_rows(batch.to_pylist(), rules, override, day)
            yield pa.RecordBatch.from_pylist(results, schema=RESULT_SCHEMA)

    from pyspark.sql.pandas.types import from_arrow_schema

    return df.mapInArrow(run, from_arrow_schema(RESULT_SCHEMA))


def run_spark_batch(inp: Any, out: Any, override: date | None = None,
                    master: str = "local[2]") -> tuple[int, int]:
    """``chokepoint batch --engine spark``: read the book, evaluate on Spark, write as the
    local path does (same columns, input order, rejects file). Returns (written, rejected)."""
    import csv
    import json

    import pyarrow.parquet as pq
    from pyspark.sql import SparkSession

    from chokepoint.batch.run import REJECT_COLUMNS, read_rows

    rows = []
    for n, raw in read_rows(inp, {}):
        if "__json__" in raw:
            raise ValueError("--engine spark reads the flat layout (.csv or .parquet)")
        rows.append({"row": n, **{k: (None if v is None else str(v)) for k, v in raw.items()}})
    import os
    import sys
    from pathlib import Path

    import chokepoint

    # The workers run this interpreter, with the package importable from where it is.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    package_root = str(Path(chokepoint.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    spark = (SparkSession.builder.master(master).appName("chokepoint")
             .config("spark.ui.enabled", "false")
             .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
             .getOrCreate())
    try:
        columns = sorted({k for r in rows for k in r if k != "row"})
        table = pa.Table.from_pylist(rows, schema=pa.schema(
            [("row", pa.int64()), *[(c, pa.string()) for c in columns]]))
        results = determine_dataframe(spark.createDataFrame(table), override)
        collected = sorted((r.asDict() for r in results.collect()), key=lambda r: r["row"])
    finally:
        spark.stop()
    done = [r for r in collected if not r["reject_field"] and not r["reject_message"]]
    rejected = [r for r in collected if r["reject_message"]]
    partial = out.with_name(out.name + ".partial")
    if out.suffix.lower() == ".parquet":
        pq.write_table(pa.Table.from_pylist([{c: r[c] for c in OUT_COLUMNS} for r in done]),
                       partial)
    elif out.suffix.lower() == ".jsonl":
        partial.write_text("".join(json.dumps({c: r[c] for c in OUT_COLUMNS},
                                              ensure_ascii=False) + "\n" for r in done))
    else:
        with partial.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=OUT_COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(done)
    partial.replace(out)
    with out.with_name(out.name + ".rejects.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=REJECT_COLUMNS)
        w.writeheader()
        for r in rejected:
            w.writerow({"row": r["row"], "id": r["id"], "field": r["reject_field"],
                        "message": r["reject_message"]})
    return len(done), len(rejected)
