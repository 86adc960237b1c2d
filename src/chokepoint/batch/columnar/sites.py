"""Answers kept per rule set from block to block and found again by NumPy.

Every fact a rule reads gets the same code for the same value in every block (a stable
code), and so does every rule's answer. A rule node, a combination of effects or a
regime's answer is a *site*: its answers are kept by the packed codes of its inputs in a
sorted array, so a later block finds the combinations it has seen before with one
``searchsorted`` and evaluates only the new ones - no Python per combination."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from chokepoint.batch.columnar.codes import Interner

MAX_BITS = 62  # packed keys are int64; wider combinations are not kept by code
DIRECT_BITS = 16  # up to this: a table with a cell per combination, read row by row
EMPTY = np.empty(0, dtype=np.int64)


class Site:
    """One site's answers: each distinct answer's stable code (``values``), and the answer
    code of each combination of its inputs' codes seen so far."""

    def __init__(self, ident: int) -> None:
        self.id = ident
        self.values = Interner()
        self._widths: tuple[int, ...] = ()
        self._keys = EMPTY  # packed input codes, sorted
        self._found = EMPTY  # the answer code of each
        self._cells = EMPTY  # or for narrow inputs: the answer code per packed key
        self._derived: dict[str, Any] = {}

    @property
    def entries(self) -> int:
        return len(self._keys) + self.values.size + (len(self._cells) >> 4)

    def _start(self, sizes: list[int]) -> int:
        """The bits of a combination of inputs of these sizes (-1: too many), starting
        again when an input has outgrown its bits since the last block."""
        widths = tuple((size - 1).bit_length() if size > 1 else 0 for size in sizes)
        if sum(widths) > MAX_BITS:
            return -1
        if widths != self._widths:
            self._widths, self._keys, self._found = widths, EMPTY, EMPTY
            self._cells = EMPTY
        return sum(widths)

    def _pack(self, codes: list[np.ndarray], count: int) -> np.ndarray:
        key = np.zeros(count, dtype=np.int64)
        for c, width in zip(codes, self._widths, strict=True):
            if width:
                key <<= width
                key |= c
        return key

    def cells(self, codes: list[np.ndarray], sizes: list[int], rows: int
              ) -> tuple[np.ndarray, np.ndarray] | None:
        """For inputs narrow enough to have a cell per combination: each row's answer code
        (-1: not seen yet) and its cell; None for wider inputs (use :meth:`look_up`)."""
        bits = self._start(sizes)
        if bits < 0 or bits > DIRECT_BITS:
            return None
        if not len(self._cells):
            self._cells = np.full(1 << bits, -1, dtype=np.int64)
        key = self._pack(codes, rows)
        return self._cells[key], key

    def fill(self, cells: np.ndarray, codes: np.ndarray) -> None:
        """Answer codes for new cells (from :meth:`cells`)."""
        self._cells[cells] = codes

    def first_rows(self, cells: np.ndarray, rows: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The distinct cells among ``cells`` and a row of each (``rows``: each cell's)."""
        spot = np.full(len(self._cells), -1, dtype=np.int64)
        spot[cells] = rows
        fresh = np.flatnonzero(spot >= 0)
        return fresh, spot[fresh]

    def read(self, cells: np.ndarray) -> np.ndarray:
        """The answer codes of cells (-1: none yet)."""
        found: np.ndarray = self._cells[cells]
        return found

    def look_up(self, reps: list[np.ndarray], sizes: list[int]
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """The answer code of each combination (``reps``: one array of codes per input;
        ``sizes``: how many codes each input has), -1 where not seen yet; and the packed
        keys to :meth:`remember` new answers by (None when the inputs are too wide)."""
        count = len(reps[0]) if reps else 1
        if self._start(sizes) < 0:
            return np.full(count, -1, dtype=np.int64), None
        key = self._pack(reps, count)
        if not len(self._keys):
            return np.full(count, -1, dtype=np.int64), key
        at = np.searchsorted(self._keys, key)
        at[at == len(self._keys)] = 0
        return np.where(self._keys[at] == key, self._found[at], -1), key

    def remember(self, keys: np.ndarray, codes: np.ndarray) -> None:
        """New combinations' answer codes (keys from :meth:`look_up`, none seen before)."""
        merged = np.concatenate([self._keys, keys])
        order = np.argsort(merged, kind="stable")
        self._keys = merged[order]
        self._found = np.concatenate([self._found, codes])[order]

    def derived(self, name: str, table: list[Any], each: Callable[[Any], Any]
                ) -> list[Any]:
        """``each`` of every value of an append-only ``table`` (another site's values),
        computed once per value: later calls only extend the list."""
        done: list[Any] = self._derived.setdefault(name, [])
        for value in table[len(done):]:
            done.append(each(value))
        return done

    def flags(self, name: str, table: list[Any], test: Callable[[Any], Any]
              ) -> np.ndarray:
        """:meth:`derived` as a NumPy array (e.g. a condition per answer code)."""
        done = self.derived(name, table, test)
        cached: np.ndarray | None = self._derived.get(name + "#array")
        if cached is None or len(cached) != len(done):
            cached = self._derived[name + "#array"] = np.array(done, dtype=np.int64)
        return cached


class Sites:
    """A rule set's sites, by what each computes (a hashable description), and the stable
    codes of the facts' values, per fact."""

    def __init__(self) -> None:
        self._sites: dict[Hashable, Site] = {}
        self._facts: dict[Hashable, Interner] = {}

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
        remap = np.array([interner.code_keyed(k, k) for k in keys], dtype=np.int64)
        return remap[codes], interner.size, interner.values
