"""The columnar path's evaluation on several processes, in a process of its own (so that it
starts cold, as `chokepoint batch` does): the book is read first (not timed), then the
rule set's kept answers are loaded from the cache directory (batch.columnar.cache; timed
on its own), then the processes are forked and each evaluates its share of the blocks.

Run: .venv/bin/python bench/eval_processes.py BOOK.parquet [--workers 2] [--block 500000]
Prints one JSON line: rows, load seconds, evaluation seconds (from the fork, or the
sample, to the last process done), rows/s. Used by bench_batch.py; the cache directory
is CHOKEPOINT_CACHE_DIR.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from datetime import date
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("book", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--block", type=int, default=500_000)
    args = parser.parse_args()

    from chokepoint.batch import columnar_run
    from chokepoint.batch.columnar import cache, evaluate_table
    from chokepoint.batch.run import OUT_COLUMNS, REGIMES
    from chokepoint.rules.loader import default_rules

    rules = default_rules()
    blocks = list(columnar_run.blocks(args.book, {}, args.block))  # reading: not timed
    rows = sum(b.num_rows for b in blocks)
    start = time.perf_counter()
    loaded = cache.load(rules, freeze=True)  # (as `chokepoint batch` loads them)
    load = time.perf_counter() - start
    today = date.today()
    start = time.perf_counter()
    # as `chokepoint batch` does before it forks its workers (columnar_run.write_columnar):
    # with more workers than cores, the caches they share warmed on a sample first; the
    # parent's objects frozen
    if args.workers > (os.cpu_count() or 1):
        evaluate_table(blocks[0].slice(0, 5000), rules, None, today, 1, REGIMES,
                       OUT_COLUMNS)
    gc.freeze()
    children = []
    for w in range(args.workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for b in blocks[w::args.workers]:
                    evaluate_table(b, rules, None, today, 1, REGIMES, OUT_COLUMNS)
            except BaseException:
                code = 1
            os._exit(code)
        children.append(pid)
    failed = sum(os.waitpid(pid, 0)[1] != 0 for pid in children)
    seconds = time.perf_counter() - start
    if failed:
        raise SystemExit(f"{failed} process(es) failed")
    print(json.dumps({"rows": rows, "workers": args.workers, "entries_loaded": loaded,
                      "load_s": round(load, 3), "evaluate_s": round(seconds, 3),
                      "rows_per_s": round(rows / seconds)}))


if __name__ == "__main__":
    main()
