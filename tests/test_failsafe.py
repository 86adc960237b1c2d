"""Fail-safe property: removing a fact never turns a licence or an open question into a
clearance, and never makes a subject item 'not subject' - in any regime, on any day the
rules change.

(The converse does not hold, by design: where a rule turns on what the exporter does not
know - § 744.23(a)(2)(ii), a fab of unknown status - removing a fact can require a licence.
Nor does it hold for a fact that contradicts another: a given ECCN that the item's
specifications contradict, or a figure, ECCN or list status that the catalogue contradicts
for the named model, is set aside and asked about, and removing either side of the
contradiction lets the other decide.)"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chokepoint.rules
from chokepoint.contract import validate_transaction
from chokepoint.engine import determine
from chokepoint.engine.catalogue import apply_catalogue
from chokepoint.rules.loader import default_rules
from chokepoint.rules.names import normalise_name

RULES = default_rules()
COUNTRIES = ["US", "CN", "MO", "HK", "NL", "JP", "KR", "TW", "SG", "MY", "VN", "IL", "FR", "IR",
             "CU", "RU"]
ECCNS = ["3B001.a.4", "3B001.c.1.a", "3B001.f.1.b", "3B001.f.6", "3B001", "3B001.e", "3B001.g",
         "3B993.o", "3B993.f.1", "3B994.b.2", "3B002.c", "3A090.a", "3A090", "3A001.z",
         "5A992.z", "4A994", "5A991", "EAR99", "2B001", None]
TECH = ["3E001", "3D992", "3E992", "3E993", "4E001", "5E002", "9E003"]
# every day a rule value changes and the day before, from the rule data (a new rule's days
# are drawn as soon as its file has them), from the first day any regime is encoded
START = min(r.coverage_from for r in RULES.regimes.values())
DATES = sorted({d + timedelta(days=k) for d in RULES.change_dates() for k in (-1, 0)
                if d + timedelta(days=k) >= START} | {date(2026, 11, 26)})
CLEAR = {"no_license_required", "not_subject"}
# every ECCN the rule files name (items, and the technology and software of the FDP rules)
NAMED = sorted({m for f in (Path(chokepoint.rules.__file__).parent / "data").rglob("*.yaml")
                for m in re.findall(r"\b[0-9][A-E][0-9]{3}(?:\.[a-z0-9]+)*\b", f.read_text())})
NAMED_ITEMS = [e for e in NAMED if e[1] in "AB"] + ["EAR99"]
NAMED_TECH = [e for e in NAMED if e[1] in "DE"]

def maybe(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value, sometimes null (unknown): start from decided answers often."""
    return st.one_of(s, s, s, st.none())

designation = st.fixed_dictionaries(
    {"list": st.just("entity_list"),
     "footnotes": st.lists(st.sampled_from([1, 2, 4, 5]), max_size=2)})
party = st.fixed_dictionaries(
    {"role": st.sampled_from(["purchaser", "ultimate_consignee", "end_user", "other"]),
     "name": st.sampled_from(["Alpha Fab", "Beta Cloud", "Gamma Tools"]),
     "country": maybe(st.sampled_from(COUNTRIES)),
     "headquartered_in": maybe(st.sampled_from(COUNTRIES)),
     "designations": maybe(st.lists(designation, max_size=1))})
transaction = st.fixed_dictionaries(
    {"to_country": st.sampled_from(COUNTRIES),
     "from_country": st.sampled_from(COUNTRIES),
     "parties": st.lists(party, max_size=2),
     "end_uses": maybe(st.lists(st.sampled_from(
         ["advanced_node_ic_development_or_production", "supercomputer",
          "ic_development_or_production_other"]), max_size=2, unique=True)),
     "exporter": maybe(st.fixed_dictionaries({
         "country": maybe(st.sampled_from(COUNTRIES)),
         "headquartered_in": maybe(st.sampled_from(COUNTRIES))})),
     "item": st.fixed_dictionaries({
         "eccn": st.sampled_from(ECCNS),
         "made_in": maybe(st.sampled_from(COUNTRIES)),
         "us_content": maybe(st.fixed_dictionaries({
             "controlled_share": maybe(st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.25, 0.26, 0.6])),
             "incorporated_us_items": maybe(st.lists(st.fixed_dictionaries(
                 {"eccn": st.sampled_from(["3A991", "3A001", "5A992", "EAR99", "3D992"])},
                 optional={"kind": st.sampled_from(["ic", "software", "board"])}), max_size=2)),
         })),
         "us_technology": maybe(st.fixed_dictionaries({
             "direct_product_of": maybe(st.lists(st.sampled_from(TECH), max_size=2)),
             "plant_direct_product_of": maybe(st.lists(st.sampled_from(TECH), max_size=2)),
             "contains_ic_made_by_plant_direct_product_of": maybe(
                 st.lists(st.sampled_from(TECH), max_size=2)),
         })),
     }, optional={
         "national_classifications": maybe(st.dictionaries(
             st.sampled_from(["NL", "JP", "SG", "TW"]), maybe(st.just("listed")), max_size=2)),
     })},
    optional={
        "activity": st.sampled_from(["export", "reexport"]),
        "assertions": maybe(st.lists(st.sampled_from(
            ["advanced_node_ic_is_logic", "equivalent_review_policy"]), unique=True)),
    })


