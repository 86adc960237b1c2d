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
the provisions' effects.

So the answers are the scalar engine's, by construction: two rows that agree on everything
a provision can read get the same effect from it. The tests compare the two paths row by
row on random books (hypothesis) and on a fixed 10,000-row book.

Rows that fail validation take the scalar path, which reports them with row and field.
Rule data that this path cannot split by fact (a classification or derivation reading
outside the item) raises :class:`Unsupported`, and the caller falls back to the scalar
path for the whole book.
"""

from __future__ import annotations

import bisect
import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chokepoint.batch.flat import COLUMNS, MAX_PARTIES, PARTY_COLUMNS, RowError, row_to_transaction
from chokepoint.contract import InputError, validate_transaction
from chokepoint.engine.catalogue import apply_catalogue
from chokepoint.engine.classify import classify, derive
from chokepoint.engine.determine import (
    apply_aliases,
    as_of,
    regime_applies,
    resolve_parties,
    settle_applies,
    strictest,
)
from chokepoint.engine.evaluate import Context, compiled
from chokepoint.engine.jurisdiction import (
    RegimeEvaluation,
    both,
    either,
    evaluate_regime,
    outcome_of,
)
from chokepoint.engine.logic import Result, Unknown, negate
from chokepoint.engine.policy import review_policy
from chokepoint.rules.model import PER_ENTRY
from chokepoint.rules.predicate import (
    All,
    AnyOf,
    FactReads,
    InGroup,
    Not,
    ParamRef,
    ParamTrue,
    Pred,
    Ref,
    fact_reads,
    walk,
)
from chokepoint.rules.ruleset import RuleSet
from chokepoint.screening.service import imported_lists, screen_parties, screener_for

SHARED = "shared"  # the facts before any regime's aliases, list look-ups and classification
_FILLER: dict[str, Any] = {"item": {}, "to_country": "CN"}  # a valid rest of a transaction
_SPARSE_LIMIT = 1 << 24
_FALSE: Result = (False, ())
_TRUE: Result = (True, ())


class Unsupported(Exception):
    """The rule data uses something the columnar path cannot split by fact."""


# -- integer codes ---------------------------------------------------------------------------

@dataclass
class Groups:
    """Rows grouped by a combined key: ``ids`` per row, ``count`` groups, ``rep`` one row
    of each group (any row: every row of a group gives the same answer)."""

    ids: np.ndarray
    count: int
    rep: np.ndarray


def _densify(key: np.ndarray, space: int) -> tuple[np.ndarray, int]:
    if space <= _SPARSE_LIMIT:
        present = np.zeros(space, dtype=np.bool_)
        present[key] = True
        rank = np.cumsum(present, dtype=np.int64) - 1
        return rank[key], int(rank[-1] + 1) if space else 0
    uniq, ids = np.unique(key, return_inverse=True)
    return ids.astype(np.int64), len(uniq)


_ARANGE: list[np.ndarray] = [np.arange(0, dtype=np.int64)]


def _arange(rows: int) -> np.ndarray:
    if len(_ARANGE[0]) < rows:
        _ARANGE[0] = np.arange(rows, dtype=np.int64)
    return _ARANGE[0][:rows]


def group(parts: list[tuple[np.ndarray, int]], rows: int) -> Groups:
    """Rows grouped by the tuple of their codes (each part: codes, number of codes)."""
    key = np.zeros(rows, dtype=np.int64)
    space = 1
    for codes, size in parts:
        if size <= 1:
            continue
        if space * size >= 1 << 62:
            key, space = _densify(key, space)
        key *= size
        key += codes
        space *= size
    ids, count = _densify(key, space)
    rep = np.empty(count, dtype=np.int64)
    rep[ids] = _arange(rows)
    return Groups(ids, count, rep)


_RESULT_KEYS: dict[Any, str] = {}
_SCALARS = (str, bool, int, float)


def _is_result(value: Any) -> bool:
    """A (truth value, unknowns) pair: hashable, and its truth value is never 1 or 0."""
    return (type(value) is tuple and len(value) == 2 and value[0] in (True, False, None)
            and type(value[0]) is not int and type(value[1]) is tuple)


class Interner:
    """Values (any, via a canonical text) to dense integer codes."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[Any] = []

    def code(self, value: Any) -> int:
        kind = type(value)
        if value is None or kind in _SCALARS:
            key: Any = (kind, value)
        else:
            key = _RESULT_KEYS.get(value) if _is_result(value) else None
        if key is None:
            key = json.dumps(value, sort_keys=True, default=str)
            if _is_result(value):
                if len(_RESULT_KEYS) > 200_000:
                    _RESULT_KEYS.clear()
                _RESULT_KEYS[value] = key
        found = self.codes.get(key)
        if found is None:
            found = self.codes[key] = len(self.values)
            self.values.append(value)
        return found

    @property
    def size(self) -> int:
        return len(self.values)


@dataclass
class Column:
    """A flat column dictionary-encoded: ``codes`` per row into ``values`` (None = empty)."""

    codes: np.ndarray
    values: list[Any]

    @property
    def size(self) -> int:
        return len(self.values)


