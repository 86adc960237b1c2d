"""Order-book throughput: the scalar and columnar paths (and Spark local[2] with --spark),
peak memory.

Run: .venv/bin/python bench/bench_batch.py [--rows 100000] [--date 2025-06-01] [--spark]
     [--workers 2] [--columnar-only]
The columnar path is timed twice: evaluation alone (the book already read, as the issue's
target excludes the file read) and the whole `run_batch` (read, evaluate, write).
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
from typing import Any

import pyarrow.parquet as pq

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
    parser.add_argument("--columnar-only", action="store_true",
                        help="time the scalar path on the first 20,000 rows only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "book.parquet"
        start = time.perf_counter()
        write_book(book, args.rows, seed=7)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - start:.1f} s")
        rules = default_rules()
        scalar_book = book
        if args.columnar_only and args.rows > 20_000:
            scalar_book = Path(tmp) / "head.parquet"
            pq.write_table(pq.read_table(book).slice(0, 20_000), scalar_book)
        start = time.perf_counter()
        summary = run_batch(scalar_book, Path(tmp) / "out.parquet", rules, override=args.date)
        elapsed = time.perf_counter() - start
        scalar_rate = summary.written / elapsed
        print(f"scalar path: {summary.written:,} rows in {elapsed:.1f} s = "
              f"{scalar_rate:,.0f} rows/s (one core; outcomes {summary.outcomes})")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory: {peak:,.0f} MiB")
        columnar(book, rules, args, scalar_rate, Path(tmp))
        if args.workers > 1 and not args.columnar_only:
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


def columnar(book: Path, rules: Any, args: Any, scalar_rate: float, tmp: Path) -> None:
    from chokepoint.batch import columnar_run
    from chokepoint.batch.run import OUT_COLUMNS

    today = date.today()
    evaluated = seconds = 0.0
    first = 1
    per_block: list[tuple[int, float]] = []
    for table in columnar_run.blocks(book, {}, columnar_run.BLOCK):  # reading: not timed
        start = time.perf_counter()
        result, _ = columnar_run.evaluate_block(table, first, rules, args.date, today,
                                                OUT_COLUMNS)
        per_block.append((result.num_rows, time.perf_counter() - start))
        seconds += per_block[-1][1]
        evaluated += result.num_rows
        first += table.num_rows
    rate = evaluated / seconds
    print(f"columnar path, evaluation only (one core, blocks of {columnar_run.BLOCK:,}): "
          f"{evaluated:,.0f} rows in {seconds:.1f} s = {rate:,.0f} rows/s = "
          f"{rate / scalar_rate:.0f}x the scalar path")
    if len(per_block) > 1:  # a process's first block finds nothing kept from earlier ones
        later = per_block[1:]
        print(f"  first block {per_block[0][1]:.2f} s; later blocks "
              f"{sum(n for n, _ in later) / sum(t for _, t in later):,.0f} rows/s")
    # (each output format: CSV rows are built a block at a time, Parquet streamed)
    for workers, kind in [(w, k) for w in sorted({1, args.workers})
                          for k in ("parquet", "csv")]:
        start = time.perf_counter()
        summary = run_batch(book, tmp / f"columnar{workers}.{kind}", rules,
                            override=args.date, engine="columnar", workers=workers)
        elapsed = time.perf_counter() - start
        print(f"columnar path, whole run (read, evaluate, write {kind}), {workers} "
              f"process(es): {summary.written:,} rows in {elapsed:.1f} s = "
              f"{summary.written / elapsed:,.0f} rows/s (the rule set's caches warm from "
              "the runs above; `chokepoint batch` in a fresh process starts cold)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:,.0f} MiB")
    if args.workers > 1:
        processes(book, args, tmp)


def processes(book: Path, args: Any, tmp: Path) -> None:
    """Evaluation alone on ``--workers`` processes, each process started cold as
    `chokepoint batch` starts them (eval_processes.py): with no answers kept on disk; with
    the answers a run over another book of the same mix left there (seed 8); with those
    one run over the book itself left (a re-run); and with those of two (a nightly job's
    steady state: how rules split into sites follows how many values the facts have taken
    so far, so the first run's early blocks were evaluated in sites the next run no longer
    uses, and the second keeps those too). The runs that keep answers take one process, so
    that they keep every block's."""
    import json
    import os
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    other = tmp / "other.parquet"
    write_book(other, args.rows, seed=8)

    def evaluate(setting: str) -> dict[str, Any]:
        env = {**os.environ, "CHOKEPOINT_CACHE_DIR": setting}
        out = subprocess.run([sys.executable, str(here / "eval_processes.py"), str(book),
                              "--workers", str(args.workers)], env=env, check=True,
                             capture_output=True, text=True).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    def keep(source: Path, where: Path, times: int = 1) -> str:
        env = {**os.environ, "CHOKEPOINT_CACHE_DIR": str(where)}
        for _ in range(times):
            subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(source),
                            str(tmp / "kept.out.parquet"), "--engine", "columnar",
                            "--workers", "1"], env=env, check=True, capture_output=True)
        return str(where)

    runs = (("cold", lambda: "off"),
            ("answers kept by a run over another book", lambda: keep(other, tmp / "c1")),
            ("answers kept by a run over this book", lambda: keep(book, tmp / "c2")),
            ("answers kept by two runs over this book", lambda: keep(book, tmp / "c3", 2)))
    for label, setting in runs:
        where = setting()
        for _ in range(3):
            got = evaluate(where)
            print(f"columnar path, evaluation only, {args.workers} processes, {label}: "
                  f"{got['rows']:,} rows in {got['evaluate_s']:.2f} s = "
                  f"{got['rows_per_s']:,} rows/s (answers loaded first: "
                  f"{got['entries_loaded']:,} in {got['load_s']:.2f} s)")


if __name__ == "__main__":
    main()
