"""Rule-change impact on a whole CSV or Parquet order book, the fast way.

On the day BIS publishes a rule, a compliance team wants the open orders whose answer it
moves. The columnar engine answers every row on both dates, and what decides each regime's
answer - its outcome, deciding rules and review policies (:func:`chokepoint.diff.deciding`)
- is read from its cells: the rules cell holds the basis and requirement rules, the policy
cell the requirements' review policies, and one more cell says whether a requirement has
none. The report is built from them by the same functions the row-by-row report uses
(:func:`chokepoint.diff.order_impact`); a test compares the two reports.
"""

from __future__ import annotations

import gc
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chokepoint.batch.columnar import CELLS, cache, evaluate_table
from chokepoint.batch.columnar.codes import group
from chokepoint.batch.columnar_run import BLOCK, blocks
from chokepoint.batch.run import ResultWriter
from chokepoint.diff import (
    Deciding,
    changed_row_cells,
    changed_row_columns,
    impact_report,
    moved_row,
    rule_changes,
)
from chokepoint.rules.ruleset import RuleSet


def deciding_of(cells: dict[str, Any], regimes: tuple[str, ...]) -> Deciding:
    """:func:`chokepoint.diff.deciding` from a row's flat cells (``<REGIME>_<cell>``,
    :data:`chokepoint.batch.columnar.CELLS`; a regime that does not reach the order has
    no outcome)."""
    out = {}
    for code in regimes:
        outcome = cells[f"{code}_outcome"]
        if not outcome:
            continue
        rules = frozenset(r for r in cells[f"{code}_rules"].split(";") if r)
        policies = {p for p in cells[f"{code}_review_policy"].split(";") if p}
        if cells[f"{code}_unpolicied"]:
            policies.add("")
        out[code] = (outcome, rules, frozenset(policies))
    return out


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """A text column's codes per row and the text of each code."""
    array = column.combine_chunks()
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(array)
    return array.indices.to_numpy(zero_copy_only=False), array.dictionary


def _moved(before: pa.Table, after: pa.Table, regimes: tuple[str, ...],
           changed_ids: set[str]) -> list[dict[str, Any]]:
    """:func:`moved_row` for rows answered ``before`` and ``after`` (row, id, outcome and
    the regimes' cells): once per distinct combination of their cells, which most moved
    rows share (their entries share its nested values too: the report is for reading)."""
    names = [n for n in before.column_names if n not in ("row", "id")]
    coded = [_codes(t.column(n)) for t in (before, after) for n in names]
    g = group([(codes, len(texts)) for codes, texts in coded], before.num_rows)
    entries = []
    for r in g.rep.tolist():
        a, b = ({n: texts[codes[r]].as_py() for n, (codes, texts) in zip(names, half,
                                                                          strict=True)}
                for half in (coded[:len(names)], coded[len(names):]))
        entries.append(moved_row(0, None, (a["outcome"], b["outcome"]),
                                 deciding_of(a, regimes), deciding_of(b, regimes), changed_ids))
    out = []
    for row, ident, k in zip(before.column("row").to_pylist(),
                             before.column("id").to_pylist(), g.ids.tolist(), strict=True):
        entry = entries[k]
        if entry is not None:  # (cells that differ in text, not in what they decide: none)
            out.append({**entry, "row": row, "id": ident or None})
    return out


def book_impact(path: Path, rules: RuleSet, d1: date, d2: date,
                mapping: dict[str, str] | None = None,
                progress: Callable[[int], None] | None = None) -> dict[str, Any] | None:
    """The impact report (as ``order_impact`` gives it) for a flat book, or None when the
    book has a row that cannot be read - the caller then reads it row by row and reports
    that row. ``progress`` is told the rows answered so far, after each block."""
    regimes = tuple(sorted(rules.regimes))
    cells = [f"{code}_{cell}" for code in regimes for cell in CELLS]
    columns = ["row", "id", "outcome", *cells]
    changes = rule_changes(rules, d1, d2)
    changed_ids = {c["id"] for c in changes}
    rows: list[dict[str, Any]] = []
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
            for name in cells:
                differs = pc.or_(differs, pc.not_equal(before.column(name), after.column(name)))
            picked = pa.array(np.flatnonzero(differs.to_numpy(zero_copy_only=False)))
            rows += _moved(before.take(picked), after.take(picked), regimes, changed_ids)
            first += table.num_rows
            if progress is not None:
                progress(first - 1)
        cache.save(rules)
    finally:
        gc.unfreeze()
    return impact_report(rules, d1, d2, changes, rows)


def write_changed_rows(report: dict[str, Any], path: Path, regimes: list[str]) -> None:
    """The report's moved orders as a table (CSV, Parquet or JSON Lines by ``path``'s
    suffix; :func:`chokepoint.diff.changed_row_cells`), written aside and renamed into
    place when whole."""
    columns = changed_row_columns(regimes)
    writer = ResultWriter(path, columns, append=False, checkpoints=False)
    try:
        for moved in report["changed_rows"]:
            writer.write(changed_row_cells(moved, regimes))
        writer.close()
    except BaseException:  # (nothing to resume: nothing is left behind)
        writer.abandon()
        writer.partial.unlink(missing_ok=True)
        shutil.rmtree(path.with_name(path.name + ".parts"), ignore_errors=True)
        raise
    writer.partial.replace(path)
