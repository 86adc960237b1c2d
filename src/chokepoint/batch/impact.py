"""Rule-change impact on a whole CSV or Parquet order book, the fast way.

On the day BIS publishes a rule, a compliance team wants the open orders whose answer it
moves. The columnar engine answers every row on both dates; the rows whose outcome,
deciding rules or review policy differ in any regime are then determined in full, and
only they, to name the rule change that moved them (:func:`chokepoint.diff.order_impact`).
Equal flat answers mean equal deciding answers (same outcome, same set of rules, same
review policies), so no moved row is missed.
"""

from __future__ import annotations

import gc
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chokepoint.batch.columnar import cache, evaluate_table
from chokepoint.batch.columnar_run import BLOCK, blocks
from chokepoint.batch.run import parse_row
from chokepoint.diff import order_impact
from chokepoint.rules.ruleset import RuleSet

_CELLS = ("outcome", "rules", "review_policy")


def book_impact(path: Path, rules: RuleSet, d1: date, d2: date,
                mapping: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The impact report (as ``order_impact`` gives it) for a flat book, or None when the
    book has a row that cannot be read - the caller then reads it row by row and reports
    that row."""
    regimes = tuple(sorted(rules.regimes))
    columns = ["row", *(f"{code}_{cell}" for code in regimes for cell in _CELLS)]
    moved: list[int] = []
    transactions: list[dict[str, Any]] = []
    first = 1
    # answers an earlier run kept (cache.py), kept again at the end; out of the garbage
    # collector's passes while the book is evaluated
    cache.load(rules, freeze=True)
    try:
        for table in blocks(path, mapping or {}, BLOCK):
            before, left = evaluate_table(table, rules, d1, d1, first, regimes, columns)
            if len(left):
                return None
            after, _ = evaluate_table(table, rules, d2, d2, first, regimes, columns)
            differs = pa.array(np.zeros(table.num_rows, dtype=np.bool_))
            for name in columns[1:]:
                differs = pc.or_(differs, pc.not_equal(before.column(name), after.column(name)))
            picked = np.flatnonzero(differs.to_numpy(zero_copy_only=False))
            for i, raw in zip(picked.tolist(), table.take(pa.array(picked)).to_pylist(),
                              strict=True):
                moved.append(first + i)
                cells = {k: ";".join(map(str, v)) if isinstance(v, list) else v
                         for k, v in raw.items()}
                transactions.append(parse_row(cells, first + i))
            first += table.num_rows
        cache.save(rules)
    finally:
        gc.unfreeze()
    return order_impact(transactions, rules, d1, d2, numbers=moved)
