"""Order-book throughput: the local batch path (and Spark local[2] with --spark), peak memory.

Run: .venv/bin/python bench/bench_batch.py [--rows 100000] [--date 2025-06-01] [--spark]
     [--workers 2]
Generates a seeded synthetic book (chokepoint.batch.synthetic), runs `run_batch` on it in
this process, and prints rows/s and the peak resident memory. Not a test: figures for the
notes.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

from chokepoint.batch.run import run_batch
from chokepoint.batch.synthetic import write_book
from chokepoint.rules.loader import default_rules


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--date", type=date.fromisoformat, default=None,
                        help="evaluate the whole book on this day (default: each row's date)")
    parser.add_argument("--spark", action="store_true", help="also run Spark local[2]")
    parser.add_argument("--workers", type=int, default=1,
                        help="also run the local path with this many processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "book.parquet"
        start = time.perf_counter()
        write_book(book, args.rows, seed=7)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - start:.1f} s")
        rules = default_rules()
        start = time.perf_counter()
        summary = run_batch(book, Path(tmp) / "out.parquet", rules, override=args.date)
        elapsed = time.perf_counter() - start
        print(f"local path: {summary.written:,} rows in {elapsed:.1f} s = "
              f"{summary.written / elapsed:,.0f} rows/s (one core; outcomes {summary.outcomes})")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory: {peak:,.0f} MiB")
        if args.workers > 1:
            start = time.perf_counter()
            summary = run_batch(book, Path(tmp) / "out2.parquet", rules, override=args.date,
                                workers=args.workers)
            elapsed = time.perf_counter() - start
            print(f"local path, {args.workers} processes: {summary.written:,} rows in "
                  f"{elapsed:.1f} s = {summary.written / elapsed:,.0f} rows/s")
        if args.spark:
            from chokepoint.spark import run_spark_batch

            start = time.perf_counter()
            run_spark_batch(book, Path(tmp) / "spark.parquet", args.date, master="local[2]")
            elapsed = time.perf_counter() - start
            print(f"spark local[2]: {args.rows:,} rows in {elapsed:.1f} s = "
                  f"{args.rows / elapsed:,.0f} rows/s (including session start)")


if __name__ == "__main__":
    main()