# The whole contract: every field a rule reads (chips' figures at and around the
# thresholds, catalogue models, SME parameters' ECCNs, every activity, role and end use,
# US-person facts, assertions), each mostly given - a field left out is unknown.
def often(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nearly always a value, sometimes null: most fields given, so answers get decided."""
    return st.one_of(*[s] * 9, st.none())


def figure(values: list[float]) -> st.SearchStrategy[Any]:
    return often(st.sampled_from(values))


# parties the curated Entity List names (footnotes 1 and 2; none, then 5 from 2024-12-02)
LISTED_NAMES = ["Huawei Technologies Co., Ltd.", "Fujian Jinhua Integrated Circuit Co., Ltd."]
wide_party = st.fixed_dictionaries(
    {"role": st.sampled_from(["purchaser", "intermediate_consignee", "ultimate_consignee",
                              "end_user", "service_provider", "other"]),
     "name": st.sampled_from(["Alpha Fab", "Beta Cloud", "Gamma Tools", *LISTED_NAMES]),
     "country": often(st.sampled_from(COUNTRIES)),
     "headquartered_in": often(st.sampled_from(COUNTRIES)),
     "designations": often(st.lists(st.fixed_dictionaries(
         {"list": st.just("entity_list")},
         optional={"footnotes": st.lists(st.sampled_from([1, 2, 3, 4, 5]), max_size=2)}),
         max_size=1)),
     "at_advanced_node_facility": often(st.booleans())})
# chip figures at and around the thresholds; in RISING, those where more is more capable
# (a larger die area lowers the performance density, so it is not among them)
RISING: dict[str, list[float]] = {
    "tpp": [0, 1000, 1599, 1600, 2399, 2400, 4799, 4800, 4992, 16000],
    "tops": [50, 150, 300, 600, 2000],
    "bit_length": [4, 8, 16, 32],
    "memory_bandwidth_density_gbps_per_mm2": [1, 2, 2.5, 3.3, 5],
    "interconnect_bandwidth_gbps": [100, 599, 600, 900],
    "memory_bandwidth_gbps": [1000, 3999, 4000, 6500, 8000],
    "transistor_count": [1e10, 3e10, 3.5e10, 4e10, 8e10]}
SHARES = [0.0, 0.05, 0.1, 0.2, 0.25, 0.26, 0.6]
chip = st.fixed_dictionaries({
    **{name: figure(values) for name, values in RISING.items()},
    "die_area_mm2": figure([100, 500, 814, 826, 2000, 10000]),
    "datacenter": often(st.booleans())})
# An ECCN of the item's kind (the product groups a kind is classified in; EAR99 for any):
# where the kind is unknown, a provision may tell what the item is from its ECCN, so a kind
# the ECCN contradicts would be one more contradiction, not a fact made unknown.
GROUPS_OF = {"chip": ("3A", "4A", "5A"), "computer": ("4A", "5A"), "sme": ("3B",),
             "sme_part_or_component": ("3B", "3A"), "material": ("3C",),
             "software": ("3D", "4D", "5D"), "technology": ("3E", "4E", "5E"),
             "other": ("3A", "3B", "4A", "5A")}


def _eccns_of(kind: str) -> list[str]:
    return [e for e in NAMED if e[:2] in GROUPS_OF[kind]] + ["EAR99"]


def _item_of(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "eccn": often(st.sampled_from(_eccns_of(kind))),
        "made_in": often(st.sampled_from(COUNTRIES)),
        "kind": st.just(kind),
        "us_content": often(st.fixed_dictionaries({
            "controlled_share": often(st.sampled_from(SHARES)),
            "incorporated_us_items": often(st.lists(st.fixed_dictionaries(
                {"eccn": st.sampled_from(NAMED_ITEMS)},
                optional={"kind": st.sampled_from(["ic", "IC", "chip", "software", "board"])}),
                max_size=2))})),
        "us_technology": often(st.fixed_dictionaries({
            key: often(st.lists(st.sampled_from(NAMED_TECH), max_size=2))
            for key in ("direct_product_of", "plant_direct_product_of",
                        "contains_ic_made_by_plant_direct_product_of")})),
        "national_classifications": often(st.dictionaries(
            st.sampled_from(["NL", "JP", "SG", "TW"]), often(st.just("listed")), max_size=2))},
        optional={"model": st.sampled_from(sorted({e.model for e in RULES.catalogue.values()})),
                  "chip": chip})


wide_item = st.sampled_from(sorted(GROUPS_OF)).flatmap(_item_of)
wide_transaction = st.fixed_dictionaries(
    {"to_country": st.sampled_from(COUNTRIES),
     "from_country": st.sampled_from(COUNTRIES),
     "activity": st.sampled_from(["export", "reexport", "transfer_in_country", "service",
                                  "release_of_technology"]),
     "parties": st.lists(wide_party, max_size=3),
     "item": wide_item,
     "end_uses": often(st.lists(st.sampled_from(
         ["advanced_node_ic_development_or_production", "ic_development_or_production_other",
          "sme_development_or_production", "supercomputer",
          "advanced_computing_item_development_or_production", "military_end_use",
          "ai_model_training", "other"]), max_size=2, unique=True)),
     "exporter": often(st.fixed_dictionaries({
         "name": often(st.sampled_from(["Acme Tools", "NVIDIA"])),
         "country": often(st.sampled_from(COUNTRIES)),
         "headquartered_in": often(st.sampled_from(COUNTRIES)),
         "is_us_person": often(st.booleans())})),
     "us_person_support": often(st.booleans()),
     "assertions": often(st.lists(st.sampled_from(sorted(RULES.assertions)), unique=True,
                                  max_size=4))})

# the item's classification is the ECCN given, else what its model and specifications
# show: it is unknown only when none of them is given
CLASSIFIED_BY = ("eccn", "model", "chip", "parameters")
# what the contract requires of a party, a designation and an incorporated item
REQUIRED = {"role", "name", "list", "eccn"}


def _removable(txn: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Paths of facts that can be made unknown (set to null / removed)."""
    out: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if path + (k,) in {("to_country",), ("from_country",), ("item",),
                                   ("activity",), ("parties",)}:
                    walk(v, path + (k,))
                    continue
                if path and isinstance(path[-1], int) and k in REQUIRED:
                    continue  # a list element's key the contract requires: not removable
                out.append(path + (k,))
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))

    walk(txn, ())
    return out


