"""Which rules reach a flow: each flow's facts become a contract transaction evaluated by the
real engine (policy-model.md section 3.3 is the engine itself, not a copy of it).

Flows repeat: a month holds thousands of shipments but a few hundred distinct fact patterns
(firm, origin, tool class, buyer), and the rules change on a few dozen days in five years.
So each distinct pattern is evaluated once per *rule state* - the set of rule versions in
force on the day - and the answer is reused for every flow, month and scenario that shares
both. The cache is exact: two days with the same versions in force give the engine the same
rules, so it gives the same answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from chokepoint.engine import determine
from chokepoint.rules.model import Catalogue, EntityList, in_force
from chokepoint.rules.ruleset import RuleSet

LR, UNDETERMINED = "license_required", "undetermined"


@dataclass(frozen=True)
class Pattern:
    """The facts of a flow that the rules read (everything but its value)."""

    firm: str
    hq: str
    ship_from: str
    segment: str
    eccn: str
    fdpr: bool
    buyer: str
    buyer_listed: bool
    advanced_fab: bool
    destination: str


@dataclass(frozen=True)
class Reach:
    """The engine's answer for one pattern on one day: the outcome of the supplier's own
    regime (HQ or ship-from), of the US regime, and of the US regime for the same item made
    and shipped by a US firm (the level-playing-field twin)."""

    own: bool
    us: bool
    twin_us: bool
    undetermined: bool
    regimes: tuple[str, ...]  # the regimes that require a licence


def content_bucket(u: float) -> float:
    """US content as the engine sees it: rounded *up* to a hundredth, so rounding can only
    widen US reach, never narrow it."""
    return math.ceil(round(u * 100, 6)) / 100


def _fingerprint(rules: RuleSet, on: date) -> tuple[int, ...]:
    """The identity of every rule version in force on a day, except the Entity List and the
    model catalogue: a flow names no model (the catalogue is never read) and only its own
    buyer's entry can match it, so that entry is added per flow (``ReachCache.reach``)."""
    ids: list[int] = []
    for path in sorted(rules.files):
        f: Any = rules.files[path]
        if isinstance(f, (EntityList, Catalogue)):
            continue
        if hasattr(f, "versions"):
            ids.append(id(in_force(f.versions, on)))
        elif hasattr(f, "groups"):
            ids += [id(g.version_on(on)) for g in f.groups.values()]
        else:
            ids.append(id(f))
    return tuple(ids)