def encode(array: pa.Array | pa.ChunkedArray | None, rows: int) -> Column:
    if array is None:
        return Column(np.zeros(rows, dtype=np.int64), [None])
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
            or pa.types.is_boolean(array.type) or pa.types.is_integer(array.type)
            or pa.types.is_floating(array.type) or pa.types.is_null(array.type)):
        raise Unsupported(f"a column of type {array.type} (lists: write them as text)")
    if pa.types.is_null(array.type):
        return Column(np.zeros(rows, dtype=np.int64), [None])
    encoded = pc.dictionary_encode(array)
    values = encoded.dictionary.to_pylist()
    codes = encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
    return Column(codes.astype(np.int64), [*values, None])


# -- the book, split into pieces that parse and validate on their own --------------------------

_TOP = [c for c, (path, _) in COLUMNS.items()
        if not path.startswith("item.") and c not in ("id", "date")]
_ITEM = [c for c, (path, _) in COLUMNS.items() if path.startswith("item.")]


def _party_columns(slot: int) -> list[str]:
    prefix = "party_" if slot == 1 else f"party{slot}_"
    return [prefix + key for key in PARTY_COLUMNS]


def _valid(txn: dict[str, Any]) -> bool:
    try:
        validate_transaction(txn, 0)
    except InputError:
        return False
    return True


def _parse(cells: dict[str, Any]) -> dict[str, Any] | None:
    """The partial transaction of some cells, or None when a cell cannot be read."""
    try:
        return row_to_transaction(cells)
    except RowError:
        return None


@dataclass
class Piece:
    """A group of columns that parse together (the item, one party slot, one top column)."""

    columns: list[str]
    groups: Groups
    parsed: list[dict[str, Any] | None] = field(default_factory=list)


class Book:
    """One chunk of an order book, encoded and split into pieces."""

    def __init__(self, table: pa.Table, rules: RuleSet, override: date | None,
                 today: date) -> None:
        self.rows = rows = table.num_rows
        self.rules = rules
        names = set(table.column_names)
        self.cols = {c: encode(table.column(c) if c in names else None, rows)
                     for c in [*_TOP, *_ITEM, "date",
                               *(c for s in range(1, MAX_PARTIES + 1) for c in _party_columns(s))]}
        invalid = np.zeros(rows, dtype=np.bool_)
        # the day whose rules apply, and the interval of unchanged rules it falls in
        dates = self.cols["date"]
        days: list[date | None] = []
        for raw in dates.values:
            txn = _parse({"date": raw})
            day = None
            if txn is not None and ("date" not in txn or _valid({**_FILLER, **txn})):
                day = as_of(txn, override, today)
            days.append(day)
        bad = np.array([d is None for d in days], dtype=np.bool_)
        invalid |= bad[dates.codes]
        self.days = [d or today for d in days]
        self.day_code = dates.codes
        boundaries = rules.change_dates()
        complete = max((date.fromisoformat(rec["imported_on"]) for rec in imported_lists()
                        if rec["complete"]), default=None)
        if complete is not None:  # a complete imported list clears parties up to its date
            boundaries = sorted({*boundaries, complete + timedelta(days=1)})
        epochs = np.array([bisect.bisect_right(boundaries, d) for d in self.days],
                          dtype=np.int64)
        self.epoch = epochs[dates.codes]
        self.boundaries = boundaries
        self.epoch_size = len(boundaries) + 1
        # top-level columns, one by one
        self.top: dict[str, list[dict[str, Any] | None]] = {}
        for c in _TOP:
            col = self.cols[c]
            parsed = [_parse({c: v}) for v in col.values]
            rest = {"item": {}} if c == "to_country" else _FILLER  # to_country is required
            ok = np.array([p is not None and _valid({**rest, **p}) for p in parsed])
            invalid |= ~ok[col.codes]
            self.top[c] = parsed
        # the item, and each party slot, as a whole
        self.item = self._piece(_ITEM, invalid, lambda p: {**_FILLER, "item": p["item"]})
        self.slots = [self._piece(_party_columns(s), invalid,
                                  lambda p: {**_FILLER, "parties": p.get("parties", [])})
                      for s in range(1, MAX_PARTIES + 1)]
        self.invalid = invalid

    def _piece(self, columns: list[str], invalid: np.ndarray,
               as_txn: Callable[[dict[str, Any]], dict[str, Any]]) -> Piece:
        cols = [self.cols[c] for c in columns]
        groups = group([(c.codes, c.size) for c in cols], self.rows)
        piece = Piece(columns, groups)
        ok = np.ones(groups.count, dtype=np.bool_)
        for g in range(groups.count):
            r = groups.rep[g]
            parsed = _parse({c: col.values[col.codes[r]]
                             for c, col in zip(columns, cols, strict=True)})
            if parsed is None or not _valid(as_txn(parsed)):
                ok[g] = False
                parsed = None
            piece.parsed.append(parsed)
        invalid |= ~ok[groups.ids]
        return piece

    def transaction(self, r: int) -> dict[str, Any]:
        """Row ``r`` as its (validated) contract transaction, without id and date."""
        txn: dict[str, Any] = {}
        for c in _TOP:
            part = self.top[c][self.cols[c].codes[r]]
            assert part is not None
            for key, value in part.items():
                if key == "item":
                    continue
                if key == "exporter":
                    txn.setdefault("exporter", {}).update(value)
                else:
                    txn[key] = value
        item = self.item.parsed[self.item.groups.ids[r]]
        assert item is not None
        txn["item"] = item["item"]
        parties = []
        for slot in self.slots:
            parsed = slot.parsed[slot.groups.ids[r]]
            assert parsed is not None
            parties += parsed.get("parties", [])
        if parties:
            txn["parties"] = parties
        if not txn.get("activity"):
            txn["activity"] = "export"
        return txn