def _remove(txn: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(txn)
    node: Any = out
    for p in path[:-1]:
        node = node[p]
    if path == ("item", "eccn"):
        for key in CLASSIFIED_BY:
            node.pop(key, None)
    elif isinstance(node, dict):
        del node[path[-1]]
    return out


def _filled_back(reduced: dict[str, Any], path: tuple[Any, ...], on: date) -> bool:
    """Whether the catalogue fills the removed fact back in for the named model: then it
    is replaced by the catalogue's value, not made unknown."""
    node: Any = apply_catalogue(reduced, RULES.at(on))[0]
    for p in path:
        present = (p in node if isinstance(node, dict)
                   else isinstance(node, list) and isinstance(p, int) and p < len(node))
        if not present:
            return False
        node = node[p]
    return node is not None


def _listed_by_name(txn: dict[str, Any], path: tuple[Any, ...], on: date) -> bool:
    """Whether the removed fact is a designation (or its footnotes) of a party the curated
    Entity List names exactly, in force on the day: the entry then decides."""
    if len(path) < 3 or path[0] != "parties" or path[2] != "designations":
        return False
    return normalise_name(txn["parties"][path[1]]["name"]) in RULES.at(on).entity_index("US")


def _contradictions(determination: dict[str, Any]) -> set[str]:
    """What was set aside as contradicting another fact: an ECCN the specifications
    contradict or cannot check, a figure, kind, ECCN or listing the catalogue contradicts."""
    found = determination.get("classification")
    steps = [*(found["trace"] if found else []),
             *(s for j in determination["jurisdictions"].values() for s in j["trace"]
               if s.get("rule") == "catalogue")]
    return {str(s["result"]) for s in steps
            if str(s["result"]).startswith("CONTRADICTION") or "CONFLICT" in str(s["result"])
            or "cannot be checked" in str(s["result"])}


def _never_cleared(first: dict[str, Any], second: dict[str, Any], change: str, on: date,
                   excused: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None
                   ) -> None:
    """No regime that had not cleared the order (a licence or an open question) clears it
    after the change, and no item subject to a regime becomes not subject - unless
    `excused(regime's answer before, determination after)` excuses it."""
    for regime, before in first["jurisdictions"].items():
        after = second["jurisdictions"].get(regime)
        assert after is not None, f"{regime}: {change} dropped the regime"
        if excused and excused(before, second):
            continue
        said = f"{regime} on {on}: {change} turned {before['outcome']} into {after['outcome']}"
        if before["outcome"] not in CLEAR:
            assert after["outcome"] not in CLEAR, said
        if before["subject"] is True:
            assert after["subject"] is not False, said + " (made the item not subject)"


def _check_removals(txn: dict[str, Any], on: date) -> None:
    """Make each fact unknown in turn; no regime's answer may clear."""
    validate_transaction(txn, 0)
    first = determine(txn, RULES, on)
    for path in _removable(txn):
        reduced = _remove(txn, path)
        validate_transaction(reduced, 0)
        second = determine(reduced, RULES, on)
        if not _contradictions(first) <= _contradictions(second):
            continue  # (one side of a contradiction removed: the other decides)
        if _filled_back(reduced, path, on):
            continue  # (the catalogue's value replaces the one given)
        if _listed_by_name(txn, path, on):
            continue  # (the Entity List entry replaces the designation given)
        _never_cleared(first, second, f"removing {'.'.join(map(str, path))}", on)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transaction, st.sampled_from(DATES))
