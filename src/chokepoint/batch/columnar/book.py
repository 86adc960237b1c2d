"""One block of an order book, split into pieces that parse and validate on their own
(the item, each party slot, each top-level column), and the day of each row."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from chokepoint.batch.columnar.codes import Groups, encode, group
from chokepoint.batch.flat import (
    COLUMNS,
    MAX_PARTIES,
    PARTY_COLUMNS,
    RowError,
    party_prefix,
    row_to_transaction,
)
from chokepoint.contract import InputError, validate_transaction
from chokepoint.engine.determine import (
    as_of,
)
from chokepoint.rules.ruleset import RuleSet
from chokepoint.screening.service import latest_complete_list

FILLER: dict[str, Any] = {"item": {}, "to_country": "CN"}  # a valid rest of a transaction


TOP = [c for c, (path, _) in COLUMNS.items()
        if not path.startswith("item.") and c not in ("id", "date")]
ITEM = [c for c, (path, _) in COLUMNS.items() if path.startswith("item.")]


def party_columns(slot: int) -> list[str]:
    return [party_prefix(slot) + key for key in PARTY_COLUMNS]


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


_PIECES: dict[tuple[tuple[str, ...], tuple[Any, ...]], dict[str, Any] | None] = {}
_PIECES_KEPT = 200_000  # an order book repeats its items and parties from block to block
_DAYS: dict[Any, date | None] = {}  # a date cell's day (None: not a date), kept likewise


def kept_pieces() -> dict[Any, dict[str, Any] | None]:
    """The pieces parsed so far, by :func:`piece_key` (for cache.py)."""
    return dict(_PIECES)


def remember_pieces(pieces: dict[Any, dict[str, Any] | None]) -> None:
    """Pieces parsed by an earlier run (cache.py), as many as are kept."""
    for key, parsed in pieces.items():
        if len(_PIECES) >= _PIECES_KEPT:
            return
        _PIECES.setdefault(key, parsed)


def piece_key(names: tuple[str, ...], cells: tuple[Any, ...]) -> Any:
    """What tells pieces apart: their columns and cells, each cell with its type."""
    return (names, tuple((type(v), v) for v in cells))


def _parsed_piece(names: tuple[str, ...], cells: tuple[Any, ...], key: Any,
                  as_txn: Callable[[dict[str, Any]], dict[str, Any]]
                  ) -> dict[str, Any] | None:
    """Some cells of a row parsed and validated as a whole (None if they are not valid);
    kept for the next blocks by their :func:`piece_key`. The cells are text, numbers or
    booleans (``codes.encode``), and each piece's columns have one ``as_txn``."""
    if key in _PIECES:
        return _PIECES[key]
    parsed = _parse(dict(zip(names, cells, strict=True)))
    if parsed is not None and not _valid(as_txn(parsed)):
        parsed = None
    if len(_PIECES) >= _PIECES_KEPT:
        _PIECES.clear()
    _PIECES[key] = parsed
    return parsed


@dataclass
class Piece:
    """A group of columns that parse together (the item, one party slot, one top column)."""

    groups: Groups
    parsed: list[dict[str, Any] | None] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)  # each group's piece_key


class Book:
    """One chunk of an order book, encoded and split into pieces."""

    def __init__(self, table: pa.Table, rules: RuleSet, override: date | None,
                 today: date) -> None:
        self.rows = rows = table.num_rows
        self.rules = rules
        names = set(table.column_names)
        self.cols = {c: encode(table.column(c) if c in names else None, rows)
                     for c in [*TOP, *ITEM, "date",
                               *(c for s in range(1, MAX_PARTIES + 1) for c in party_columns(s))]}
        invalid = np.zeros(rows, dtype=np.bool_)
        # the day whose rules apply, and the interval of unchanged rules it falls in
        dates = self.cols["date"]
        days: list[date | None] = []
        for raw in dates.values:
            key = (type(raw), raw, override, today)
            if key not in _DAYS:
                txn = _parse({"date": raw})
                day = None
                if txn is not None and ("date" not in txn or _valid({**FILLER, **txn})):
                    day = as_of(txn, override, today)
                if len(_DAYS) >= _PIECES_KEPT:
                    _DAYS.clear()
                _DAYS[key] = day
            days.append(_DAYS[key])
        bad = np.array([d is None for d in days], dtype=np.bool_)
        invalid |= np.take(bad, dates.codes)
        self.days = [d or today for d in days]
        self.day_code = dates.codes
        boundaries = rules.change_dates()
        complete = latest_complete_list()
        if complete is not None:  # a complete imported list clears parties up to its date
            boundaries = sorted({*boundaries, complete + timedelta(days=1)})
        epochs = np.array([bisect.bisect_right(boundaries, d) for d in self.days],
                          dtype=np.int64)
        self.epoch = epochs[dates.codes]
        self.boundaries = boundaries
        self.epoch_size = len(boundaries) + 1
        # top-level columns, one by one
        self.top: dict[str, list[dict[str, Any] | None]] = {}
        for c in TOP:
            col = self.cols[c]
            parsed = [_parse({c: v}) for v in col.values]
            rest = {"item": {}} if c == "to_country" else FILLER  # to_country is required
            ok = np.array([p is not None and _valid({**rest, **p})
                           # (an assertion no rule reads: refused by the scalar path)
                           and rules.assertions.issuperset(p.get("assertions") or ())
                           for p in parsed])
            invalid |= ~np.take(ok, col.codes)
            self.top[c] = parsed
        # the item, and each party slot, as a whole
        self.item = self._piece(ITEM, invalid, lambda p: {**FILLER, "item": p["item"]})
        self.slots = [self._piece(party_columns(s), invalid,
                                  lambda p: {**FILLER, "parties": p.get("parties", [])})
                      for s in range(1, MAX_PARTIES + 1)]
        self.invalid = invalid

    def _piece(self, columns: list[str], invalid: np.ndarray,
               as_txn: Callable[[dict[str, Any]], dict[str, Any]]) -> Piece:
        cols = [self.cols[c] for c in columns]
        groups = group([(c.codes, c.size) for c in cols], self.rows)
        piece = Piece(groups)
        ok = np.ones(groups.count, dtype=np.bool_)
        names = tuple(columns)
        for g in range(groups.count):
            r = groups.rep[g]
            cells = tuple(col.values[col.codes[r]] for col in cols)
            key = piece_key(names, cells)
            parsed = _parsed_piece(names, cells, key, as_txn)
            piece.keys.append(key)
            if parsed is None:
                ok[g] = False
            piece.parsed.append(parsed)
        invalid |= ~ok[groups.ids]
        return piece

    def transaction(self, r: int) -> dict[str, Any]:
        """Row ``r`` as its (validated) contract transaction, without id and date."""
        txn: dict[str, Any] = {}
        for c in TOP:
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