# -- evaluation ----------------------------------------------------------------------------------

@dataclass
class Coded:
    """A per-row code over a table of values."""

    codes: np.ndarray
    table: list[Any]


class Evaluator:
    """The rules applied to one :class:`Book`."""

    def __init__(self, book: Book, rules: RuleSet) -> None:
        self.book, self.rules = book, rules
        self.regimes = sorted(rules.regimes)
        _check_supported(rules)
        rows = book.rows
        self._invalid = (book.invalid.astype(np.int64), 2)
        self.assertions = book.cols["assertions"]
        # one day per interval of unchanged rules that the book uses: the interval's first
        # day, the same in every block and process (so their day snapshots are shared)
        self._epoch_days: list[date | None] = [None] * book.epoch_size
        starts = [book.boundaries[0] - timedelta(days=1), *book.boundaries]
        for e in set(np.unique(book.epoch).tolist()):
            self._epoch_days[e] = starts[e]
        # The item per (state of the item rules, item, assertions): catalogue, derived
        # figures, each regime's classification. Only the item's parts these read or write
        # are grouped on; the rest (e.g. US content) is added back unchanged.
        self.kept_keys = _item_keys(rules)
        core = [c for c in _ITEM if COLUMNS[c][0].split(".")[1] in self.kept_keys]
        core_groups = group([(book.cols[c].codes, book.cols[c].size) for c in core], rows)
        states = Interner()
        item_state = np.array([states.code(None if d is None else _item_state(rules, d))
                               for d in self._epoch_days], dtype=np.int64)
        g = self.group([(item_state[book.epoch], states.size),
                        (core_groups.ids, core_groups.count),
                        (self.assertions.codes, self.assertions.size)])
        self.item_groups = g
        self.items: dict[str, list[dict[str, Any]]] = {SHARED: []}
        self.eccn_q: dict[str, list[Any]] = {}
        for code in self.regimes:
            self.items[code], self.eccn_q[code] = [], []
        for k in range(g.count):
            r = int(g.rep[k])
            if book.invalid[r]:
                for stage in self.items:
                    self.items[stage].append({})
                for code in self.regimes:
                    self.eccn_q[code].append([])
                continue
            snap = rules.at(self._day(r))
            asserted = self._asserted(r)
            item = {key: v for key, v in self._raw_item(r).items() if key in self.kept_keys}
            shared, _ = apply_catalogue({"item": item}, snap)
            shared, _ = derive(shared, snap)
            self.items[SHARED].append(shared["item"])
            for code in self.regimes:
                facts, _, questions = classify(shared, snap, code, asserted)
                self.items[code].append(facts["item"])
                self.eccn_q[code].append(questions)
        # each party slot per state of the lists (screening lists, Entity List, aliases):
        # screened, then each regime's list look-up
        states = Interner()
        list_state = np.array([states.code(None if d is None else self._list_state(d))
                               for d in self._epoch_days], dtype=np.int64)
        self.party_groups: list[Groups] = []
        self.parties: list[dict[str, list[dict[str, Any] | None]]] = []
        self.entries: list[dict[str, list[dict[str, Any] | None]]] = []
        self.hits: list[list[str]] = []
        for slot in book.slots:
            pg = self.group([(list_state[book.epoch], states.size),
                             (slot.groups.ids, slot.groups.count)])
            self.party_groups.append(pg)
            stages: dict[str, list[dict[str, Any] | None]] = {SHARED: []}
            entries: dict[str, list[dict[str, Any] | None]] = {}
            for code in self.regimes:
                stages[code], entries[code] = [], []
            hits: list[str] = []
            for k in range(pg.count):
                r = int(pg.rep[k])
                parsed = slot.parsed[slot.groups.ids[r]]
                party = (parsed or {}).get("parties", [None])[0]
                if party is None or book.invalid[r]:
                    for stage in stages:
                        stages[stage].append(None)
                    for code in self.regimes:
                        entries[code].append(None)
                    hits.append("")
                    continue
                on = self._day(r)
                found: list[dict[str, Any]] = []
                if party.get("designations") is None:
                    screened, found, _ = screen_parties({"parties": [party]},
                                                        screener_for(rules, on), on)
                    party = screened["parties"][0]
                hits.append(";".join(f"{h['party']}->{h['name']} ({h['score']})"
                                     for h in found))
                stages[SHARED].append(party)
                snap = rules.at(on)
                for code in self.regimes:
                    facts, _ = apply_aliases({"parties": [party]}, snap, code)
                    facts, found_entries, _ = resolve_parties(facts, snap, code)
                    stages[code].append(facts["parties"][0])
                    entries[code].append(found_entries.get(0))
            self.parties.append(stages)
            self.entries.append(entries)
            self.hits.append(hits)
        self._parts: dict[tuple[Any, ...], tuple[np.ndarray, int]] = {}
        self._effects: dict[tuple[str, str], Coded] = {}
        self._facts: dict[tuple[int, str], Any] = {}

    # -- facts as codes --------------------------------------------------------------------
    def group(self, parts: list[tuple[np.ndarray, int]]) -> Groups:
        """Rows grouped by their codes; a row that takes the scalar path is never grouped
        with one that does not (a group's representative answers for all of it)."""
        return group([self._invalid, *parts], self.book.rows)

    def _day(self, r: int) -> date:
        """The day whose rules row ``r`` is evaluated under: one day stands for its whole
        interval of unchanged rules (the flat answer does not show the day itself)."""
        day: date | None = self._epoch_days[self.book.epoch[r]]
        assert day is not None
        return day

    def _raw_item(self, r: int) -> dict[str, Any]:
        parsed = self.book.item.parsed[self.book.item.groups.ids[r]]
        assert parsed is not None
        return dict(parsed["item"])

    def _item(self, r: int, stage: str) -> dict[str, Any]:
        """Row ``r``'s item at a stage: the rules' view of its grouped part, the rest as given."""
        rest = {k: v for k, v in self._raw_item(r).items() if k not in self.kept_keys}
        return {**self.items[stage][self.item_groups.ids[r]], **rest}

    def _list_state(self, day: date) -> Any:
        """What a party's screening and list look-ups depend on, on a day."""
        snap = self.rules.at(day)
        screener = screener_for(self.rules, day)
        return (id(screener), screener.can_clear(day),
                [[id(e.version_on(day)) for e in self.rules.entities.get(c, [])]
                 for c in self.regimes],
                [sorted((k, v[0]) for k, v in snap.aliases.get(c, {}).items())
                 for c in self.regimes])

    def _asserted(self, r: int) -> frozenset[str]:
        value = self.book.top["assertions"][self.assertions.codes[r]] or {}
        return frozenset(value.get("assertions") or ())

    def facts(self, r: int, stage: str) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
        """Row ``r``'s facts as the engine sees them at a stage, and its list entries (kept:
        the same row often stands for groups of several rules; the engine never changes
        the facts it is given)."""
        key = (r, stage)
        found = self._facts.get(key)
        if found is None:
            if len(self._facts) > 100_000:
                self._facts.clear()
            found = self._facts[key] = self._build_facts(r, stage)
        return found

    def _build_facts(self, r: int, stage: str
                     ) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
        book = self.book
        txn = book.transaction(r)
        parties = [p for i, slot in enumerate(self.parties)
                   if (p := slot[SHARED][self.party_groups[i].ids[r]]) is not None]
        if parties:
            txn["parties"] = parties
        txn["item"] = self._item(r, SHARED)
        if stage == SHARED:
            return txn, {}
        snap = self.rules.at(self._day(r))
        facts, _ = apply_aliases(txn, snap, stage)
        facts, entries, _ = resolve_parties(facts, snap, stage)
        facts = {**facts, "item": self._item(r, stage)}
        return facts, entries

    def part(self, stage: str, what: str, arg: Any = None) -> tuple[np.ndarray, int]:
        """The per-row codes of one fact (or fact group) a rule reads, at a stage."""
        key = (stage, what, arg)
        found = self._parts.get(key)
        if found is None:
            found = self._parts[key] = self._part(stage, what, arg)
        return found

    def _part(self, stage: str, what: str, arg: Any) -> tuple[np.ndarray, int]:
        book = self.book
        if what == "epoch":
            return book.epoch, book.epoch_size
        if what == "item":  # one path of the item, as the stage has it
            interner = Interner()
            items: list[dict[str, Any] | None]
            if arg.split(".")[1] in self.kept_keys:
                items, ids = list(self.items[stage]), self.item_groups.ids
            else:  # a part of the item no item rule touches: as given
                items = [None if p is None else p["item"] for p in book.item.parsed]
                ids = book.item.groups.ids
            table = np.array([interner.code(None if item is None else _get(item, arg))
                              for item in items], dtype=np.int64)
            return table[ids], interner.size
        if what == "eccn_questions":
            interner = Interner()
            table = np.array([interner.code([tuple(u) for u in q])
                              for q in self.eccn_q[stage]], dtype=np.int64)
            return table[self.item_groups.ids], interner.size
        if what in ("parties", "entries"):  # every slot, projected on the fields read
            parts = []
            for i, pg in enumerate(self.party_groups):
                interner = Interner()
                if what == "entries":
                    values: list[Any] = self.entries[i][stage]
                else:
                    values = [None if p is None else
                              (p if arg is None else {f: p.get(f) for f in arg})
                              for p in self.parties[i][stage]]
                table = np.array([interner.code(v) for v in values], dtype=np.int64)
                parts.append((table[pg.ids], interner.size))
            g = group(parts, book.rows)
            return g.ids, g.count
        if what == "top":  # the columns holding a top-level path (or below/above it)
            cols = [c for c in _TOP if _overlaps(COLUMNS[c][0], arg)]
            if not cols:
                return np.zeros(book.rows, dtype=np.int64), 1
            g = group([(book.cols[c].codes, book.cols[c].size) for c in cols], book.rows)
            return g.ids, g.count
        raise AssertionError(what)

    def read_parts(self, stage: str, reads: FactReads) -> list[tuple[np.ndarray, int]]:
        parts = [self.part(stage, "epoch")]
        paths = set(reads.paths)
        for over, fields in reads.lists.items():
            if over == "parties":
                parts.append(self.part(stage, "parties", tuple(sorted(fields))))
            else:
                paths.add(over)
        for path in sorted(paths):
            head = path.split(".")[0]
            if head == "item":
                parts.append(self.part(stage, "item", path))
            elif head == "parties":
                parts.append(self.part(stage, "parties", None))
            else:
                parts.append(self.part(stage, "top", path))
        if reads.assertions:
            parts.append(self.part(stage, "top", "assertions"))
        return parts

    # -- provisions ------------------------------------------------------------------------
    def effect(self, stage: str, rule_id: str) -> Coded:
        """A provision's effect (after its exclusions) for every row."""
        key = (stage, rule_id)
        found = self._effects.get(key)
        if found is not None:
            return found
        prov = self.rules.provisions[rule_id]
        # the version in force per row (by rule interval), each version's predicate evaluated
        # where it is in force
        book = self.book
        in_force = [None if d is None else prov.version_on(d) for d in self._epoch_days]
        base = Coded(np.zeros(book.rows, dtype=np.int64), [_FALSE])
        versions = {id(v): v.predicate for v in in_force
                    if v is not None and v.predicate is not None}
        for vid, predicate in versions.items():
            live = np.array([v is not None and id(v) == vid for v in in_force])
            codes = self.node(stage, prov.id, predicate, live)
            present = live[book.epoch]
            base = codes if present.all() else _select(present, codes, base)
        parts = [base] + [self.effect(stage, e.id) for e in self.rules.exclusions_of(rule_id)]
        found = self._effects[key] = self.fold(parts, _effective) if len(parts) > 1 else base
        return found

    def node(self, stage: str, rule: str, pred: Pred, live: np.ndarray) -> Coded:
        """A predicate's result per row where ``live`` (per rule interval) holds; a node
        whose facts take few values together is evaluated whole, once per combination; a
        larger one is split into its parts and their results combined."""
        if isinstance(pred, Ref):
            return self.effect(stage, pred.rule)
        if isinstance(pred, Not):
            inner = self.node(stage, rule, pred.item, live)
            return Coded(inner.codes, [negate(r) for r in inner.table])
        reads = fact_reads(pred)
        parts = self.read_parts(stage, reads)
        refs = sorted(reads.refs or ())
        ref_effects = {r: self.effect(stage, r) for r in refs}
        parts += [(e.codes, len(e.table)) for e in ref_effects.values()]
        space = 1
        for _, size in parts:
            space *= max(size, 1)
        if isinstance(pred, (All, AnyOf)) and space > _WHOLE_LIMIT:
            kids = [self.node(stage, rule, k, live) for k in pred.items]
            return self.fold(kids, _all if isinstance(pred, All) else _any)
        compiled_pred = compiled(pred)
        book = self.book

        def one(r: int) -> Result:
            if not live[book.epoch[r]]:
                return _FALSE
            facts, _ = self.facts(r, stage)
            snap = self.rules.at(self._day(r))
            seeded = {d: e.table[e.codes[r]] for d, e in ref_effects.items()}
            ctx = Context(snap=snap, root=facts, assertions=self._asserted(r), rule=rule,
                          resolve=seeded.__getitem__)
            return _flat(compiled_pred(ctx, facts, ""))

        return self._per_group(parts, one)

    def fold(self, parts: list[Coded], step: Callable[[list[Result]], Result]) -> Coded:
        """Results combined row by row: once per distinct combination of the parts."""
        g = self.group([(c.codes, len(c.table)) for c in parts])
        interner = Interner()
        codes = np.empty(g.count, dtype=np.int64)
        for k in range(g.count):
            r = int(g.rep[k])
            codes[k] = interner.code(step([c.table[c.codes[r]] for c in parts]))
        return Coded(codes[g.ids], interner.values)

    def _per_group(self, parts: list[tuple[np.ndarray, int]], one: Callable[[int], Any],
                   placeholder: Any = _FALSE) -> Coded:
        """``one`` evaluated once per group; rows left to the scalar path (never grouped
        with others) get ``placeholder``, which nothing reads."""
        g = self.group(parts)
        interner = Interner()
        codes = np.empty(g.count, dtype=np.int64)
        for k in range(g.count):
            r = int(g.rep[k])
            codes[k] = interner.code(placeholder if self.book.invalid[r] else one(r))
        return Coded(codes[g.ids], interner.values)

    def applies(self, code: str) -> Coded:
        regime = self.rules.regimes[code]
        reads = FactReads(set(), {}, False, set())
        for v in regime.versions:
            if v.applies is not None:
                reads.merge(fact_reads(v.applies))

        def one(r: int) -> Any:
            facts, _ = self.facts(r, SHARED)
            snap = self.rules.at(self._day(r))
            value, _, unknowns = regime_applies(regime, snap, facts, self._asserted(r))
            return [value, [list(u) for u in unknowns]]

        return self._per_group(self.read_parts(SHARED, reads), one)

    def regime(self, code: str) -> Coded:
        """The regime's flat answer per row: (outcome, rules, review policy, missing fields),
        or None where the regime does not reach the transaction."""
        from chokepoint.batch.run import regime_cells

        rules = self.rules
        regime = rules.regimes[code]
        routes = rules.of_regime(code, "subject_route")
        requirements = rules.of_regime(code, "licence_requirement")
        # each role's provisions summed up as (their "any", the ones that apply): all the
        # regime's answer uses of them (its subject, requirements, basis, missing facts)
        sets = [routes, [p for p in requirements if not p.independent_of_subject],
                [p for p in requirements if p.independent_of_subject]]
        none = Coded(np.zeros(self.book.rows, dtype=np.int64), [(_FALSE, ())])
        core = self.fold([self.fold([self.effect(code, p.id) for p in provs], _summary(provs))
                          if provs else none for provs in sets], _core)
        # the ECCN questions matter only where the ECCN is among the open fields
        eccn = np.array([any(u.field == "item.eccn" for c in x for u in c[0][1])
                         for x in core.table])[core.codes]
        applies = self.applies(code)
        covered = np.array([d is None or d >= regime.coverage_from for d in self._epoch_days])
        common = [(covered[self.book.epoch].astype(np.int64), 2),
                  (applies.codes, len(applies.table))]
        # Three answers per row, each from the facts it turns on: the missing fields (from
        # the fields open and the ECCN questions); the outcome and the rules that apply
        # (from which provisions apply); and each applying requirement's review policy.
        decided = self.fold([core], _decided)
        fields_parts = [*common, (core.codes, len(core.table)),
                        _only(eccn, self.part(code, "eccn_questions"))]

        def answer(r: int, summaries: Any) -> Any:
            value, unknowns = applies.table[applies.codes[r]]
            if value is False:
                return None
            facts, entries = self.facts(r, code)
            on = self._day(r)
            snap = rules.at(on)
            asserted = self._asserted(r)
            ev = RegimeEvaluation(regime, snap, facts, asserted, entries)
            for provs, summary in zip(sets, summaries, strict=True):
                ev.seed(_standing_in(provs, summary))
            questions = self.eccn_q[code][self.item_groups.ids[r]]
            out = evaluate_regime(regime, snap, facts, asserted, [], entries, questions,
                                  ev=ev, exceptions_wanted=False, policies_wanted=False)
            out = settle_applies(out, value, [Unknown(*u) for u in unknowns], rules, facts)
            return [*regime_cells(out), [r["rule"] for r in out["license_requirements"]]]

        fields = self._per_group(fields_parts, lambda r: answer(r, core.table[core.codes[r]]),
                                 None)
        cells = self._per_group([*common, (decided.codes, len(decided.table))],
                                lambda r: answer(r, decided.table[decided.codes[r]]), None)
        applying = {p.id: np.array([any(p.id in c[1] for c in x) for x in core.table]
                                   )[core.codes] for p in requirements}
        policies = [self.policy(code, p, applying[p.id]) for p in requirements]
        ids = [p.id for p in requirements]
        return self.fold([cells, fields, *policies],
                         lambda parts: _regime_answer(ids, parts))

    def policy(self, code: str, prov: Any, where: np.ndarray) -> Coded:
        """A licence requirement's review policy, where it applies (engine.policy)."""
        reads = FactReads(set(), {}, False, set())
        for v in prov.versions:
            for cp in v.review_policies:
                reads.merge(fact_reads(cp.when))
            if v.review_policy == PER_ENTRY:
                reads.merge(FactReads(set(), {"parties": {"designations"}}, False, set()))
        consulted = {ref: self.effect(code, ref) for ref in sorted(reads.refs or ())}
        parts = [*self.read_parts(code, reads), self.part(code, "entries"),
                 *((c.codes, len(c.table)) for c in consulted.values())]
        regime = self.rules.regimes[code]

        def one(r: int) -> Any:
            if not where[r]:
                return None
            facts, entries = self.facts(r, code)
            day = self._day(r)
            version = prov.version_on(day)
            if version is None:
                return None
            ev = RegimeEvaluation(regime, self.rules.at(day), facts, self._asserted(r),
                                  entries)
            ev.seed({p: e.table[e.codes[r]] for p, e in consulted.items()})
            return review_policy(version, ev).get("review_policy")

        return self._per_group([(where.astype(np.int64), 2),
                                *(_only(where, p) for p in parts)], one, None)