def test_removing_a_fact_never_clears(txn: dict[str, Any], on: date) -> None:
    _check_removals(txn, on)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wide_transaction, st.sampled_from(DATES))
def test_removing_any_fact_of_the_contract_never_clears(txn: dict[str, Any], on: date
                                                        ) -> None:
    _check_removals(txn, on)


other_list = st.one_of(
    st.sampled_from(["denied_persons", "military_end_user", "unverified_list", "sdn",
                     "Entity List", "entity-list", "EL"]),
    st.text(min_size=1, max_size=12).filter(lambda s: s != "entity_list"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transaction, st.sampled_from(DATES), other_list,
       st.sampled_from(["purchaser", "end_user", "other"]))
def test_a_designation_chokepoint_does_not_encode_never_clears(
        txn: dict[str, Any], on: date, listed: str, role: str) -> None:
    """A party on a list whose rules are not encoded (the Denied Persons List, a misspelt
    'Entity List' ...) never leaves a subject item with "no licence required"
    (736.2(b):other-lists): the answer is a licence or an open question, and no licence
    exception is offered (740.2(a):other-lists)."""
    txn = copy.deepcopy(txn)
    txn["parties"] = [*txn["parties"], {"role": role, "name": "Delta Trading",
                                        "designations": [{"list": listed}]}]
    validate_transaction(txn, 0)
    us = determine(txn, RULES, on)["jurisdictions"]["US"]
    assert us["outcome"] != "no_license_required"
    assert us["license_exceptions"] == []  # (740.2(a):other-lists)
    if us["outcome"] == "undetermined" and us["subject"] is True:
        assert "rules:US:designation_lists" in {m["field"] for m in us["missing_facts"]}


END_USES = ["advanced_node_ic_development_or_production", "ic_development_or_production_other",
            "sme_development_or_production", "supercomputer",
            "advanced_computing_item_development_or_production", "military_end_use",
            "ai_model_training", "other"]
TECH_LISTS = ("direct_product_of", "plant_direct_product_of",
              "contains_ic_made_by_plant_direct_product_of")


@st.composite
def addition(draw: Any) -> tuple[tuple[str, ...], Any]:
    """Where a known list gets one more element, and the element."""
    where = draw(st.sampled_from([("parties",), ("end_uses",),
                                  ("item", "us_content", "incorporated_us_items"),
                                  *(("item", "us_technology", k) for k in TECH_LISTS),
                                  *(("parties", i, "designations") for i in range(3)),
                                  *(("parties", i, "designations", 0, "footnotes")
                                    for i in range(3))]))
    if where == ("parties",):
        return where, draw(wide_party)
    if where[-1] == "designations":
        return where, draw(st.fixed_dictionaries(
            {"list": st.just("entity_list")},
            optional={"footnotes": st.lists(st.sampled_from([1, 2, 3, 4, 5]), max_size=2)}))
    if where[-1] == "footnotes":
        return where, draw(st.sampled_from([1, 2, 3, 4, 5]))
    if where == ("end_uses",):
        return where, draw(st.sampled_from(END_USES))
    if where[-1] == "incorporated_us_items":
        return where, {"eccn": draw(st.sampled_from(NAMED_ITEMS)),
                       "kind": draw(st.sampled_from(["ic", "software", "board"]))}
    return where, draw(st.sampled_from(NAMED_TECH))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wide_transaction, addition(), st.sampled_from(DATES))
