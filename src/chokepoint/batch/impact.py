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
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chokepoint.batch.columnar import CELLS, cache, evaluate_table
from chokepoint.batch.columnar.codes import group
from chokepoint.batch.columnar_run import BLOCK, blocks
from chokepoint.batch.flat import COLUMNS, LAYOUT, list_cell, row_to_transaction
from chokepoint.batch.run import ResultWriter, result_schema
from chokepoint.diff import (
    Deciding,
    Explain,
    causes,
    changed_row_cells,
    changed_row_columns,
    impact_report,
    impact_summary,
    moved_row,
    party_entries,
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


def _cell_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """A book column's codes per row, equal where the cells are (a null its own code),
    and how many there are."""
    array = column.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        # (lists, numbers, booleans: as text, which tells them apart as well)
        array = pa.array([None if v is None else str(v) for v in array.to_pylist()],
                         pa.string())
    encoded = pc.dictionary_encode(array, null_encoding="encode")
    return encoded.indices.to_numpy(zero_copy_only=False), len(encoded.dictionary)


def _grouped(before: pa.Table, after: pa.Table, parties: pa.Table, regimes: tuple[str, ...],
             explain: Explain, entries_of: Callable[[dict[str, Any]], frozenset[str]]
             ) -> tuple[list[dict[str, Any] | None], np.ndarray]:
    """:func:`moved_row` for rows answered ``before`` and ``after`` (row, id, outcome and
    the regimes' cells; ``parties``: their party cells), once per distinct combination of
    their cells, which most moved rows share - and, where the cause is to be found among
    the parties' Entity List entries, once per combination and parties. Returns the
    entries (with no row or id; None where the cells differ in text but not in what
    decides), and each row's entry."""
    names = [n for n in before.column_names if n not in ("row", "id")]

    def one_date(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
        """The facts asked on one of the dates only."""
        return (set(a["missing_facts"].split(";")) ^ set(b["missing_facts"].split(";"))) - {""}

    coded = [_codes(t.column(n)) for t in (before, after) for n in names]
    g = group([(codes, len(texts)) for codes, texts in coded], before.num_rows)
    entries: list[dict[str, Any] | None] = []
    answers = []
    of_group = np.empty(g.count, dtype=np.int64)
    asked: list[bool] = []

    def probe() -> frozenset[str]:
        asked.append(True)  # (the cause depends on the row's parties: found per row)
        return frozenset()

    for k, r in enumerate(g.rep.tolist()):
        a, b = ({n: texts[codes[r]].as_py() for n, (codes, texts) in zip(names, half,
                                                                          strict=True)}
                for half in (coded[:len(names)], coded[len(names):]))
        answers.append((a, b))
        asked.clear()
        entry = moved_row(0, None, (a["outcome"], b["outcome"]), deciding_of(a, regimes),
                          deciding_of(b, regimes), explain, probe, one_date(a, b))
        of_group[k] = -1 if asked else len(entries)
        if not asked:
            entries.append(entry)
    per_row: np.ndarray = np.take(of_group, g.ids)
    needing = np.flatnonzero(per_row < 0)
    if not len(needing):
        return entries, per_row
    # those rows grouped by their answers' combination and their party cells: one row of
    # each group read (the party cells as the flat layout reads them: run.read_rows)
    taken = parties.take(pa.array(needing))
    parts = [(g.ids[needing], g.count)]
    parts += [_cell_codes(taken.column(name)) for name in taken.column_names]
    sub = group(parts, len(needing))
    at = np.empty(sub.count, dtype=np.int64)
    rows = taken.take(pa.array(sub.rep)).to_pylist()
    for j, (r, row) in enumerate(zip(sub.rep.tolist(), rows, strict=True)):
        cells = {c: list_cell(v) if isinstance(v, list) else v for c, v in row.items()}
        a, b = answers[int(g.ids[needing[r]])]
        at[j] = len(entries)
        entries.append(moved_row(0, None, (a["outcome"], b["outcome"]),
                                 deciding_of(a, regimes), deciding_of(b, regimes), explain,
                                 partial(entries_of, cells), one_date(a, b)))
    per_row[needing] = at[sub.ids]
    return entries, per_row


def _party_entries(rules: RuleSet, d1: date, d2: date
                   ) -> Callable[[dict[str, Any]], frozenset[str]]:
    """A row's parties' Entity List entries on either date, from its party cells (once
    per distinct cells)."""
    memo: dict[tuple[Any, ...], frozenset[str]] = {}

    def entries(cells: dict[str, Any]) -> frozenset[str]:
        key = tuple(cells.items())
        if key not in memo:
            parties = row_to_transaction(cells).get("parties") or []
            memo[key] = party_entries(parties, rules, d1) | party_entries(parties, rules, d2)
        return memo[key]

    return entries


def _moved(before: pa.Table, after: pa.Table, parties: pa.Table, regimes: tuple[str, ...],
           explain: Explain, entries_of: Callable[[dict[str, Any]], frozenset[str]]
           ) -> list[dict[str, Any]]:
    """The moved orders among rows answered ``before`` and ``after`` (:func:`_grouped`;
    entries share their nested values: the report is for reading)."""
    entries, ids = _grouped(before, after, parties, regimes, explain, entries_of)
    out = []
    for row, ident, k in zip(before.column("row").to_pylist(),
                             before.column("id").to_pylist(), ids.tolist(), strict=True):
        entry = entries[k]
        if entry is not None:
            out.append({**entry, "row": row, "id": ident or None})
    return out


def _moved_table(before: pa.Table, after: pa.Table, parties: pa.Table,
                 regimes: tuple[str, ...], explain: Explain,
                 entries_of: Callable[[dict[str, Any]], frozenset[str]],
                 counts: dict[str, int]) -> pa.Table:
    """:func:`_moved` as a table (:func:`chokepoint.diff.changed_row_cells`), built per
    combination and spread to the rows by Arrow; ``counts`` gains each cause's orders."""
    entries, ids = _grouped(before, after, parties, regimes, explain, entries_of)
    per_entry = np.bincount(ids, minlength=len(entries))
    for entry, n in zip(entries, per_entry.tolist(), strict=True):
        if entry is not None:
            cause = ", ".join(entry["caused_by"])
            counts[cause] = counts.get(cause, 0) + n
    live = np.array([e is not None for e in entries], dtype=np.bool_)
    keep = np.flatnonzero(live[ids])
    cells = [changed_row_cells(e, list(regimes)) for e in entries if e is not None]
    slots = np.cumsum(live, dtype=np.int64) - 1  # an entry's place among the live ones
    at = pa.array(slots[ids[keep]])
    keep = pa.array(keep)
    columns = changed_row_columns(list(regimes))
    data: dict[str, Any] = {"row": before.column("row").take(keep),
                            "id": before.column("id").take(keep)}
    for name in columns[2:]:
        data[name] = pa.array([c[name] for c in cells], pa.string()).take(at)
    return pa.table(data)


class Unreadable(Exception):
    """The book has a row the columnar engine cannot read (the row-by-row path names it)."""


def answered_blocks(path: Path, rules: RuleSet, d1: date, d2: date,
                    mapping: dict[str, str] | None = None,
                    progress: Callable[[int], None] | None = None,
                    encoding: str | None = None
                    ) -> Iterator[tuple[pa.Table, pa.Table, pa.Table]]:
    """A flat book's rows whose regimes' cells differ between ``d1`` and ``d2``, a block
    at a time, in book order: their answers on each date (row, id, outcome and the cells
    of :data:`chokepoint.batch.columnar.CELLS`) and their party cells. Raises
    :class:`Unreadable` at the first block with a row that cannot be read. ``progress`` is
    told the rows answered so far."""
    regimes = tuple(sorted(rules.regimes))
    cells = [f"{code}_{cell}" for code in regimes for cell in CELLS]
    columns = ["row", "id", "outcome", "missing_facts", *cells]
    first = 1
    # answers an earlier run kept (cache.py), kept again at the end; out of the garbage
    # collector's passes while the book is evaluated
    cache.load(rules, freeze=True)
    try:
        for table in blocks(path, mapping or {}, BLOCK, encoding):
            before, left = evaluate_table(table, rules, d1, d1, first, regimes, columns)
            if len(left):
                raise Unreadable(path)
            after, _ = evaluate_table(table, rules, d2, d2, first, regimes, columns)
            differs = pa.array(np.zeros(table.num_rows, dtype=np.bool_))
            for name in cells:
                differs = pc.or_(differs, pc.not_equal(before.column(name), after.column(name)))
            picked = pa.array(np.flatnonzero(differs.to_numpy(zero_copy_only=False)))
            party = [c for c in table.column_names if c in LAYOUT and c not in COLUMNS]
            yield before.take(picked), after.take(picked), table.select(party).take(picked)
            first += table.num_rows
            if progress is not None:
                progress(first - 1)
        cache.save(rules)
    finally:
        gc.unfreeze()


def book_impact(path: Path, rules: RuleSet, d1: date, d2: date,
                mapping: dict[str, str] | None = None,
                progress: Callable[[int], None] | None = None,
                encoding: str | None = None) -> dict[str, Any] | None:
    """The impact report (as ``order_impact`` gives it) for a flat book, or None when the
    book has a row that cannot be read - the caller then reads it row by row and reports
    that row."""
    regimes = tuple(sorted(rules.regimes))
    changes = rule_changes(rules, d1, d2)
    explain = causes(rules, changes)
    rows: list[dict[str, Any]] = []
    entries_of = _party_entries(rules, d1, d2)
    try:
        for before, after, parties in answered_blocks(path, rules, d1, d2, mapping,
                                                      progress, encoding):
            rows += _moved(before, after, parties, regimes, explain, entries_of)
    except Unreadable:
        return None
    return impact_report(rules, d1, d2, changes, rows)


def book_impact_to(out: Path, path: Path, rules: RuleSet, d1: date, d2: date,
                   mapping: dict[str, str] | None = None,
                   progress: Callable[[int], None] | None = None,
                   encoding: str | None = None) -> dict[str, Any] | None:
    """:func:`book_impact` with the moved orders written to the table ``out`` a block at a
    time (:func:`write_changed_rows`), and its summary returned
    (:func:`chokepoint.diff.impact_summary`); None, with nothing written, when the book has
    a row that cannot be read."""
    regimes = tuple(sorted(rules.regimes))
    explain = causes(rules, rule_changes(rules, d1, d2))
    counts: dict[str, int] = {}
    entries_of = _party_entries(rules, d1, d2)
    tables = (_moved_table(before, after, parties, regimes, explain, entries_of, counts)
              for before, after, parties in answered_blocks(path, rules, d1, d2, mapping,
                                                            progress, encoding))
    try:
        write_changed_rows(tables, out, list(regimes))
    except Unreadable:
        return None
    return impact_summary(rules, d1, d2, counts, out)


def changed_rows_table(rows: list[dict[str, Any]], regimes: list[str]) -> pa.Table:
    """Moved orders (:func:`chokepoint.diff.moved_row`) as a table."""
    return pa.Table.from_pylist([changed_row_cells(m, regimes) for m in rows],
                                schema=result_schema(changed_row_columns(regimes)))


def write_changed_rows(tables: Iterable[pa.Table], path: Path, regimes: list[str]) -> None:
    """Tables of moved orders (:func:`changed_rows_table`) written one after the other as
    one table (CSV, Parquet or JSON Lines by ``path``'s suffix), aside and renamed into
    place when whole; nothing is left behind if it fails."""
    writer = ResultWriter(path, changed_row_columns(regimes), append=False, checkpoints=False)
    try:
        for table in tables:
            writer.write_table(table)
        writer.close()
    except BaseException:
        writer.abandon()
        writer.partial.unlink(missing_ok=True)
        shutil.rmtree(path.with_name(path.name + ".parts"), ignore_errors=True)
        raise
    writer.partial.replace(path)
