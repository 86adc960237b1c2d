"""Rule-change impact on an order book: `chokepoint diff --from --to BOOK --out TABLE`.

Run: .venv/bin/python bench/bench_diff.py [--rows 1000000] [--from 2024-12-01]
     [--to 2024-12-02] [--scalar-rows 2000]
Generates a seeded synthetic book (chokepoint.batch.synthetic, seed 7) and times the
whole command in a fresh process: first with no answers kept (an empty cache directory),
then with the answers that run kept. For scale, the row-by-row report
(`chokepoint.diff.order_impact`: every order determined in full on both dates) is timed
on the book's first --scalar-rows rows. Prints rows/s, the orders moved and the peak
resident memory of the command. Not a test: figures for the notes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--from", dest="d1", type=date.fromisoformat,
                        default=date(2024, 12, 1))
    parser.add_argument("--to", dest="d2", type=date.fromisoformat, default=date(2024, 12, 2))
    parser.add_argument("--scalar-rows", type=int, default=2_000)
    args = parser.parse_args()

    from chokepoint.batch.run import parse_row, read_rows
    from chokepoint.batch.synthetic import write_book
    from chokepoint.diff import order_impact
    from chokepoint.rules.loader import default_rules

    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "book.parquet"
        write_book(book, args.rows, seed=7)
        env = {**os.environ, "CHOKEPOINT_CACHE_DIR": str(Path(tmp) / "cache")}
        command = [sys.executable, "-m", "chokepoint", "diff", "--from", str(args.d1),
                   "--to", str(args.d2), str(book), "--out", str(Path(tmp) / "moved.parquet"),
                   "--format", "json"]
        for label in ("nothing kept", "answers kept by the run before"):
            start = time.perf_counter()
            done = subprocess.run(command, env=env, check=True, capture_output=True,
                                  text=True)
            elapsed = time.perf_counter() - start
            moved = json.loads(done.stdout)["changed_row_count"]
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"diff --out, whole command, {label}: {args.rows:,} rows in "
                  f"{elapsed:.1f} s = {args.rows / elapsed:,.0f} rows/s; {moved:,} orders "
                  f"moved; peak resident memory so far {peak:,.0f} MiB")
        rules = default_rules()
        head = [parse_row(raw, n)
                for n, raw in itertools.islice(read_rows(book, {}), args.scalar_rows)]
        if head:
            start = time.perf_counter()
            report = order_impact(head, rules, args.d1, args.d2)
            elapsed = time.perf_counter() - start
            print(f"row by row (every order determined on both dates): {len(head):,} rows "
                  f"in {elapsed:.1f} s = {len(head) / elapsed:,.0f} rows/s; "
                  f"{len(report['changed_rows']):,} moved")


if __name__ == "__main__":
    main()