def test_one_more_party_end_use_or_us_input_never_clears(
        txn: dict[str, Any], added: tuple[tuple[str, ...], Any], on: date) -> None:
    """Parties, end uses, US parts and US technology, a party's Entity List designations
    and an entry's footnotes only ever add restrictions: an order with one more never
    clears where the order without it did not."""
    where, element = added
    more = copy.deepcopy(txn)
    node: Any = more
    for key in where:
        node = node.get(key) if isinstance(node, dict) else (
            node[key] if isinstance(node, list) and key < len(node) else None)
    if not isinstance(node, list) or element in node:
        return  # (unknown, or there already: nothing is added)
    node.append(element)
    validate_transaction(more, 0)
    _never_cleared(determine(txn, RULES, on), determine(more, RULES, on),
                   f"adding {element!r} to {'.'.join(map(str, where))}", on)


def test_a_part_not_yet_classified_is_asked_by_744_23_a_4_not_cleared() -> None:
    """§ 744.23(a)(4) reaches CCL-listed items (not EAR99) for SME development in D:5. Its
    rule data required the ECCN to be given, so with the ECCN unknown the trace said "requires
    no licence here"; it now turns on the ECCN and says so."""
    txn = {"to_country": "CN", "from_country": "US", "end_uses": ["sme_development_or_production"],
           "parties": [{"role": "end_user", "name": "Example Tool Maker (invented)",
                        "country": "CN", "headquartered_in": "CN", "designations": []}],
           "exporter": {"name": "Example Exporter", "country": "US", "headquartered_in": "US",
                        "is_us_person": True},
           "us_person_support": False, "item": {"kind": "other", "made_in": "US"}}
    us = determine(txn, RULES, date(2025, 6, 1))["jurisdictions"]["US"]
    step = next(s for s in us["trace"] if s["rule"] == "744.23(a)(4)")
    assert "cannot be decided" in step["result"] and "item.eccn" in step["result"]
    asked = {m["field"]: m["rules"] for m in us["missing_facts"]}
    assert "744.23(a)(4)" in asked["item.eccn"]


# facts where a larger figure, or true for false, only ever makes an order more controlled:
# a faster chip, more controlled US content, a datacenter chip, a fab known to be
# advanced-node, a US person or US-person support (and, in `_raised`, an item known not to
# be on a regime's list found to be listed there)
RAISED: dict[tuple[str, ...], list[Any]] = {
    **{("item", "chip", name): values for name, values in RISING.items()},
    ("item", "us_content", "controlled_share"): SHARES,
    ("item", "chip", "datacenter"): [False, True],
    ("exporter", "is_us_person"): [False, True],
    ("us_person_support",): [False, True]}


def _raised(txn: dict[str, Any]) -> list[tuple[tuple[Any, ...], Any]]:
    """Each fact of RAISED that is given, with the next value up and the largest."""
    out: list[tuple[tuple[Any, ...], Any]] = []
    places = [*RAISED.items(), *((("parties", i, "at_advanced_node_facility"), [False, True])
                                 for i in range(len(txn.get("parties") or [])))]
    for path, values in places:
        node: Any = txn
        for key in path:
            node = node.get(key) if isinstance(node, dict) else (
                node[key] if isinstance(node, list) else None)
        if node is None:
            continue
        above = [v for v in values if v > node]
        out += [(path, v) for v in {above[0], above[-1]}] if above else []
    # an item known not to be on a regime's list (null) found to be listed there
    listings = (txn.get("item") or {}).get("national_classifications") or {}
    out += [(("item", "national_classifications", regime), "listed")
            for regime, listing in listings.items() if listing is None]
    return out


