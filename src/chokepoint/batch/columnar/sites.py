"""Answers kept per rule set from block to block and found again by NumPy.

Every fact a rule reads gets the same code for the same value in every block (a stable
code), and so does every rule's answer. A rule node, a combination of effects or a
regime's answer is a *site*: its answers are kept by the packed codes of its inputs - in
a table with a cell per combination when the inputs take few bits together (read for every
row with one ``take``), in a sorted array of the combinations seen otherwise (one
``searchsorted`` per group of rows) - so a later block finds what earlier blocks evaluated
and evaluates only the new combinations: no Python per combination seen before.

Codes are only ever compared within one site, and a site starts again (keeps no answer by
code) when one of its inputs has more values than its bits in the packed key can hold."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from chokepoint.batch.columnar.codes import CODE, Interner, code_type, fitted

MAX_BITS = 62  # packed keys are int64; wider combinations are not kept by code
DIRECT_BITS = 16  # up to this: a table with a cell per combination, read row by row
EMPTY = np.empty(0, dtype=np.int64)
NO_CODES = np.empty(0, dtype=CODE)


class Site:
    """One site's answers: each distinct answer's stable code (``values``), and the answer
    code of each combination of its inputs' codes seen so far."""

    def __init__(self, ident: int) -> None:
        self.id = ident
        self.values = Interner()
        self._widths: tuple[int, ...] = ()
        self._keys = EMPTY  # packed input codes, sorted
        self._found = NO_CODES  # the answer code of each
        self._cells = NO_CODES  # or for narrow inputs: the answer code per packed key
        self.filled = False  # whether any cell holds an answer yet
        # inputs too wide to pack into 62 bits: each combination's codes as a tuple, looked
        # up per group of rows (stable codes stay valid however many values come later)
        self.by_tuple: dict[tuple[int, ...], int] = {}
        self._derived: dict[str, Any] = {}

    @property
    def entries(self) -> int:
        return (len(self._keys) + self.values.size + (len(self._cells) >> 4)
                + len(self.by_tuple))

    def start(self, sizes: list[int]) -> tuple[int, ...] | None:
        """The bits each input takes in a packed key (:func:`pack`), for inputs of these
        sizes (None: too many in all); the site starts again when an input has outgrown
        its bits since the last block."""
        widths = tuple((size - 1).bit_length() if size > 1 else 0 for size in sizes)
        if sum(widths) > MAX_BITS:
            return None
        if widths != self._widths:
            self._widths, self._keys, self._found = widths, EMPTY, NO_CODES
            self._cells = NO_CODES
        if sum(widths) <= DIRECT_BITS and not len(self._cells):
            self._cells = np.full(1 << sum(widths), -1, dtype=code_type(self.values.size))
            self.filled = False
        return widths

    @property
    def direct(self) -> bool:
        """Whether the inputs are narrow enough for a cell per combination (:meth:`read`);
        otherwise the site keeps the combinations seen in a sorted array (:meth:`look_up`)."""
        return len(self._cells) > 0

    def fill(self, cells: np.ndarray, codes: np.ndarray) -> None:
        """Answer codes for new cells (packed keys, :func:`pack`)."""
        # (the table's type widened first if a code would not fit: NumPy would wrap it)
        self._cells = fitted(self._cells, _count(self, codes))
        self._cells[cells] = codes
        self.filled = True

    def first_rows(self, cells: np.ndarray, rows: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The distinct cells among ``cells`` and a row of each (``rows``: each cell's)."""
        spot = np.full(len(self._cells), -1, dtype=np.int64)
        spot[cells] = rows
        fresh = np.flatnonzero(spot >= 0)
        return fresh, spot[fresh]

    def read(self, cells: np.ndarray) -> np.ndarray:
        """The answer codes of cells (-1: none yet), in the table's type (code_type)."""
        found: np.ndarray = np.take(self._cells, cells)
        return found

    def look_up(self, key: np.ndarray) -> np.ndarray:
        """The answer code of each combination (packed keys), -1 where not seen yet."""
        if not len(self._keys):
            return np.full(len(key), -1, dtype=code_type(self.values.size))
        at = np.searchsorted(self._keys, key)
        at[at == len(self._keys)] = 0
        found: np.ndarray = np.where(self._keys[at] == key, self._found[at], -1)
        return found

    def remember(self, keys: np.ndarray, codes: np.ndarray) -> None:
        """New combinations' answer codes (keys from :meth:`look_up`, none seen before)."""
        merged = np.concatenate([self._keys, keys])
        order = np.argsort(merged, kind="stable")
        self._keys = merged[order]
        self._found = np.concatenate([self._found, codes]).astype(
            code_type(_count(self, codes)))[order]

    def derived(self, name: str, table: list[Any], each: Callable[[Any], Any]
                ) -> list[Any]:
        """``each`` of every value of an append-only ``table`` (another site's values),
        computed once per value: later calls only extend the list."""
        done: list[Any] = self._derived.setdefault(name, [])
        for value in table[len(done):]:
            done.append(each(value))
        return done

    def flags(self, name: str, table: list[Any], test: Callable[[Any], bool]
              ) -> np.ndarray:
        """:meth:`derived` for a condition, as a boolean NumPy array (one per value)."""
        done = self.derived(name, table, test)
        cached: np.ndarray | None = self._derived.get(name + "#array")
        if cached is None or len(cached) != len(done):
            cached = self._derived[name + "#array"] = np.array(done, dtype=np.bool_)
        return cached


def _count(site: Site, codes: np.ndarray) -> int:
    """How many codes a site's tables must hold, with ``codes`` among them."""
    return max(site.values.size, int(codes.max()) + 1 if len(codes) else 0)


def cell_type(widths: tuple[int, ...]) -> type[np.signedinteger[Any]]:
    """The narrowest type a packed key of these widths fits in: a direct site's cells are
    read with keys of 15 bits or fewer as int16 - a quarter of the memory traffic of int64,
    which is what packing and reading cost (~40 % less time a site)."""
    bits = sum(widths)
    return np.int16 if bits <= 15 else np.int32 if bits <= 31 else np.int64


def pack(codes: list[np.ndarray], widths: tuple[int, ...],
         kind: type[np.signedinteger[Any]] = np.int64) -> np.ndarray:
    """Codes side by side in one integer (of type ``kind``, which must hold the widths'
    sum: :func:`cell_type`), each in its bits (from :meth:`Site.start`), the first in the
    highest."""
    key: np.ndarray | None = None
    for c, width in zip(codes, widths, strict=True):
        if not width:
            continue
        if key is None:
            key = c.astype(kind)
        else:
            key <<= width
            key |= c
    return key if key is not None else np.zeros(len(codes[0]) if codes else 1, kind)


class Sites:
    """A rule set's sites, by what each computes (a hashable description), and the stable
    codes of the facts' values, per fact."""

    def __init__(self) -> None:
        self._sites: dict[Hashable, Site] = {}
        self._facts: dict[Hashable, Interner] = {}
        # answers evaluated into these sites so far, through every run whose state this
        # continues (cache.py keeps the state that has learnt the most)
        self.evaluated = 0

    @property
    def entries(self) -> int:
        return (sum(s.entries for s in self._sites.values())
                + sum(v.size for v in self._facts.values()))

    def site(self, what: Hashable) -> Site:
        found = self._sites.get(what)
        if found is None:
            found = self._sites[what] = Site(len(self._sites))
        return found

    def fact(self, what: Hashable, codes: np.ndarray, keys: list[Any]
             ) -> tuple[np.ndarray, int, list[Any]]:
        """A block's codes of a fact (``keys``: each code's value key) as stable codes: the
        codes, how many there are so far, and each stable code's key."""
        interner = self._facts.get(what)
        if interner is None:
            interner = self._facts[what] = Interner()
        remap = np.array([interner.code_keyed(k, k) for k in keys],
                         dtype=code_type(interner.size))
        return np.take(remap, codes), interner.size, interner.values
