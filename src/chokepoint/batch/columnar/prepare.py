"""A block prepared for the rules: days, items and parties processed once per distinct
value (catalogue, derived figures, classification, screening, list look-ups)."""

from __future__ import annotations

import weakref
from datetime import date, timedelta
from typing import Any

import numpy as np

from chokepoint.batch.columnar.book import ITEM, Book
from chokepoint.batch.columnar.codes import Groups, Interner, canonical, group, kept
from chokepoint.batch.columnar.items import check_supported, item_keys, item_state
from chokepoint.batch.flat import COLUMNS
from chokepoint.engine.catalogue import apply_catalogue
from chokepoint.engine.classify import classify, derive
from chokepoint.engine.determine import (
    apply_aliases,
    resolve_parties,
)
from chokepoint.rules.ruleset import RuleSet
from chokepoint.screening.service import screen_parties, screener_for

GROUPS_KEPT = 8  # the groupings of a block kept for reuse (each: an integer per row)
PARTIES = "columnar-parties"  # the rule set's memo of parties' look-ups (kept by cache.py)
SHARED = "shared"  # the facts before any regime's aliases, list look-ups and classification


class Prepared:
    """One block ready for the rules: the day standing for each interval of unchanged
    rules, each distinct item through the catalogue, derived figures and classification,
    each distinct party screened and looked up, and any row's facts at a stage."""

    def __init__(self, book: Book, rules: RuleSet) -> None:
        self.book, self.rules = book, rules
        self.regimes = sorted(rules.regimes)
        check_supported(rules)
        rows = book.rows
        self.invalid_part = (book.invalid.astype(np.int8), 2)
        self._groups: dict[tuple[tuple[int, int], ...],
                           tuple[list[weakref.ref[np.ndarray]], Groups]] = {}
        self.assertions = book.cols["assertions"]
        # one day per interval of unchanged rules that the book uses: the interval's first
        # day, the same in every block and process (so their day snapshots are shared)
        self.epoch_days: list[date | None] = [None] * book.epoch_size
        before = (book.boundaries[0] - timedelta(days=1) if book.boundaries
                  else min(book.days, default=date(2000, 1, 1)))  # (rules that never change)
        starts = [before, *book.boundaries]
        self.epoch_starts: list[date] = starts  # every interval's, in the block or not
        for e in set(np.unique(book.epoch).tolist()):
            self.epoch_days[e] = starts[e]
        # The item per (state of the item rules, item, assertions): catalogue, derived
        # figures, each regime's classification. Only the item's parts these read or write
        # are grouped on; the rest (e.g. US content) is added back unchanged.
        self.kept_keys = item_keys(rules)
        core = [c for c in ITEM if COLUMNS[c][0].split(".")[1] in self.kept_keys]
        core_groups = group([(book.cols[c].codes, book.cols[c].size) for c in core], rows)
        states = Interner()
        item_states = np.array([states.code(None if d is None else item_state(rules, d))
                               for d in self.epoch_days], dtype=np.int64)
        g = self.group([(item_states[book.epoch], states.size),
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
            snap = rules.at(self.day_of(r))
            asserted = self.asserted(r)
            item = {key: v for key, v in self.raw_item(r).items() if key in self.kept_keys}
            shared, _ = apply_catalogue({"item": item}, snap)
            shared, _ = derive(shared, snap)
            self.items[SHARED].append(shared["item"])
            for code in self.regimes:
                facts, _, questions = classify(shared, snap, code, asserted)
                self.items[code].append(facts["item"])
                self.eccn_q[code].append(questions)
        # each party slot per state of the lists (screening lists, Entity List, aliases):
        # screened, then each regime's list look-ups - kept per rule set for the next blocks
        # and runs (cache.py), by the state's text (the same in every process) and the
        # party's cells: the hits, and the text each projection of the party interns under
        # (evaluator.part). The party's own dicts are made only when a rule's answer has
        # to be evaluated for it (party_value): a warm run needs only the texts.
        states = Interner()
        list_state = np.array([states.code(None if d is None else self.list_state(d))
                               for d in self.epoch_days], dtype=np.int64)
        memo: dict[Any, list[Any]] = kept(rules, PARTIES, 100_000)
        state_keys = [canonical(v) for v in states.values]
        self.party_groups: list[Groups] = []
        # per slot and party group: [hits, texts, looks (None until made)], and the row and
        # party it stands for (None: no party, or a row left to the scalar path)
        self._looks: list[list[list[Any] | None]] = []
        self._party_reps: list[list[tuple[int, dict[str, Any] | None]]] = []
        self.party_texts: list[list[dict[Any, Any] | None]] = []
        self.hits: list[list[str]] = []
        for slot in book.slots:
            pg = self.group([(list_state[book.epoch], states.size),
                             (slot.groups.ids, slot.groups.count)])
            self.party_groups.append(pg)
            reps = [(r, None if book.invalid[r] else
                     (slot.parsed[slot.groups.ids[r]] or {}).get("parties", [None])[0])
                    for r in pg.rep.tolist()]
            # (the cells the party was read from stand for it: the same cells, the same
            # party)
            keys = [None if party is None else
                    (state_keys[list_state[book.epoch[r]]], slot.keys[slot.groups.ids[r]])
                    for r, party in reps]
            self._prime([rep for rep, key in zip(reps, keys, strict=True)
                         if key is not None and key not in memo])
            looks: list[list[Any] | None] = []
            for (r, party), key in zip(reps, keys, strict=True):
                if party is None:
                    looks.append(None)
                    continue
                found = memo.get(key)
                if found is None:
                    done = self._party(party, self.day_of(r))
                    found = memo[key] = [done[0], {}, done[1:]]
                looks.append(found)
            self._looks.append(looks)
            self._party_reps.append(reps)
            self.party_texts.append([None if f is None else f[1] for f in looks])
            self.hits.append(["" if f is None else f[0] for f in looks])
        self._facts: dict[tuple[int, str], Any] = {}

    def party_value(self, slot: int, what: str, stage: str, k: int
                    ) -> dict[str, Any] | None:
        """Party group ``k``'s party at a stage (``what`` "parties": as the stage sees it;
        "entries": its list entry there), made when first asked for (None: no party)."""
        found = self._looks[slot][k]
        if found is None:
            return None
        if found[2] is None:  # (hits and texts kept from another run: the dicts made now)
            r, party = self._party_reps[slot][k]
            assert party is not None
            found[2] = self._party(party, self.day_of(r))[1:]
        shared, per_regime = found[2]
        if stage == SHARED:
            return shared if what == "parties" else None
        value: dict[str, Any] | None = per_regime[stage][0 if what == "parties" else 1]
        return value

    def _party(self, party: dict[str, Any], on: date) -> Any:
        """A party screened (unless its designations are given) and looked up in each
        regime's lists: (the hits as text, the party, per regime (its party, its entry))."""
        screener = screener_for(self.rules, on)
        found: list[dict[str, Any]] = []
        if party.get("designations") is None:
            screened, found, _ = screen_parties({"parties": [party]}, screener, on)
            party = screened["parties"][0]
        hits = ";".join(f"{h['party']}->{h['name']} ({h['score']})" for h in found)
        snap = self.rules.at(on)
        per_regime = {}
        for code in self.regimes:
            facts, _ = apply_aliases({"parties": [party]}, snap, code)
            facts, found_entries, _ = resolve_parties(facts, snap, code)
            per_regime[code] = (facts["parties"][0], found_entries.get(0))
        return hits, party, per_regime

    def _prime(self, reps: list[tuple[int, dict[str, Any] | None]]) -> None:
        """The parties to screen, screened in bulk per screener (the hits
        ``screen_parties`` then finds in the screener's cache)."""
        wanted: dict[int, tuple[Any, list[tuple[str, str | None]]]] = {}
        for r, party in reps:
            if party is None or party.get("designations") is not None:
                continue
            screener = screener_for(self.rules, self.day_of(r))
            wanted.setdefault(id(screener), (screener, []))[1].append(
                (party["name"], party.get("country")))
        for screener, queries in wanted.values():
            screener.prime(queries)

    def group(self, parts: list[tuple[np.ndarray, int]]) -> Groups:
        """Rows grouped by their codes; a row that takes the scalar path is never grouped
        with one that does not (a group's representative answers for all of it). The last
        few groupings are kept: the same parts (the very same arrays, checked through weak
        references) are often grouped twice in a row."""
        key = tuple((id(codes), size) for codes, size in parts)
        found = self._groups.pop(key, None)
        if found is None or any(ref() is not codes for ref, (codes, _) in
                                zip(found[0], parts, strict=True)):
            found = ([weakref.ref(codes) for codes, _ in parts],
                     group([self.invalid_part, *parts], self.book.rows))
        self._groups[key] = found  # most recent last
        if len(self._groups) > GROUPS_KEPT:
            del self._groups[next(iter(self._groups))]
        return found[1]

    def day_of(self, r: int) -> date:
        """The day whose rules row ``r`` is evaluated under: one day stands for its whole
        interval of unchanged rules (the flat answer does not show the day itself)."""
        day: date | None = self.epoch_days[self.book.epoch[r]]
        assert day is not None
        return day

    def raw_item(self, r: int) -> dict[str, Any]:
        parsed = self.book.item.parsed[self.book.item.groups.ids[r]]
        assert parsed is not None
        return dict(parsed["item"])

    def item_at(self, r: int, stage: str) -> dict[str, Any]:
        """Row ``r``'s item at a stage: the rules' view of its grouped part, the rest as given."""
        rest = {k: v for k, v in self.raw_item(r).items() if k not in self.kept_keys}
        return {**self.items[stage][self.item_groups.ids[r]], **rest}

    def list_state(self, day: date) -> Any:
        """What a party's screening and list look-ups depend on, on a day, named the same
        in every process (with these rules): the lists the screener was built from, whether
        it can clear a party, each Entity List entry's version in force, the aliases."""
        snap = self.rules.at(day)
        screener = screener_for(self.rules, day)
        # (screener_for names every screener it builds: an unnamed one must not share a
        # name - its parties' texts are kept under it)
        assert screener.source is not None
        return (screener.source, screener.can_clear(day),
                [[(e.id, _index(e.versions, e.version_on(day)))
                  for e in self.rules.entities.get(c, [])] for c in self.regimes],
                [sorted((k, v[0]) for k, v in snap.aliases.get(c, {}).items())
                 for c in self.regimes])

    def asserted(self, r: int) -> frozenset[str]:
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
        parties = [p for i in range(len(self.party_groups))
                   if (p := self.party_value(i, "parties", SHARED,
                                             int(self.party_groups[i].ids[r]))) is not None]
        if parties:
            txn["parties"] = parties
        txn["item"] = self.item_at(r, SHARED)
        if stage == SHARED:
            return txn, {}
        snap = self.rules.at(self.day_of(r))
        facts, _ = apply_aliases(txn, snap, stage)
        facts, entries, _ = resolve_parties(facts, snap, stage)
        facts = {**facts, "item": self.item_at(r, stage)}
        return facts, entries



def _index(versions: list[Any], version: Any) -> int | None:
    """Which of an entry's versions ``version`` is (None: none in force)."""
    return next((i for i, v in enumerate(versions) if v is version), None)
