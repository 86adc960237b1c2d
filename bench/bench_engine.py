"""Scalar engine throughput (full traces, one core) and `chokepoint check` cold start.

Run: .venv/bin/python bench/bench_engine.py [--n 20000]
Prints determinations per second in-process, and the wall time of `chokepoint check` on one
transaction from a cold start (median of several runs). Not a test: figures for the notes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from chokepoint.contract import read_transactions
from chokepoint.engine import determine
from chokepoint.engine.determine import as_of
from chokepoint.rules.loader import default_rules

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "src" / "chokepoint" / "examples").glob("*.yaml"))


def engine_throughput(n: int) -> float:
    rules = default_rules()
    txns = [t for f in EXAMPLES for t in read_transactions(f)]
    dates = [date(2023, 6, 1), date(2024, 9, 16), date(2025, 4, 7), date(2026, 2, 2)]
    work = [(txns[i % len(txns)], dates[(i // len(txns)) % len(dates)]) for i in range(n)]
    for t, d in work[:200]:  # warm the per-date snapshots
        determine(t, rules, d)
    start = time.perf_counter()
    steps = 0
    for t, d in work:
        result = determine(t, rules, d)
        steps += len(result["jurisdictions"]["US"]["trace"])
    elapsed = time.perf_counter() - start
    print(f"scalar engine: {n} determinations in {elapsed:.2f} s = {n / elapsed:,.0f}/s "
          f"(full traces, {steps / n:.0f} trace steps each, one process)")
    return n / elapsed


def cold_start(runs: int) -> float:
    exe = Path(sys.executable).parent / "chokepoint"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(exe), "check", str(EXAMPLES[0]), "--format", "json"],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"chokepoint check, one transaction, cold start: median {median:.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, {runs} runs)")
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    engine_throughput(args.n)
    cold_start(args.runs)
    _ = as_of  # noqa: F841 - kept importable for ad-hoc use


if __name__ == "__main__":
    main()
