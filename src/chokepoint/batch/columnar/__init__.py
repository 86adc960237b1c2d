"""The columnar path of a batch: each rule evaluated once per distinct set of the facts it
reads, not once per row.

An order book repeats itself column by column even when no two rows are alike: a million
rows hold a few dozen item models, a few hundred customers, a handful of countries and
rule versions. Every column is dictionary-encoded (Arrow), and each provision's effect is
computed for each distinct combination of the codes of the facts it reads - found in the
rule data by :func:`chokepoint.rules.predicate.fact_reads` - plus the effects of the
provisions it refers to. The combination is done with NumPy over integer codes; each
distinct combination is evaluated by the scalar engine's own code on one representative
row, and the answer is spread back to every row that shares it. The regime's answer
(outcome, deciding rules, review policy, missing facts) is then combined the same way from
the provisions' effects. The answers are kept with the rule set from block to block, by
codes that stay the same in every block (:mod:`.sites`): a later block looks up, with
NumPy, every combination an earlier one evaluated.

So the answers are the scalar engine's, by construction: two rows that agree on everything
a provision can read get the same effect from it. The tests compare the two paths row by
row on random books (hypothesis) and on a fixed 10,000-row book.

Rows that fail validation take the scalar path, which reports them with row and field.
Rule data that this path cannot split by fact (a classification or derivation reading
outside the item) raises :class:`Unsupported`, and the caller falls back to the scalar
path for the whole book.
"""

from __future__ import annotations

import gc
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chokepoint.batch.columnar import arrow
from chokepoint.batch.columnar.book import Book
from chokepoint.batch.columnar.codes import Interner, Unsupported, group, row_numbers
from chokepoint.batch.columnar.evaluator import Evaluator
from chokepoint.batch.columnar.memory import keep_freed_memory
from chokepoint.engine.determine import strictest
from chokepoint.rules.ruleset import RuleSet

__all__ = ["CELLS", "Unsupported", "evaluate_table"]

CELLS = ("outcome", "rules", "review_policy", "unpolicied")
"""A regime's cells a table can ask for (``<REGIME>_<cell>``): the batch output's three,
and "1" where a licence requirement that applies has no review policy (batch/impact.py)."""


def _strings(codes: np.ndarray, table: list[str]) -> pa.Array:
    """Text per row, ``table[codes[row]]``, dictionary-encoded (each distinct text once, in
    sorted order: the codes depend on what the process evaluated before, the output must
    not): nothing is copied per row but an index."""
    texts = sorted(set(table))
    rank = {text: i for i, text in enumerate(texts)}
    remap = np.array([rank[v] for v in table], dtype=np.int32)
    return pa.DictionaryArray.from_arrays(arrow.integers(np.take(remap, codes)),
                                          arrow.strings(texts))


def _ids(array: pa.Array | pa.ChunkedArray | None, rows: int) -> pa.Array:
    """The id cells as the scalar path writes them (trimmed text, "" when empty)."""
    if array is None:
        return arrow.strings([""] * rows)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
        # printable ASCII at both ends needs no trimming; anything else is done in Python
        plain = pc.match_substring_regex(array, r"^[!-~](.*[!-~])?$")  # (null: no id)
        if not array.null_count and pc.all(plain).as_py():
            return array
        values = array.to_pylist()
        mask = plain.to_pylist()
        return arrow.strings([v if ok else (str(v).strip() if v is not None else "")
                              for v, ok in zip(values, mask, strict=True)])
    return arrow.strings(["" if v is None or (isinstance(v, float) and v != v)
                          else str(v).strip() for v in array.to_pylist()])


def evaluate_table(table: pa.Table, rules: RuleSet, override: date | None, today: date,
                   first_row: int, regimes: tuple[str, ...], columns: list[str]
                   ) -> tuple[pa.Table, np.ndarray]:
    """Answers for the valid rows of a chunk (row numbers from ``first_row``), as a table
    in ``columns`` order (its text columns but ``id`` dictionary-encoded), and the indices
    of the rows the scalar path must take."""
    keep_freed_memory()  # many row-length arrays: reuse freed ones (memory.py)
    collecting = gc.isenabled()
    gc.disable()  # many small objects, none cyclic: the collector would only slow it down
    try:
        return _evaluate(table, rules, override, today, first_row, regimes, columns)
    finally:
        if collecting:
            gc.enable()


def _evaluate(table: pa.Table, rules: RuleSet, override: date | None, today: date,
              first_row: int, regimes: tuple[str, ...], columns: list[str]
              ) -> tuple[pa.Table, np.ndarray]:
    book = Book(table, rules, override, today)
    ev = Evaluator(book, rules)
    rows = book.rows
    per_regime = {code: ev.regime(code) for code in ev.regimes}
    g = ev.group([(per_regime[c].codes, len(per_regime[c].table)) for c in per_regime])
    out: dict[str, Any] = {}
    overall: list[str] = []
    missing: list[str] = []
    cells: dict[str, list[list[str]]] = {c: [[], [], [], []] for c in regimes}
    for k in range(g.count):
        r = int(g.rep[k])
        answers = {c: per_regime[c].table[per_regime[c].codes[r]] for c in per_regime}
        present = [a[0] for a in answers.values() if a is not None]
        fields: list[str] = []
        for code in regimes:
            outcome, rule_ids, policy, needed, unpolicied = (answers.get(code)
                                                             or ("", "", "", [], False))
            fields += [f"{code}:{f}" for f in needed]
            for slot, value in zip(cells[code], (outcome, rule_ids, policy,
                                                 "1" if unpolicied else ""), strict=True):
                slot.append(value)
        overall.append(strictest(present))
        missing.append(";".join(fields))
    every = not book.invalid.any()  # (then no row needs picking out)
    keep = row_numbers(rows) if every else np.flatnonzero(~book.invalid)

    def kept(codes: np.ndarray) -> np.ndarray:
        return codes if every else codes[keep]

    ids = kept(g.ids)
    # screening hits: every slot's, in party order
    hit_parts = []
    for i, pg in enumerate(ev.party_groups):
        interner = Interner()
        table_i = np.array([interner.code(h) for h in ev.hits[i]], dtype=np.int64)
        hit_parts.append((table_i[pg.ids], interner.size, interner.values))
    hg = group([(c, n) for c, n, _ in hit_parts], rows)
    hit_text = [";".join(v for c, _, values in hit_parts if (v := values[c[r]]))
                for r in hg.rep]
    day_text = [d.isoformat() for d in book.days]
    out["row"] = arrow.integers((keep + first_row).astype(np.int64))
    id_cells = _ids(table.column("id") if "id" in table.column_names else None, rows)
    out["id"] = id_cells if every else id_cells.take(arrow.integers(keep))
    out["outcome"] = _strings(ids, overall)
    out["rules_version"] = _strings(np.zeros(len(keep), dtype=np.int64), [rules.content_hash])
    out["as_of"] = _strings(kept(book.day_code), day_text)
    for code in regimes:
        for name, values in zip(CELLS, cells[code], strict=True):
            if f"{code}_{name}" in columns:
                out[f"{code}_{name}"] = _strings(ids, values)
    out["missing_facts"] = _strings(ids, missing)
    out["screening_hits"] = _strings(kept(hg.ids), hit_text)
    result = pa.table({c: out[c] for c in columns})
    return result, np.flatnonzero(book.invalid)
