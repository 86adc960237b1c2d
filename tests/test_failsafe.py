"""Fail-safe property: removing a fact never turns a licence or an open question into a
clearance, and never makes a subject item 'not subject'.

(The converse does not hold, by design: where a rule turns on what the exporter does not
know - § 744.23(a)(2)(ii), a fab of unknown status - removing a fact can require a licence.)"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chokepoint.contract import validate_transaction
from chokepoint.engine import determine
from chokepoint.rules.loader import default_rules

RULES = default_rules()
COUNTRIES = ["US", "CN", "MO", "HK", "NL", "JP", "KR", "TW", "SG", "MY", "VN", "IL", "FR", "IR",
             "CU", "RU"]
ECCNS = ["3B001.a.4", "3B001.c.1.a", "3B001.f.1.b", "3B001.f.6", "3B001", "3B001.e", "3B001.g",
         "3B993.o", "3B993.f.1", "3B994.b.2", "3B002.c", "3A090.a", "3A090", "3A001.z",
         "5A992.z", "4A994", "5A991", "EAR99", "2B001", None]
TECH = ["3E001", "3D992", "3E992", "3E993", "4E001", "5E002", "9E003"]
DATES = [date(2022, 10, 7), date(2022, 10, 21), date(2023, 1, 17), date(2023, 11, 17),
         date(2024, 12, 1), date(2024, 12, 2), date(2025, 5, 14), date(2026, 2, 1)]
CLEAR = {"no_license_required", "not_subject"}

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


def _removable(txn: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Paths of facts that can be made unknown (set to null / removed)."""
    out: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if path + (k,) in {("to_country",), ("item",), ("activity",)}:
                    walk(v, path + (k,))
                    continue
                if k in ("role", "name"):  # required by the contract: not removable
                    continue
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
    if isinstance(node, dict):
        del node[path[-1]]
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transaction, st.sampled_from(DATES))
def test_removing_a_fact_never_clears(txn: dict[str, Any], on: date) -> None:
    validate_transaction(txn, 0)
    before = determine(txn, RULES, on)["jurisdictions"]["US"]
    for path in _removable(txn):
        reduced = _remove(txn, path)
        after = determine(reduced, RULES, on)["jurisdictions"]["US"]
        where = ".".join(map(str, path))
        if before["outcome"] not in CLEAR:
            assert after["outcome"] not in CLEAR, (
                f"removing {where} turned {before['outcome']} into {after['outcome']}")
        if before["subject"] is True:
            assert after["subject"] is not False, f"removing {where} made the item not subject"
        if before["outcome"] == "license_required":
            # A licence stays required, or the answer becomes an open question.
            assert after["outcome"] in ("license_required", "undetermined"), (
                f"removing {where}: license_required -> {after['outcome']}")


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
