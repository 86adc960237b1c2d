"""The cross-regime gap report: which regimes catch a transaction, which do not, and why.

The categories are the gaps the policy debate turns on: items the ally does not list
(parts and components), servicing and US-person support, end-use and end-user controls the
ally lacks, allied tools shipped from a third country, and the US reach through de minimis
and the foreign direct product rules. The JSON form is the input of the policy sandbox.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from chokepoint.engine import determine
from chokepoint.engine.catalogue import apply_catalogue
from chokepoint.engine.determine import as_of
from chokepoint.rules.ruleset import RuleSet

HOME = "US"
"""The regime whose reach the allied regimes are compared with (the unilateral controls)."""

CATEGORIES = {
    "unlisted_item": "the item is not on the ally's control list (e.g. parts and components)",
    "servicing": "servicing, maintenance, upgrades or support by US persons - the ally has "
                 "no servicing or US-person rule",
    "end_use_end_user": "a US end-use or end-user control (Entity List, § 744.23) the ally "
                        "does not have",
    "third_country_shipment": "an allied-made item shipped from a third country, outside the "
                              "ally's export controls",
    "extraterritorial_reach": "the US reaches a foreign-made item through de minimis or a "
                              "foreign direct product rule; the ally has no such reach",
    "us_defers_to_ally": "the ally licenses it; the US rules step aside (Supp. No. 4 to part "
                         "742 / equivalent controls)",
}

_CAUGHT = ("license_required",)
_EXTRATERRITORIAL = ("734.4", "734.9")
_END_USE = ("744.11", "744.23", "744.21")


def _caught(j: dict[str, Any] | None) -> bool:
    return j is not None and j["outcome"] in _CAUGHT


def _ally_reason(txn: dict[str, Any], ally: str, j: dict[str, Any] | None) -> str:
    if j is None:
        return (f"{ally}'s rules do not reach it: shipped from "
                f"{txn.get('from_country') or 'an unknown country'}")
    if j["outcome"] == "undetermined":
        return f"{ally} undecided: " + "; ".join(m["question"] for m in j["missing_facts"])
    if j["outcome"] == "not_subject":
        return f"not on {ally}'s control list"
    return f"{ally}: {j['outcome'].replace('_', ' ')}"


def _categories(txn: dict[str, Any], us: dict[str, Any], ally: str,
                j: dict[str, Any] | None) -> list[str]:
    item = txn.get("item") or {}
    found: list[str] = []
    reqs = [r["rule"] for r in us.get("license_requirements", [])]
    basis = [b["rule"] for b in us.get("basis", [])]
    if txn.get("activity") == "service" or txn.get("us_person_support") or any(
            r.startswith("744.6") for r in reqs):
        found.append("servicing")
    if any(r.startswith(_END_USE) for r in reqs):
        found.append("end_use_end_user")
    if item.get("made_in") == ally and txn.get("from_country") != ally \
            and txn.get("activity") != "service":
        found.append("third_country_shipment")
    if j is not None and j["outcome"] == "not_subject":
        found.append("unlisted_item")
    if item.get("made_in") != HOME and any(b.startswith(_EXTRATERRITORIAL) for b in basis):
        found.append("extraterritorial_reach")
    return found


def gap_entry(txn: dict[str, Any], d: dict[str, Any], allies: list[str]) -> dict[str, Any]:
    """The gap analysis of one determination."""
    juris = d["jurisdictions"]
    us = juris.get(HOME)
    outcome_by_regime = {code: (juris[code]["outcome"] if code in juris else "does_not_apply")
                         for code in [HOME, *allies]}
    caught_by = [c for c in [HOME, *allies] if _caught(juris.get(c))]
    gaps: list[dict[str, Any]] = []
    item = txn.get("item") or {}
    # An ally is compared where its rules could have reached the item: made or shipped there.
    relevant = [a for a in allies if a in (item.get("made_in"), txn.get("from_country"))]
    if us is not None and _caught(us):
        if relevant:
            for ally in relevant:
                j = juris.get(ally)
                if _caught(j):
                    continue
                for cat in _categories(txn, us, ally, j) or ["other"]:
                    gaps.append({"category": cat, "caught_by": HOME, "not_caught_by": ally,
                                 "why": CATEGORIES.get(cat, "other difference") + "; "
                                 + _ally_reason(txn, ally, j)})
        else:
            where = ", ".join(allies)
            for cat in _categories(txn, us, "", None) or ["other"]:
                gaps.append({"category": cat, "caught_by": HOME, "not_caught_by": where,
                             "why": CATEGORIES.get(cat, "other difference") + "; neither "
                             f"made in nor shipped from {where}"})
    elif us is not None and us["outcome"] != "undetermined":
        for ally in allies:
            if _caught(juris.get(ally)):
                gaps.append({"category": "us_defers_to_ally", "caught_by": ally,
                             "not_caught_by": HOME, "why": CATEGORIES["us_defers_to_ally"]})
    return {
        "id": d.get("id"),
        "as_of": d["as_of"],
        "outcome": d["outcome"],
        "outcome_by_regime": outcome_by_regime,
        "caught_by": caught_by,
        "not_caught_by": [c for c in [HOME, *allies] if c not in caught_by],
        "undetermined_in": [c for c in [HOME, *allies]
                            if c in juris and juris[c]["outcome"] == "undetermined"],
        "gaps": gaps,
    }


def gap_report(transactions: list[dict[str, Any]], rules: RuleSet,
               override: date | None = None, today: date | None = None) -> dict[str, Any]:
    """Per-transaction gaps and the order-book summary."""
    allies = sorted(code for code in rules.regimes if code != HOME)
    today = today or date.today()
    entries = []
    for txn in transactions:
        on = as_of(txn, override, today)
        d = determine(txn, rules, on)
        facts, _ = apply_catalogue(txn, rules.at(on))  # e.g. where a catalogued model is made
        entries.append(gap_entry(facts, d, allies))
    by_category: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    for e in entries:
        for cat in {g["category"] for g in e["gaps"]}:
            by_category[cat] += 1
        for c in e["caught_by"]:
            caught[c] += 1
    return {
        "rules_version": rules.content_hash,
        "regimes": [HOME, *allies],
        "categories": CATEGORIES,
        "transactions": entries,
        "summary": {
            "transactions": len(entries),
            "caught_by": {c: caught[c] for c in [HOME, *allies]},
            "caught_by_none": sum(1 for e in entries if not e["caught_by"]),
            "transactions_with_gap": dict(sorted(by_category.items())),
        },
    }


def render_gaps(report: dict[str, Any]) -> str:
    lines = ["Cross-regime gap report", "======================="]
    for e in report["transactions"]:
        regimes = ", ".join(f"{k}: {v.replace('_', ' ')}"
                            for k, v in e["outcome_by_regime"].items())
        lines.append(f"{e['id'] or '(no id)'} ({e['as_of']}) - {regimes}")
        for g in e["gaps"]:
            lines.append(f"    gap [{g['category']}] caught by {g['caught_by']}, not by "
                         f"{g['not_caught_by']}: {g['why']}")
    s = report["summary"]
    lines += ["", f"Summary over {s['transactions']} transaction(s):"]
    for c, n in s["caught_by"].items():
        lines.append(f"  caught by {c}: {n}")
    lines.append(f"  caught by none: {s['caught_by_none']}")
    for cat, n in s["transactions_with_gap"].items():
        lines.append(f"  with a '{cat}' gap: {n} - {report['categories'].get(cat, '')}")
    return "\n".join(lines) + "\n"
