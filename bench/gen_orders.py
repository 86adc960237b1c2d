"""Write a seeded synthetic order book (chokepoint.batch.synthetic) to a file.

Run: .venv/bin/python bench/gen_orders.py OUT.{parquet,csv} --rows 1000000 [--seed 7]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chokepoint.batch.synthetic import write_book


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write_book(args.out, args.rows, args.seed)
    print(f"{args.out}: {args.rows:,} rows")


if __name__ == "__main__":
    main()