@dataclass
class ReachCache:
    """Engine answers by (pattern, US content, rule state); shared across scenarios."""

    listing_dates: dict[str, date]
    listed_segments: dict[str, tuple[str, ...]]
    facts: Any  # the flow world's FlowFacts: technology, US parts, end uses
    answers: dict[tuple[Any, ...], Reach] = field(default_factory=dict)
    twins: dict[tuple[Any, ...], bool] = field(default_factory=dict)
    states: dict[tuple[int, date], tuple[int, ...]] = field(default_factory=dict)
    evaluations: int = 0
    _keep: list[RuleSet] = field(default_factory=list)

    @classmethod
    def for_world(cls, world: Any) -> ReachCache:
        return cls(listing_dates={r: d.from_ for r, d in world.listing_dates.items()},
                   listed_segments={s: tuple(seg.listed_by)
                                    for s, seg in world.segments.items()},
                   facts=world.flow_facts)

    def state(self, rules: RuleSet, on: date) -> tuple[int, ...]:
        key = (id(rules), on)
        found = self.states.get(key)
        if found is None:
            if not any(r is rules for r in self._keep):
                self._keep.append(rules)  # the ids in a fingerprint must stay alive
            found = self.states[key] = _fingerprint(rules, on)
        return found

    def reach(self, rules: RuleSet, pattern: Pattern, u: float, on: date) -> Reach:
        # the supplier's name is not a fact the rules read: firms with the same facts share
        pattern = replace(pattern, firm="")
        entry = _entry_named(rules, pattern.buyer)
        key = (pattern, content_bucket(u), self.state(rules, on),
               None if entry is None else id(entry.version_on(on)))
        found = self.answers.get(key)
        if found is None:
            found = self.answers[key] = self._evaluate(rules, pattern, content_bucket(u), on)
        return found

    def _evaluate(self, rules: RuleSet, p: Pattern, u: float, on: date) -> Reach:
        self.evaluations += 1
        d = determine(self.transaction(rules, p, u, on), rules, on)["jurisdictions"]
        own_codes = {c for c in (p.hq, p.ship_from) if c in d}
        own = any(d[c]["outcome"] == LR for c in own_codes)
        us = p.hq != "US" and "US" in d and d["US"]["outcome"] == LR
        twin_us = self._twin(rules, p, on)
        relevant = [d[c] for c in (*own_codes, "US") if c in d]
        return Reach(own=own, us=us, twin_us=twin_us,
                     undetermined=any(j["outcome"] == UNDETERMINED for j in relevant),
                     regimes=tuple(sorted(c for c, j in d.items() if j["outcome"] == LR)))

    def _twin(self, rules: RuleSet, p: Pattern, on: date) -> bool:
        """Would the US require a licence for the same item made and shipped by a US firm?"""
        twin = replace(p, hq="US", ship_from="US", fdpr=False)
        entry = _entry_named(rules, p.buyer)
        key = ("twin", twin, self.state(rules, on),
               None if entry is None else id(entry.version_on(on)))
        found = self.twins.get(key)
        if found is None:
            self.evaluations += 1
            d = determine(self.transaction(rules, twin, 1.0, on), rules, on)
            found = self.twins[key] = d["jurisdictions"]["US"]["outcome"] == LR
        return found

    def transaction(self, rules: RuleSet, p: Pattern, u: float, on: date) -> dict[str, Any]:
        """The flow as a contract transaction, every fact the rules read given."""
        made_in = p.ship_from
        listings: dict[str, str | None] = {c: None for c in {"NL", "JP", made_in}}
        if p.eccn != "EAR99":
            for regime in self.listed_segments.get(p.segment, ()):
                if on >= self.listing_dates[regime]:
                    listings[regime] = f"{regime} national list: advanced {p.segment} tools"
        designations: list[dict[str, Any]] | None = []
        entry = _entry_named(rules, p.buyer)
        if entry is not None:
            designations = None if entry.version_on(on) is not None else []
        elif p.buyer_listed:
            designations = [{"list": "entity_list", "footnotes": []}]
        return {
            "id": f"flow:{p.hq}:{p.ship_from}:{p.segment}", "date": on.isoformat(),
            "activity": "export", "from_country": p.ship_from, "to_country": p.destination,
            "exporter": {"name": p.firm or f"a toolmaker headquartered in {p.hq}",
                         "country": p.ship_from, "headquartered_in": p.hq,
                         "is_us_person": p.hq == "US"},
            "item": {"kind": "sme", "description": f"{p.segment} tool", "eccn": p.eccn,
                     "made_in": made_in,
                     "us_content": {"controlled_share": u, "incorporated_us_items":
                                    [dict(x) for x in self.facts.us_parts]
                                    if u > 0 and made_in != "US" else []},
                     "us_technology": {
                         "direct_product_of": [],
                         "plant_direct_product_of": list(self.facts.us_technology)
                         if p.fdpr else [],
                         "contains_ic_made_by_plant_direct_product_of": []},
                     "national_classifications": listings},
            "parties": [{"role": "ultimate_consignee", "name": p.buyer,
                         "country": p.destination, "headquartered_in": p.destination,
                         "designations": designations,
                         "at_advanced_node_facility": p.advanced_fab}],
            "end_uses": list(self.facts.end_uses),
            "us_person_support": False,
        }


def _entry_named(rules: RuleSet, name: str) -> Any:
    """The Entity List entry with exactly this name (the sandbox's listed buyers are named as
    listed), or None. Cached on the rule set itself, so no other rule set can see it."""
    table = rules.memo("sandbox.entry_by_name")
    if name not in table:
        table[name] = next((e for entries in rules.entities.values() for e in entries
                            if e.name == name), None)
    return table[name]
