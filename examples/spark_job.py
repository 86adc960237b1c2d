"""chokepoint on a Spark cluster: every row of an order book in the flat layout determined
by the executors, the results written as a Parquet dataset.

    spark-submit [cluster options] examples/spark_job.py BOOK OUT [--format parquet|csv]
        [--columns map.yaml] [--encoding gbk] [--date YYYY-MM-DD]

BOOK is a Parquet or CSV file or a directory of part files, on any file system Spark reads
(hdfs://, s3a://, file://). OUT receives one row per book row: the columns of
`chokepoint batch` output, plus `reject_field` and `reject_message`, set on the rows that
could not be read (their answer columns are empty: such a row has no determination). How
to give the executors chokepoint and its libraries: docs/batch.md, "Spark on a cluster".
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from pyspark.sql import SparkSession

from chokepoint.batch.columns import read_column_map
from chokepoint.spark import determine_dataframe, read_book


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("book", help="the order book (file or directory, any Spark URI)")
    parser.add_argument("out", help="where to write the results (a Parquet dataset)")
    parser.add_argument("--format", choices=["parquet", "csv"],
                        help="the book's format, when its name ends in neither")
    parser.add_argument("--columns", type=Path,
                        help="a column map, as `chokepoint batch --columns` reads it")
    parser.add_argument("--encoding", help="a CSV book's encoding, if not UTF-8 (e.g. gbk)")
    parser.add_argument("--date", type=date.fromisoformat,
                        help="evaluate every row as of this day instead of its own date")
    args = parser.parse_args()

    spark = (SparkSession.builder.appName("chokepoint")
             # larger Arrow batches: the columnar engine shares work within a batch
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
             # the JDK's charsets for --encoding (Spark 4 reads only UTF-8/16/32 and Latin-1
             # without it)
             .config("spark.sql.legacy.javaCharsets", "true")
             .getOrCreate())
    try:
        book = read_book(spark, args.book, read_column_map(args.columns), args.format,
                         args.encoding)
        # (errorifexists: an earlier run's results are never mixed with this one's)
        determine_dataframe(book, args.date).write.mode("errorifexists").parquet(args.out)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
