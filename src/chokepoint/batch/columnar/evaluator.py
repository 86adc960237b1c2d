"""The rules applied to one block: each provision's effect per row, from one evaluation
per distinct combination of the facts it reads, and each regime's flat answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np

from chokepoint.batch.columnar.book import ITEM, TOP, Book
from chokepoint.batch.columnar.codes import Coded, Groups, Interner, group, only, select
from chokepoint.batch.columnar.combine import (
    FALSE,
    all_of,
    any_of,
    core_of,
    decided_of,
    effective_of,
    flat,
    regime_answer,
    standing_in,
    summary_of,
)
from chokepoint.batch.columnar.items import check_supported, item_keys, item_state
from chokepoint.batch.flat import COLUMNS
from chokepoint.engine.catalogue import apply_catalogue
from chokepoint.engine.classify import classify, derive
from chokepoint.engine.determine import (
    apply_aliases,
    regime_applies,
    resolve_parties,
    settle_applies,
)
from chokepoint.engine.evaluate import Context, compiled
from chokepoint.engine.jurisdiction import (
    RegimeEvaluation,
    evaluate_regime,
)
from chokepoint.engine.logic import Result, Unknown, negate
from chokepoint.engine.policy import review_policy
from chokepoint.rules.model import PER_ENTRY
from chokepoint.rules.predicate import (
    All,
    AnyOf,
    FactReads,
    Not,
    Pred,
    Ref,
    fact_reads,
)
from chokepoint.rules.ruleset import RuleSet
from chokepoint.screening.service import screen_parties, screener_for

SHARED = "shared"  # the facts before any regime's aliases, list look-ups and classification
WHOLE_LIMIT = 512  # a node whose facts can combine in more ways than this is split


class Evaluator:
    """The rules applied to one :class:`Book`."""

    def __init__(self, book: Book, rules: RuleSet) -> None:
        self.book, self.rules = book, rules
        self.regimes = sorted(rules.regimes)
        check_supported(rules)
        rows = book.rows
        self._invalid = (book.invalid.astype(np.int64), 2)
        self.assertions = book.cols["assertions"]
        # one day per interval of unchanged rules that the book uses: the interval's first
        # day, the same in every block and process (so their day snapshots are shared)
        self._epoch_days: list[date | None] = [None] * book.epoch_size
        before = (book.boundaries[0] - timedelta(days=1) if book.boundaries
                  else min(book.days, default=date(2000, 1, 1)))  # (rules that never change)
        starts = [before, *book.boundaries]
        for e in set(np.unique(book.epoch).tolist()):
            self._epoch_days[e] = starts[e]
        # The item per (state of the item rules, item, assertions): catalogue, derived
        # figures, each regime's classification. Only the item's parts these read or write
        # are grouped on; the rest (e.g. US content) is added back unchanged.
        self.kept_keys = item_keys(rules)
        core = [c for c in ITEM if COLUMNS[c][0].split(".")[1] in self.kept_keys]
        core_groups = group([(book.cols[c].codes, book.cols[c].size) for c in core], rows)
        states = Interner()
        item_states = np.array([states.code(None if d is None else item_state(rules, d))
                               for d in self._epoch_days], dtype=np.int64)
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
            cols = [c for c in TOP if _overlaps(COLUMNS[c][0], arg)]
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
        base = Coded(np.zeros(book.rows, dtype=np.int64), [FALSE])
        versions = {id(v): v.predicate for v in in_force
                    if v is not None and v.predicate is not None}
        for vid, predicate in versions.items():
            live = np.array([v is not None and id(v) == vid for v in in_force])
            codes = self.node(stage, prov.id, predicate, live)
            present = live[book.epoch]
            base = codes if present.all() else select(present, codes, base)
        parts = [base] + [self.effect(stage, e.id) for e in self.rules.exclusions_of(rule_id)]
        found = self._effects[key] = self.fold(parts, effective_of) if len(parts) > 1 else base
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
        if isinstance(pred, (All, AnyOf)) and space > WHOLE_LIMIT:
            kids = [self.node(stage, rule, k, live) for k in pred.items]
            return self.fold(kids, all_of if isinstance(pred, All) else any_of)
        compiled_pred = compiled(pred)
        book = self.book

        def one(r: int) -> Result:
            if not live[book.epoch[r]]:
                return FALSE
            facts, _ = self.facts(r, stage)
            snap = self.rules.at(self._day(r))
            seeded = {d: e.table[e.codes[r]] for d, e in ref_effects.items()}
            ctx = Context(snap=snap, root=facts, assertions=self._asserted(r), rule=rule,
                          resolve=seeded.__getitem__)
            return flat(compiled_pred(ctx, facts, ""))

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
                   placeholder: Any = FALSE) -> Coded:
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
        none = Coded(np.zeros(self.book.rows, dtype=np.int64), [(FALSE, ())])
        core = self.fold([self.fold([self.effect(code, p.id) for p in provs], summary_of(provs))
                          if provs else none for provs in sets], core_of)
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
        decided = self.fold([core], decided_of)
        fields_parts = [*common, (core.codes, len(core.table)),
                        only(eccn, self.part(code, "eccn_questions"))]

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
                ev.seed(standing_in(provs, summary))
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
                         lambda parts: regime_answer(ids, parts))

    def policy(self, code: str, prov: Any, where: np.ndarray) -> Coded:
        """A licence requirement's review policy, where it applies (engine.policy)."""
        reads = FactReads(set(), {}, False, set())
        per_entry = any(v.review_policy == PER_ENTRY for v in prov.versions)
        for v in prov.versions:
            for cp in v.review_policies:
                reads.merge(fact_reads(cp.when))
        if per_entry:  # the policy of the listed parties' Entity List entries
            reads.merge(FactReads(set(), {"parties": {"designations"}}, False, set()))
        consulted = {ref: self.effect(code, ref) for ref in sorted(reads.refs or ())}
        parts = [*self.read_parts(code, reads),
                 *([self.part(code, "entries")] if per_entry else []),
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
                                *(only(where, p) for p in parts)], one, None)


def _get(root: dict[str, Any], path: str) -> Any:
    from chokepoint.engine.facts import MISSING, get

    value = get({"item": root}, path)
    return None if value is MISSING else value


def _overlaps(column_path: str, path: str) -> bool:
    return (column_path == path or column_path.startswith(path + ".")
            or path.startswith(column_path + "."))