_WHOLE_LIMIT = 512  # a node whose facts can combine in more ways than this is split


def _all(results: list[Result]) -> Result:
    """``all`` as the engine evaluates it: the first false child decides; otherwise the
    unknown children's fields, in order."""
    fields: list[Unknown] = []
    undecided = False
    for value, unknowns in results:
        if value is False:
            return _FALSE
        if value is None:
            undecided = True
            fields.extend(unknowns)
    return _flat((None, tuple(fields))) if undecided else _TRUE


def _any(results: list[Result]) -> Result:
    fields: list[Unknown] = []
    undecided = False
    for value, unknowns in results:
        if value is True:
            return _TRUE
        if value is None:
            undecided = True
            fields.extend(unknowns)
    return _flat((None, tuple(fields))) if undecided else _FALSE


def _effective(results: list[Result]) -> Result:
    """A provision's base result after its exclusions (RegimeEvaluation.effective)."""
    result = results[0]
    if result[0] is False:
        return result
    for ex_value, ex_unknowns in results[1:]:
        if ex_value is True:
            return _FALSE
        if ex_value is None:
            result = both(result, negate((None, ex_unknowns)))
    return _flat(result)


def _summary(provs: list[Any]) -> Callable[[list[Result]], Any]:
    def step(results: list[Result]) -> Any:
        applying = tuple(p.id for p, r in zip(provs, results, strict=True) if r[0] is True)
        return (_flat(either(results)), applying)
    return step