def _only_its_class_was_open(before: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether every licence requirement a regime's answer left open turned on the item's
    ECCN (or stands for the ECCNs whose requirements are not encoded: it asks a 'rules:'
    field), and the raised figure classified the item: those requirements then have its
    ECCN. (An A100 to the Netherlands in September 2024, given a TPP and die area that the
    catalogue contradicts, so both set aside, and TOPS that make a TPP of 1,600: it could be
    3A090.a.2, or an ECCN that § 742.4(a)(5) or the unencoded rules reach; with more TOPS
    it is 3A090.a.1, which needs no licence there.)"""
    still_open = [str(s["result"]) for s in before["trace"]
                  if s.get("role") == "licence_requirement"
                  and str(s["result"]).startswith("cannot be decided")]
    after = second.get("classification")
    return bool(still_open and after and after["eccn"]
                and all("item.eccn" in r or "rules:" in r for r in still_open))


def _classified_by(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether the raised figure took an item that every classification paragraph had
    decided against (its ECCN was asked: it may be any other) into a paragraph."""
    before, after = first.get("classification"), second.get("classification")
    return bool(before and after and before["eccn"] is None and after["eccn"]
                and not any(str(s["result"]).startswith("cannot be decided")
                            for s in before["trace"]))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wide_transaction, st.sampled_from(DATES))
def test_a_faster_chip_more_us_content_or_a_us_person_never_clears(
        txn: dict[str, Any], on: date) -> None:
    """Raising a chip's figure or the controlled US share, or turning datacenter, advanced-
    node facility, US person or US-person support from false to true, or an item known not
    to be on a regime's list found to be listed there, never clears an order that was not
    cleared, in any regime. (Where the raised figure ends a contradiction - it
    now matches the catalogue or the chip's own TOPS - the other side decides, as when a
    fact is removed; where it classifies an item that every paragraph had decided
    against; and where the answer was open only on the item's class, for the ECCNs whose
    requirements are not encoded, and the raised figure classifies the item.)"""
    validate_transaction(txn, 0)
    first = determine(txn, RULES, on)
    for path, value in _raised(txn):
        more = copy.deepcopy(txn)
        node: Any = more
        for key in path[:-1]:
            node = node[key]
        was, node[path[-1]] = node[path[-1]], value
        second = determine(more, RULES, on)
        if not _contradictions(first) <= _contradictions(second):
            continue  # (a contradiction resolved: the other side decides)
        if _classified_by(first, second):
            continue  # (the ECCN asked is now known)
        _never_cleared(first, second,
                       f"raising {'.'.join(map(str, path))} from {was!r} to {value!r}", on,
                       excused=_only_its_class_was_open)


def _shuffled(node: Any, rnd: Any) -> Any:
    """The same facts with every list in another order."""
    if isinstance(node, dict):
        return {k: _shuffled(v, rnd) for k, v in node.items()}
    if isinstance(node, list):
        out = [_shuffled(v, rnd) for v in node]
        rnd.shuffle(out)
        return out
    return node


def _answer(regime: dict[str, Any]) -> dict[str, Any]:
    """What a regime decided, with no regard to the order the facts were given in."""
    return {"outcome": regime["outcome"], "subject": regime["subject"],
            "basis": sorted(b["rule"] for b in regime["basis"]),
            # (the review policy's note names the listed parties in the order given)
            "requirements": sorted((r["rule"], str(r.get("review_policy")))
                                   for r in regime["license_requirements"]),
            "exceptions": sorted(map(str, regime["license_exceptions"])),
            # (a question about a list's element names its place in the list)
            "missing": sorted((re.sub(r"\[\d+\]", "[]", m["field"]),
                               tuple(sorted(m.get("rules") or [])))
                              for m in regime["missing_facts"])}


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wide_transaction, st.sampled_from(DATES), st.randoms(use_true_random=False))
def test_the_order_facts_are_listed_in_never_changes_the_answer(
        txn: dict[str, Any], on: date, rnd: Any) -> None:
    """Parties, end uses, designations, footnotes, US parts, US technology and assertions
    are sets in law: no rule may turn on which one comes first. Every list given in
    another order gives the same outcome, rules, review policies, licence exceptions and
    questions in every regime."""
    validate_transaction(txn, 0)
    other = _shuffled(txn, rnd)
    first = determine(txn, RULES, on)
    second = determine(other, RULES, on)
    assert first["outcome"] == second["outcome"]
    assert first["classification"] == second["classification"] or (
        first["classification"] and second["classification"]
        and first["classification"]["eccn"] == second["classification"]["eccn"])
    for regime, before in first["jurisdictions"].items():
        assert _answer(before) == _answer(second["jurisdictions"][regime]), (
            f"{regime} on {on}: the answer changed with the order of the lists")
