"""Engine semantics on a miniature rule tree: Kleene logic, exclusions and their precedence,
dates (inclusive start, explicit end), staleness warnings, partly known groups."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from chokepoint.engine import determine
from chokepoint.engine.eccn import match, membership
from chokepoint.rules.loader import load_rules
from chokepoint.rules.model import Parameter
from chokepoint.rules.predicate import EccnSet
from chokepoint.rules.ruleset import RuleSet

MINI = load_rules(Path(__file__).parent / "fixtures" / "mini_rules")


def us(txn: dict[str, Any], on: date, rules: RuleSet = MINI) -> dict[str, Any]:
    result: dict[str, Any] = determine(txn, rules, on)["jurisdictions"]["US"]
    return result


BASE = {"to_country": "CN", "item": {"made_in": "US"}, "end_uses": [], "assertions": []}


def test_licence_required_with_review_policy_and_citation() -> None:
    j = us(BASE, date(2022, 6, 1))
    assert j["outcome"] == "license_required"
    (req,) = j["license_requirements"]
    assert req["rule"] == "2.1(a)" and req["review_policy"] == "presumption_of_denial"
    assert req["citation"] == "test 2.1(a) (eff. 2021-01-01)"


def test_day_before_and_day_of_a_version() -> None:
    assert us(BASE, date(2020, 12, 31))["outcome"] == "no_license_required"
    assert us(BASE, date(2021, 1, 1))["outcome"] == "license_required"


def test_explicit_end_is_exclusive_and_says_no_longer_in_force() -> None:
    assert us(BASE, date(2023, 12, 31))["outcome"] == "license_required"
    j = us(BASE, date(2024, 1, 1))
    assert j["outcome"] == "no_license_required"
    step = next(s for s in j["trace"] if s["rule"] == "2.1(a)")
    assert "no longer in force" in step["result"]


def test_exclusion_takes_the_requirement_away() -> None:
    j = us({**BASE, "assertions": ["government_licence"]}, date(2022, 6, 1))
    assert j["outcome"] == "no_license_required"


def test_exception_to_the_exclusion_restores_the_requirement() -> None:
    txn = {**BASE, "assertions": ["government_licence"], "end_uses": ["military_end_use"]}
    assert us(txn, date(2022, 6, 1))["outcome"] == "license_required"


def test_unknown_exclusion_fact_makes_the_requirement_undetermined() -> None:
    txn = {**BASE, "assertions": ["government_licence"], "end_uses": None}
    j = us(txn, date(2022, 6, 1))
    assert j["outcome"] == "undetermined"
    assert [m["field"] for m in j["missing_facts"]] == ["end_uses"]


def test_unknown_subject_with_a_requirement_true_is_undetermined_asking_the_subject() -> None:
    j = us({**BASE, "item": {}}, date(2022, 6, 1))
    assert j["outcome"] == "undetermined" and j["subject"] is None
    assert [m["field"] for m in j["missing_facts"]] == ["item.made_in"]


def test_not_subject_when_no_route_applies() -> None:
    j = us({**BASE, "item": {"made_in": "FR"}}, date(2022, 6, 1))
    assert j["outcome"] == "not_subject" and j["subject"] is False


def test_staleness_warning_after_review_horizon() -> None:
    fresh = us(BASE, date(2026, 1, 30))
    stale = us(BASE, date(2026, 2, 1))
    assert not [s for s in fresh["trace"] if s.get("role") == "warning"]
    warnings = [s for s in stale["trace"] if s.get("role") == "warning"]
    assert warnings and "last reviewed on 2026-01-01" in warnings[0]["result"]


def test_before_coverage_is_undetermined() -> None:
    j = us(BASE, date(2019, 12, 31))
    assert j["outcome"] == "undetermined" and j["missing_facts"][0]["field"] == "date"


@pytest.mark.parametrize(("eccn", "pattern", "expected"), [
    ("3B001.f.1.b", "3B001.f.1", True),
    ("3B001.f.1", "3B001.f.1", True),
    ("3B001.f", "3B001.f.1", None),
    ("3B001", "3B001.f.1", None),
    ("3B001.f.2", "3B001.f.1", False),
    ("3B002.c", "3B001.c", False),
    ("3b001.F.1", "3B001.f.1", True),
    ("3B993.o", "3B*", True),
    ("EAR99", "3B*", False),
    ("3A090.a", "3A090", True),
])
def test_eccn_matching(eccn: str, pattern: str, expected: bool | None) -> None:
    assert match(eccn, pattern) is expected


def test_eccn_sets_with_exclusions_unsettled_and_open_lists() -> None:
    fn5 = EccnSet(include=("3B001",), exclude=("3B001.c",), unsettled=("3B001.f.6",))
    assert membership("3B001.e", fn5) == (True, "")
    assert membership("3B001.c.1.a", fn5) == (False, "")
    assert membership("3B001", fn5) == (None, "specificity")
    partial = EccnSet(include=("3E001",), outside=("3A*",), closed=False)
    assert membership("3E001", partial) == (True, "")
    assert membership("3A090.a", partial) == (False, "")
    assert membership("3E992", partial) == (None, "rule_data")
    assert membership("EAR99", partial) == (False, "")
    sme = EccnSet(include=("3B001.c",), unsettled=("3B001.f.6",))
    assert membership("3B001.f.6", sme) == (None, "rule_data")


def test_switching_off_the_supp4_exclusion_catches_the_dutch_tool(rules: RuleSet) -> None:
    """The policy sandbox's first lever: the Supp. No. 4 to part 742 exclusion is data."""
    txn = {
        "from_country": "NL", "to_country": "CN",
        "exporter": {"country": "NL", "headquartered_in": "NL"},
        "item": {"eccn": "3B001.c.1.a", "made_in": "NL",
                 "us_content": {"controlled_share": 0.01,
                                "incorporated_us_items": [{"eccn": "3A991", "kind": "ic"}]},
                 "us_technology": {"direct_product_of": [], "plant_direct_product_of": [],
                                   "contains_ic_made_by_plant_direct_product_of": []}},
        "parties": [], "end_uses": [],
    }
    on = date(2025, 2, 1)
    assert us(txn, on, rules)["subject"] is False
    switch = rules.parameters["us.ear.742.supp4.exclusion_in_force"]
    version = switch.versions[0].model_copy(update={"value": False})
    off: Parameter = switch.model_copy(update={"versions": [version]})
    files = {p: (off if f is switch else f) for p, f in rules.files.items()}
    scenario = RuleSet(files=files, content_hash=rules.content_hash + "+supp4-off",
                       scenario=("supp4-off",))
    j = us(txn, on, scenario)
    assert j["subject"] is True and [b["rule"] for b in j["basis"]] == ["734.4(a)(8)"]
    # the baseline is untouched
    assert us(txn, on, rules)["subject"] is False