def _core(summaries: list[Any]) -> Any:
    """The routes', dependent and independent requirements' summaries, keeping only what
    the outcome shows: which apply, and the fields the outcome turns on - given to every
    undecided part, as the answer lists each field once in first-seen order."""
    (subject, _), (dependent, _), (independent, _) = summaries
    _, unknowns = outcome_of(subject, dependent, independent)
    fields = _flat((None, unknowns))[1]
    return tuple(((value, fields if value is None else ()), applying)
                 for (value, _), applying in summaries)


def _decided(parts: list[Any]) -> Any:
    """A core without its open fields: what decides the outcome, rules and review policy."""
    return tuple(((value, ()), applying) for (value, _), applying in parts[0])


def _regime_answer(requirements: list[str], parts: list[Any]) -> Any:
    """Outcome and rules, the missing fields, and the review policies of the requirements
    that apply, as one regime's flat cells (batch.run.regime_cells)."""
    cells, fields, *policies = parts
    if cells is None:
        return None
    by_rule = dict(zip(requirements, policies, strict=True))
    shown = dict.fromkeys(by_rule[r] for r in cells[4] if by_rule.get(r))
    return [cells[0], cells[1], ";".join(shown), fields[3]]


def _only(where: np.ndarray, part: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
    """A part's codes where they matter, a code of its own elsewhere."""
    codes, size = part
    out = codes + 1
    out *= where
    return out, size + 1


def _standing_in(provs: list[Any], summary: Any) -> dict[str, Result]:
    """Effects for a role's provisions that a regime's answer cannot tell from the real ones:
    the same ones apply, and the same fields are open when none does."""
    either, applying = summary
    out: dict[str, Result] = {}
    carried = False
    for p in provs:
        if p.id in applying:
            out[p.id] = _TRUE
        elif either[0] is None and not carried:
            out[p.id], carried = either, True
        else:
            out[p.id] = _FALSE
    return out


def _select(where: np.ndarray, a: Coded, b: Coded) -> Coded:
    """Per row: ``a`` where ``where`` holds, else ``b`` (one table for both)."""
    interner = Interner()
    ta = np.array([interner.code(v) for v in a.table], dtype=np.int64)
    tb = np.array([interner.code(v) for v in b.table], dtype=np.int64)
    return Coded(np.where(where, ta[a.codes], tb[b.codes]), interner.values)


def _flat(result: Result) -> Result:
    """A provision's effect reduced to what a flat answer shows: the truth value and the
    fields it turns on, each once in first-seen order. (The questions' wording and the
    rules each field decides are in the full determination, not in a batch row; every way
    the engine combines effects - and, or, not, exclusions, the outcome, the ECCN
    expansion, the missing-facts list - keeps the first-seen order of the fields.)"""
    value, unknowns = result
    if not unknowns:
        return result
    return (value, tuple(Unknown(f) for f in dict.fromkeys(u.field for u in unknowns)))


def _get(root: dict[str, Any], path: str) -> Any:
    from chokepoint.engine.facts import MISSING, get

    value = get({"item": root}, path)
    return None if value is MISSING else value


def _overlaps(column_path: str, path: str) -> bool:
    return (column_path == path or column_path.startswith(path + ".")
            or path.startswith(column_path + "."))


_CATALOGUE_WRITES = {"kind", "made_by", "made_in", "chip", "parameters", "eccn",
                     "national_classifications", "model"}


def _item_rules(rules: RuleSet) -> tuple[list[Any], list[Pred]]:
    """The classification provisions (with the definitions they use) and their predicates."""
    provs: dict[str, Any] = {}
    todo = [p for p in rules.provisions.values() if p.role == "classification"]
    while todo:
        prov = todo.pop()
        if prov.id in provs:
            continue
        provs[prov.id] = prov
        for v in prov.versions:
            if v.predicate is not None:
                todo += [rules.provisions[r] for r in fact_reads(v.predicate).refs or ()]
    preds = [v.predicate for p in provs.values() for v in p.versions if v.predicate is not None]
    return list(provs.values()), preds


def _item_keys(rules: RuleSet) -> set[str]:
    """The item's first-level keys that the catalogue, derivations or classification read
    or write; the others pass through them untouched."""
    keys = set(_CATALOGUE_WRITES)
    _, preds = _item_rules(rules)
    paths: set[str] = set()
    for pred in preds:
        reads = fact_reads(pred)
        paths |= reads.paths | set(reads.lists)
    for d in rules.derivations:
        paths.add(d.target)
        for dv in d.versions:
            paths.update(dv.inputs)
    return keys | {p.split(".")[1] for p in paths if p.startswith("item.")}


def _item_state(rules: RuleSet, day: date) -> Any:
    """The identity of every rule version the item's processing can use on a day."""
    ids: list[int] = []
    for entry in {id(e): e for e in rules.catalogue.values()}.values():
        ids.append(id(entry.version_on(day)))
    for d in rules.derivations:
        ids.append(id(d.version_on(day)))
    provs, _ = _item_rules(rules)
    for prov in provs:
        version = prov.version_on(day)
        ids.append(id(version))
        if version is None or version.predicate is None:
            continue
        for node in walk(version.predicate):
            for attr in ("value", "eccns"):
                ref = getattr(node, attr, None)
                if isinstance(ref, ParamRef):
                    ids.append(id(rules.parameters[ref.param].version_on(day)))
            if isinstance(node, ParamTrue):
                ids.append(id(rules.parameters[node.param].version_on(day)))
            if isinstance(node, InGroup):
                ids.append(id(rules.groups[node.group].version_on(day)))
    return tuple(ids)


def _check_supported(rules: RuleSet) -> None:
    """Classification and derivations must read the item only (they run once per item)."""
    reads = FactReads(set(), {}, False, set())
    for prov in rules.provisions.values():
        if prov.role == "classification":
            for v in prov.versions:
                if v.predicate is not None:
                    reads.merge(fact_reads(v.predicate))
                    for ref in fact_reads(v.predicate).refs or ():
                        for rv in rules.provisions[ref].versions:
                            if rv.predicate is not None:
                                reads.merge(fact_reads(rv.predicate))
    paths = set(reads.paths) | set(reads.lists)
    for d in rules.derivations:
        paths.add(d.target)
        for dv in d.versions:
            paths.update(dv.inputs)
    outside = sorted(p for p in paths if not p.startswith("item."))
    if outside:
        raise Unsupported(f"classification or derivation reads {', '.join(outside)}")


# -- the answer table -----------------------------------------------------------------------------

def _strings(codes: np.ndarray, table: list[str]) -> pa.Array:
    return pc.take(pa.array(table, type=pa.string()), pa.array(codes))


def _ids(array: pa.Array | pa.ChunkedArray | None, rows: int) -> pa.Array:
    """The id cells as the scalar path writes them (trimmed text, "" when empty)."""
    if array is None:
        return pa.array([""] * rows, type=pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
        # printable ASCII at both ends needs no trimming; anything else is done in Python
        plain = pc.fill_null(pc.match_substring_regex(array, r"^[!-~](.*[!-~])?$"), False)
        if pc.all(plain).as_py():
            return array
        values = array.to_pylist()
        mask = plain.to_pylist()
        return pa.array([v if ok else (str(v).strip() if v is not None else "")
                         for v, ok in zip(values, mask, strict=True)], type=pa.string())
    return pa.array(["" if v is None or (isinstance(v, float) and v != v) else str(v).strip()
                     for v in array.to_pylist()], type=pa.string())


def evaluate_table(table: pa.Table, rules: RuleSet, override: date | None, today: date,
                   first_row: int, regimes: tuple[str, ...], columns: list[str]
                   ) -> tuple[pa.Table, np.ndarray]:
    """Answers for the valid rows of a chunk (row numbers from ``first_row``), as a table
    in ``columns`` order, and the indices of the rows the scalar path must take."""
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
    cells: dict[str, list[list[str]]] = {c: [[], [], []] for c in regimes}
    for k in range(g.count):
        r = int(g.rep[k])
        answers = {c: per_regime[c].table[per_regime[c].codes[r]] for c in per_regime}
        present = [a[0] for a in answers.values() if a is not None]
        fields: list[str] = []
        for code in regimes:
            outcome, rule_ids, policy, needed = answers.get(code) or ("", "", "", [])
            fields += [f"{code}:{f}" for f in needed]
            for slot, value in zip(cells[code], (outcome, rule_ids, policy), strict=True):
                slot.append(value)
        overall.append(strictest(present))
        missing.append(";".join(fields))
    valid = ~book.invalid
    keep = np.flatnonzero(valid)
    ids = g.ids[keep]
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
    out["row"] = pa.array(keep + first_row, type=pa.int64())
    out["id"] = _ids(table.column("id") if "id" in table.column_names else None,
                     rows).take(pa.array(keep))
    out["outcome"] = _strings(ids, overall)
    out["rules_version"] = pa.array([rules.content_hash] * len(keep), type=pa.string())
    out["as_of"] = _strings(book.day_code[keep], day_text)
    for code in regimes:
        for name, values in zip(("outcome", "rules", "review_policy"), cells[code], strict=True):
            out[f"{code}_{name}"] = _strings(ids, values)
    out["missing_facts"] = _strings(ids, missing)
    out["screening_hits"] = _strings(hg.ids[keep], hit_text)
    result = pa.table({c: out[c] for c in columns})
    return result, np.flatnonzero(book.invalid)
