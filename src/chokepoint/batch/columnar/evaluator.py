"""The rules applied to one block: each provision's effect per row, from one evaluation
per distinct combination of the facts it reads, and each regime's flat answer."""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np

from chokepoint.batch.columnar.book import TOP, Book
from chokepoint.batch.columnar.codes import (
    CODE,
    Coded,
    Interner,
    canonical,
    code_type,
    fitted,
    group,
    kept,
    key_of,
    only,
    row_numbers,
)
from chokepoint.batch.columnar.combine import (
    FALSE,
    TRUE,
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
from chokepoint.batch.columnar.prepare import SHARED, Prepared
from chokepoint.batch.columnar.sites import Site, Sites, cell_type, pack
from chokepoint.batch.flat import COLUMNS
from chokepoint.engine.determine import (
    regime_applies,
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
    day_data_reads,
    fact_reads,
)
from chokepoint.rules.ruleset import RuleSet

PACKED_KEPT = 16  # packed keys kept for reuse in a block (each: an integer per row)
WHOLE_LIMIT = 2048  # a node whose facts can combine in more ways than this is split
SITES_LIMIT = 4_000_000  # codes and answers kept with a rule set (dropped between blocks)


def sites_of(rules: RuleSet) -> Sites:
    """The rule set's sites (sites.py), started again when they hold too much."""
    memo = rules.memo("columnar-sites")
    found: Sites | None = memo.get("sites")
    if found is None or found.entries > SITES_LIMIT:
        found = memo["sites"] = Sites()
    return found


class Evaluator(Prepared):
    """The rules applied to one :class:`Book`."""

    def __init__(self, book: Book, rules: RuleSet) -> None:
        super().__init__(book, rules)
        self._parts: dict[tuple[Any, ...], tuple[np.ndarray, int]] = {}
        self._keys: dict[int, tuple[np.ndarray, list[Any]]] = {}
        self._effects: dict[tuple[str, str], Coded] = {}
        self.sites = sites_of(rules)
        self.invalid_rows = np.flatnonzero(book.invalid)
        self._packed: dict[Any, tuple[list[weakref.ref[np.ndarray]], np.ndarray]] = {}

    # -- facts as codes --------------------------------------------------------------------
    def part(self, stage: str, what: str, arg: Any = None) -> tuple[np.ndarray, int]:
        """The per-row codes of one fact (or fact group) a rule reads, at a stage."""
        if (what in ("top", "epoch")
                or (what == "item" and arg.split(".")[1] not in self.kept_keys)):
            stage = SHARED  # the same at every stage: as given (or the day's)
        key = (stage, what, arg)
        found = self._parts.get(key)
        if found is None:
            found = self._stable(key, *self._part(stage, what, arg))
        return found

    def _stable(self, key: Any, codes: np.ndarray, keys: list[Any]
                ) -> tuple[np.ndarray, int]:
        """A block's codes of a part (``keys``: each code's value key) as the rule set's
        stable codes - the same code for the same value in every block - kept as the
        part ``key``."""
        stable, size, values = self.sites.fact(key, codes, keys)
        self._keys[id(stable)] = (stable, values)
        found = self._parts[key] = (stable, size)
        return found

    def data_epoch(self, pred: Pred, live: np.ndarray) -> tuple[np.ndarray, int]:
        """Per row, which intervals of unchanged rules a node can tell apart: the same code
        for intervals in which its version is in force alike (``live``) and the parameters
        and country groups it reads have the same values. Its answer is a function of this
        code, its facts and the effects it refers to."""
        params, groups = day_data_reads(pred)
        key = ("data-epoch", params, groups, tuple(live.tolist()))
        found = self._parts.get(key)
        if found is None:
            rules = self.rules
            keys = [canonical([bool(live[e]),
                               [_value_on(rules.parameters[p], day) for p in params],
                               [_members_on(rules.groups[g], day) for g in groups]])
                    for e, day in enumerate(self.epoch_starts)]
            found = self._stable(key, self.book.epoch, keys)
        return found

    def keys_of(self, codes: np.ndarray) -> list[Any] | None:
        """The value key of each code of a part made by :meth:`part` (equal keys, equal
        values, in every block), or None."""
        found = self._keys.get(id(codes))
        return found[1] if found is not None and found[0] is codes else None

    def _part(self, stage: str, what: str, arg: Any) -> tuple[np.ndarray, list[Any]]:
        """A fact's codes in this block and each code's value key."""
        book = self.book
        if what == "epoch":  # an interval's first day stands for it in every block
            return book.epoch, list(self.epoch_days)
        if what == "item":  # one path of the item, as the stage has it
            interner = Interner()
            items: list[dict[str, Any] | None]
            if arg.split(".")[1] in self.kept_keys:
                items, ids = list(self.items[stage]), self.item_groups.ids
            else:  # a part of the item no item rule touches: as given
                items = [None if p is None else p["item"] for p in book.item.parsed]
                ids = book.item.groups.ids
            table = np.array([interner.code(None if item is None else _get(item, arg))
                              for item in items], dtype=CODE)
            return np.take(table, ids), interner.keys()
        if what == "eccn_questions":
            interner = Interner()
            table = np.array([interner.code([tuple(u) for u in q])
                              for q in self.eccn_q[stage]], dtype=CODE)
            return np.take(table, self.item_groups.ids), interner.keys()
        if what in ("parties", "entries"):  # every slot, projected on the fields read
            parts = []
            slot_keys: list[list[Any]] = []
            for i, pg in enumerate(self.party_groups):
                interner = Interner()
                fields = arg if what == "parties" else None
                # each party's projection as the key it interns under (its text, or that of
                # None), made once and kept with the party's look-ups (prepare.py) for the
                # next blocks and runs
                key = (what, stage, fields)
                codes = []
                for k, texts in enumerate(self.party_texts[i]):
                    if texts is None:  # (no party)
                        codes.append(interner.code(None))
                        continue
                    text = texts.get(key)
                    if text is None:
                        v = self.party_value(i, what, stage, k)
                        # (interned: the same text for many parties, kept once on disk)
                        text = texts[key] = (key_of(None) if v is None else
                                             sys.intern(canonical(_projected(v, fields))))
                    codes.append(interner.code_keyed(text, None))
                table = np.array(codes, dtype=CODE)
                parts.append((np.take(table, pg.ids), interner.size))
                slot_keys.append(interner.keys())
            g = group(parts, book.rows)
            keys = [tuple(k[c[r]] for k, (c, _) in zip(slot_keys, parts, strict=True))
                    for r in g.rep.tolist()]
            return g.ids, keys
        if what == "top":  # the columns holding a top-level path (or below/above it)
            cols = [c for c in TOP if _overlaps(COLUMNS[c][0], arg)]
            if not cols:
                return np.zeros(book.rows, dtype=CODE), [None]
            g = group([(book.cols[c].codes, book.cols[c].size) for c in cols], book.rows)
            keys = [tuple((type(v), v) for v in
                          (book.cols[c].values[book.cols[c].codes[r]] for c in cols))
                    for r in g.rep.tolist()]
            return g.ids, keys
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
        # (over every interval, not only the block's: the versions, and the sites their
        # predicates are kept at, are then the same in every block)
        in_force = [prov.version_on(d) for d in self.epoch_starts]
        versions = {id(v): v.predicate for v in in_force
                    if v is not None and v.predicate is not None}
        nodes = []
        present = np.array([d is not None for d in self.epoch_days])
        for vid, predicate in versions.items():
            live = np.array([v is not None and id(v) == vid for v in in_force])
            if (live & present).any():  # (a version in force on no row's day: skipped)
                nodes.append((live, self.node(stage, prov.id, predicate, live)))
        if not nodes:
            base = self.constant(FALSE)
        elif len(nodes) == 1 and nodes[0][0][book.epoch].all():
            base = nodes[0][1]
        else:  # each row takes the version in force on its day (FALSE where none is)
            def one(r: int) -> Result:
                e = book.epoch[r]
                for live, c in nodes:
                    if live[e]:
                        return c.table[c.codes[r]]  # type: ignore[no-any-return]
                return FALSE

            base = self.answers(("versions", stage, prov.id, tuple(c.site for _, c in nodes)),
                                [self.part(stage, "epoch"),
                                 *((c.codes, len(c.table)) for _, c in nodes)],
                                one, evaluate_invalid=True)
        parts = [base] + [self.effect(stage, e.id) for e in self.rules.exclusions_of(rule_id)]
        found = self._effects[key] = (self.fold(parts, effective_of, "effective")
                                         if len(parts) > 1 else base)
        return found

    def node(self, stage: str, rule: str, pred: Pred, live: np.ndarray) -> Coded:
        """A predicate's result per row where ``live`` (per rule interval) holds; a node
        whose facts take few values together is evaluated whole, once per combination; a
        larger one is split into its parts and their results combined."""
        if isinstance(pred, Ref):
            return self.effect(stage, pred.rule)
        if isinstance(pred, Not):
            inner = self.node(stage, rule, pred.item, live)
            if inner.site is None:
                return Coded(inner.codes, [negate(r) for r in inner.table])
            negated = self.sites.site(("not", inner.site))
            return Coded(inner.codes, negated.derived("negated", inner.table, negate),
                         negated.id)
        reads = fact_reads(pred)
        # (the intervals of unchanged rules told apart only where the rule data this node
        # reads differs: the engine's code runs once for rows alike in intervals alike)
        parts = [self.data_epoch(pred, live), *self.read_parts(stage, reads)[1:]]
        refs = sorted(reads.refs or ())
        ref_effects = {r: self.effect(stage, r) for r in refs}
        parts += [(e.codes, len(e.table)) for e in ref_effects.values()]
        space = 1
        for _, size in parts:
            space *= max(size, 1)
        if isinstance(pred, (All, AnyOf)) and space > WHOLE_LIMIT:
            # a part false on every row makes an "all" false on every row, whatever the
            # others (the engine stops there too, with no open fields); a part true on
            # every row makes an "any" true: the other parts need not be evaluated
            stop = FALSE if isinstance(pred, All) else TRUE
            kids = []
            for k in pred.items:
                kid = self.node(stage, rule, k, live)
                stops = np.array([v == stop for v in kid.table])
                if stops[kid.codes[0]] and np.take(stops, kid.codes).all():
                    return self.constant(stop)
                kids.append(kid)
            if isinstance(pred, All):
                return self.fold(kids, all_of, "all")
            return self.fold(kids, any_of, "any")
        compiled_pred = compiled(pred)
        book = self.book

        def one(r: int) -> Result:
            if not live[book.epoch[r]]:
                return FALSE
            facts, _ = self.facts(r, stage)
            snap = self.rules.at(self.day_of(r))
            seeded = {d: e.table[e.codes[r]] for d, e in ref_effects.items()}
            ctx = Context(snap=snap, root=facts, assertions=self.asserted(r), rule=rule,
                          resolve=seeded.__getitem__)
            return flat(compiled_pred(ctx, facts, ""))

        # The answer for a combination of the parts' values is kept per rule set for the
        # next blocks, when every part's values are known by key.
        keys = [self.keys_of(c) for c, _ in parts[:len(parts) - len(ref_effects)]]
        keys += [e.table for e in ref_effects.values()]
        sites = tuple(e.site for e in ref_effects.values())
        if any(k is None for k in keys) or None in sites:
            return self._per_group(parts, one)
        # The answer for a combination of the parts' values is also kept by value, for
        # when the site's codes start again (sites.py).
        memo = kept(self.rules, "columnar-nodes", 200_000)
        site = (stage, rule, _pred_key(self.rules, pred), tuple(live.tolist()))
        pairs = [(k, c) for k, (c, _) in zip(keys, parts, strict=True)]

        def cached(r: int) -> Result:
            key = (site, *(k[c[r]] for k, c in pairs))  # type: ignore[index]
            found: Result | None = memo.get(key)
            if found is None:
                found = memo[key] = one(r)
            return found

        return self.answers(("node", *site, sites), parts, cached)

    def fold(self, parts: list[Coded], step: Callable[[list[Any]], Any],
             site: Any, by_value: bool = True) -> Coded:
        """Results combined row by row: once per distinct combination of the parts, kept
        at the site ``site`` (naming ``step``, a function of the parts' values alone) by
        the parts' codes, and - ``by_value``, for hashable values - by their values."""
        memo = kept(self.rules, "columnar-folds", 200_000)

        def one(r: int) -> Any:
            values = [c.table[c.codes[r]] for c in parts]
            if not by_value:
                return step(values)
            key = (site, *values)
            found = memo.get(key)
            if found is None:
                found = memo[key] = step(values)
            return found

        sites = tuple(c.site for c in parts)
        coded = [(c.codes, len(c.table)) for c in parts]
        if None in sites:
            return self._per_group(coded, one, evaluate_invalid=True)
        return self.answers(("fold", site, sites), coded, one, evaluate_invalid=True)

    def answers(self, what: Any, parts: list[tuple[np.ndarray, int]],
                one: Callable[[int], Any], placeholder: Any = FALSE,
                evaluate_invalid: bool = False) -> Coded:
        """``one`` per group of rows, kept at a site (``what``) by the parts' stable codes:
        only the combinations the site has not seen in an earlier block are evaluated.
        Rows left to the scalar path get ``placeholder`` (nothing reads it), unless
        ``one`` is a function of the parts' values alone (``evaluate_invalid``)."""
        if any(w is None or (type(w) is tuple and None in w) for w in what):
            # an input whose codes hold for this block only: nothing to keep
            return self._per_group(parts, one, placeholder, evaluate_invalid)
        site = self.sites.site(what)
        widths = site.start([n for _, n in parts])
        if widths is not None and site.direct:
            key = self.packed(parts, widths)
            found = self._by_cell(site, site.read(key) if site.filled else None, key, one,
                                  evaluate_invalid)
        else:
            found = self._by_group(site, parts, widths, one, evaluate_invalid)
        if not evaluate_invalid and len(self.invalid_rows):
            # a row left to the scalar path may share its parts' codes with a valid row:
            # it gets the placeholder all the same, as every site gives it
            code = site.values.code(placeholder)
            found = fitted(found, site.values.size)
            found[self.invalid_rows] = code
        return Coded(found, site.values.values, site.id)

    def packed(self, parts: list[tuple[np.ndarray, int]], widths: tuple[int, ...]
               ) -> np.ndarray:
        """The parts' codes packed per row (sites.pack); the last few kept, as the same
        facts are often read by several rules in a row."""
        ident = (tuple(id(c) for c, _ in parts), widths)
        found = self._packed.pop(ident, None)
        if found is None or any(ref() is not c for ref, (c, _) in
                                zip(found[0], parts, strict=True)):
            found = ([weakref.ref(c) for c, _ in parts],
                     pack([c for c, _ in parts], widths, cell_type(widths)))
        self._packed[ident] = found  # most recent last
        if len(self._packed) > PACKED_KEPT:
            del self._packed[next(iter(self._packed))]
        return found[1]

    def _by_group(self, site: Site, parts: list[tuple[np.ndarray, int]],
                  widths: tuple[int, ...] | None, one: Callable[[int], Any],
                  evaluate_invalid: bool) -> np.ndarray:
        """:meth:`answers` for wide inputs: rows grouped, each group's combination looked
        up, a row of each new one evaluated."""
        g = self.group(parts)
        keys = combos = None
        if widths is None:  # (too wide to pack: each group's codes as a tuple)
            combos = [tuple(t) for t in
                      np.stack([c[g.rep] for c, _ in parts], axis=1).tolist()]
            found = np.array([site.by_tuple.get(t, -1) for t in combos], dtype=CODE)
        else:
            keys = pack([c[g.rep] for c, _ in parts], widths)
            found = site.look_up(keys)
        new = np.flatnonzero(found < 0)
        if not evaluate_invalid:  # (those rows get the placeholder)
            new = new[~self.book.invalid[g.rep[new]]]
        if len(new):
            values = site.values
            codes = np.array([values.code(one(r)) for r in g.rep[new].tolist()],
                             dtype=CODE)
            found = fitted(found, values.size)
            found[new] = codes
            if keys is not None:
                site.remember(keys[new], codes)
            else:
                assert combos is not None
                site.by_tuple.update(zip([combos[i] for i in new.tolist()], codes.tolist(),
                                         strict=True))
            self.sites.evaluated += len(new)
        per_row: np.ndarray = np.take(found, g.ids)
        return per_row

    def _by_cell(self, site: Site, found: np.ndarray | None, cells: np.ndarray,
                 one: Callable[[int], Any], evaluate_invalid: bool) -> np.ndarray:
        """:meth:`answers` for narrow inputs: each row's cell read directly (``found``; None
        when the site has no answer yet), a row of each new cell evaluated."""
        missing = found < 0 if found is not None else np.ones(len(cells), dtype=np.bool_)
        if not evaluate_invalid and len(self.invalid_rows):
            missing[self.invalid_rows] = False  # (those rows get the placeholder)
        if missing.any():
            # a row of each new cell, picked as group() picks it: rows evaluated for one
            # site are the ones evaluated for the others (their facts are kept)
            if missing.all():  # (as in a first block: no need to pick the rows out)
                fresh, reps = site.first_rows(cells, row_numbers(len(cells)))
            else:
                new = np.flatnonzero(missing)
                fresh, reps = site.first_rows(cells[new], new)
            values = site.values
            codes = np.array([values.code(one(r)) for r in reps.tolist()], dtype=CODE)
            site.fill(fresh, codes)
            self.sites.evaluated += len(codes)
            found = site.read(cells)
        if found is None:  # (no row to evaluate: every one left to the scalar path)
            found = np.full(len(cells), -1, dtype=CODE)
        return found

    def flags(self, coded: Coded, name: str, test: Callable[[Any], bool]) -> np.ndarray:
        """``test`` of each row's value, computed once per value (kept with the site of a
        result whose codes are stable, for the next blocks)."""
        if coded.site is None:
            table = np.array([test(v) for v in coded.table], dtype=np.bool_)
        else:
            derived = self.sites.site(("derived", coded.site))
            table = derived.flags(name, coded.table, test)
        per_row: np.ndarray = np.take(table, coded.codes)
        return per_row

    def constant(self, value: Any) -> Coded:
        """One value on every row."""
        site = self.sites.site(("constant", canonical(value)))
        code = site.values.code(value)
        return Coded(np.full(self.book.rows, code, dtype=code_type(site.values.size)),
                     site.values.values, site.id)

    def _per_group(self, parts: list[tuple[np.ndarray, int]], one: Callable[[int], Any],
                   placeholder: Any = FALSE, evaluate_invalid: bool = False) -> Coded:
        """``one`` evaluated once per group, for this block only; rows left to the scalar
        path (never grouped with others) get ``placeholder``, which nothing reads."""
        g = self.group(parts)
        interner = Interner()
        codes = np.empty(g.count, dtype=CODE)
        for k in range(g.count):
            r = int(g.rep[k])
            skip = self.book.invalid[r] and not evaluate_invalid
            codes[k] = interner.code(placeholder if skip else one(r))
        return Coded(np.take(codes, g.ids), interner.values)

    def applies(self, code: str) -> Coded:
        regime = self.rules.regimes[code]
        reads = FactReads(set(), {}, False, set())
        for v in regime.versions:
            if v.applies is not None:
                reads.merge(fact_reads(v.applies))

        def one(r: int) -> Any:
            facts, _ = self.facts(r, SHARED)
            snap = self.rules.at(self.day_of(r))
            value, _, unknowns = regime_applies(regime, snap, facts, self.asserted(r))
            return [value, [list(u) for u in unknowns]]

        return self.answers(("applies", code), self.read_parts(SHARED, reads), one)

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
        none = self.constant((FALSE, ()))
        core = self.fold([self.fold([self.effect(code, p.id) for p in provs], summary_of(provs),
                                    ("summary", *(p.id for p in provs)))
                          if provs else none for provs in sets], core_of, "core")
        # the ECCN questions matter only where the ECCN is among the open fields
        eccn = self.flags(core, "eccn", _eccn_open)
        applies = self.applies(code)
        covered = np.array([d is None or d >= regime.coverage_from for d in self.epoch_days])
        common = [(covered[self.book.epoch].astype(np.int8), 2),
                  (applies.codes, len(applies.table))]
        # Three answers per row, each from the facts it turns on: the missing fields (from
        # the fields open and the ECCN questions); the outcome and the rules that apply
        # (from which provisions apply); and each applying requirement's review policy.
        decided = self.fold([core], decided_of, "decided")
        fields_parts = [*common, (core.codes, len(core.table)),
                        only(eccn, self.part(code, "eccn_questions"))]

        def answer(r: int, summaries: Any) -> Any:
            value, unknowns = applies.table[applies.codes[r]]
            if value is False:
                return None
            facts, entries = self.facts(r, code)
            on = self.day_of(r)
            snap = rules.at(on)
            asserted = self.asserted(r)
            ev = RegimeEvaluation(regime, snap, facts, asserted, entries)
            for provs, summary in zip(sets, summaries, strict=True):
                ev.seed(standing_in(provs, summary))
            questions = self.eccn_q[code][self.item_groups.ids[r]]
            out = evaluate_regime(regime, snap, facts, asserted, [], entries, questions,
                                  ev=ev, exceptions_wanted=False, policies_wanted=False)
            out = settle_applies(out, value, [Unknown(*u) for u in unknowns], rules, facts)
            return [*regime_cells(out), [r["rule"] for r in out["license_requirements"]]]

        # The answers depend on the grouped parts only, in every block: they are kept per
        # rule set, by the parts' values, so a later block looks most of them up.
        memo = kept(rules, f"columnar-answers:{code}", 200_000)
        applies_keys = (self.sites.site(("derived", applies.site)).derived(
            "canonical", applies.table, canonical) if applies.site is not None
            else [canonical(v) for v in applies.table])
        question_keys: dict[int, str] = {}

        def cached(r: int, kind: str, summaries: Any, questions: bool) -> Any:
            q = None
            if questions:
                g = int(self.item_groups.ids[r])
                q = question_keys.get(g)
                if q is None:
                    q = question_keys[g] = canonical(
                        [list(u) for u in self.eccn_q[code][g]])
            key = (kind, bool(covered[self.book.epoch[r]]), applies_keys[applies.codes[r]],
                   summaries, q)
            found = memo.get(key, memo)  # (the memo itself: not there; None is an answer)
            if found is memo:
                found = memo[key] = answer(r, summaries)
            return found

        fields = self.answers(
            ("fields", code, applies.site, core.site), fields_parts,
            lambda r: cached(r, "fields", core.table[core.codes[r]], bool(eccn[r])), None)
        cells = self.answers(
            ("cells", code, applies.site, decided.site),
            [*common, (decided.codes, len(decided.table))],
            lambda r: cached(r, "cells", decided.table[decided.codes[r]], False), None)
        applying = {p.id: self.flags(core, p.id, _applying(p.id)) for p in requirements}
        policies = [self.policy(code, p, applying[p.id]) for p in requirements]
        ids = [p.id for p in requirements]
        return self.fold([cells, fields, *policies],
                         lambda parts: regime_answer(ids, parts), ("regime", code),
                         by_value=False)

    def policy(self, code: str, prov: Any, where: np.ndarray) -> Coded:
        """A licence requirement's review policy, where it applies (engine.policy)."""
        if not where.any():  # applies to no row of the block: no policy to look up
            return self.constant(None)
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
            day = self.day_of(r)
            version = prov.version_on(day)
            if version is None:
                return None
            ev = RegimeEvaluation(regime, self.rules.at(day), facts, self.asserted(r),
                                  entries)
            ev.seed({p: e.table[e.codes[r]] for p, e in consulted.items()})
            return review_policy(version, ev).get("review_policy")

        what = ("policy", code, prov.id, tuple(c.site for c in consulted.values()))
        return self.answers(what, [(where.astype(np.int8), 2),
                                   *(only(where, p) for p in parts)], one, None)


def _pred_key(rules: RuleSet, pred: Pred) -> str:
    """What names a predicate in a site's key: its structure as text (predicates are
    frozen dataclasses whose repr holds their parts and values), the same in every process,
    so that sites kept on disk (cache.py) are found again."""
    memo: dict[int, tuple[Pred, str]] = rules.memo("columnar-pred-keys")  # type: ignore[assignment]
    found = memo.get(id(pred))
    if found is None or found[0] is not pred:
        found = memo[id(pred)] = (pred, repr(pred))  # (the predicate kept: its id stays its)
    key: str = found[1]
    return key


def _value_on(param: Any, day: date) -> Any:
    """A parameter's value on a day, as its rule file gives it (None: none in force)."""
    version = param.version_on(day)
    return None if version is None else version.value


def _members_on(group: Any, day: date) -> Any:
    """What a country group's version on a day answers by: its members and the countries
    known not to be (None: no version in force)."""
    version = group.version_on(day)
    if version is None:
        return None
    return [sorted(version.members), None if version.known_non_members is None
            else sorted(version.known_non_members)]


def _eccn_open(core: Any) -> bool:
    """Whether the ECCN is among the open fields of a regime's core (core_of)."""
    return core is not None and any(u.field == "item.eccn" for c in core for u in c[0][1])


def _applying(rule: str) -> Callable[[Any], bool]:
    def test(core: Any) -> bool:
        return core is not None and any(rule in c[1] for c in core)
    return test


def _projected(party: dict[str, Any] | None, fields: Any) -> dict[str, Any] | None:
    """A party reduced to the fields a rule reads (all of it when ``fields`` is None)."""
    if party is None or fields is None:
        return party
    return {f: party.get(f) for f in fields}


def _get(root: dict[str, Any], path: str) -> Any:
    from chokepoint.engine.facts import MISSING, get

    value = get({"item": root}, path)
    return None if value is MISSING else value


def _overlaps(column_path: str, path: str) -> bool:
    return (column_path == path or column_path.startswith(path + ".")
            or path.startswith(column_path + "."))
