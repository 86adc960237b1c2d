"""Scenario overlays: validated completely, applied to a copy, stackable, baseline untouched."""

from __future__ import annotations

from datetime import date

import pytest

from chokepoint.engine import determine
from chokepoint.rules.ruleset import RuleSet
from chokepoint.sandbox.scenario import Scenario, ScenarioError, apply

NL_TOOL = {"from_country": "NL", "to_country": "CN",
           "exporter": {"name": "Example Dutch OEM", "country": "NL", "headquartered_in": "NL"},
           "item": {"eccn": "3B001.d.1", "made_in": "NL",
                    "national_classifications": {"NL": "NL list"},
                    "us_content": {"controlled_share": 0.0, "incorporated_us_items": []},
                    "us_technology": {"direct_product_of": [], "plant_direct_product_of": [],
                                      "contains_ic_made_by_plant_direct_product_of": ["3E001"]}},
           "parties": [{"role": "end_user", "name": "Example Fab", "country": "CN",
                        "headquartered_in": "CN", "designations": [],
                        "at_advanced_node_facility": False}],
           "end_uses": ["ic_development_or_production_other"], "us_person_support": False}
ON = date(2025, 6, 2)

DROP_SUPP4 = {"name": "unilateral-fdp", "title": "Drop the Supp. No. 4 exclusion",
              "changes": [{"parameter": "us.ear.742.supp4.exclusion_in_force",
                           "from": "2025-01-01", "value": False}]}


def us(txn: dict, rules: RuleSet) -> dict:  # type: ignore[type-arg]
    return determine(txn, rules, ON)["jurisdictions"]["US"]  # type: ignore[no-any-return]


def test_dropping_the_exclusion_catches_the_dutch_tool_and_leaves_the_baseline(
        rules: RuleSet) -> None:
    before = determine(NL_TOOL, rules, ON)
    scenario_rules = apply(Scenario.parse(DROP_SUPP4), rules)
    assert us(NL_TOOL, scenario_rules)["outcome"] == "license_required"
    assert scenario_rules.scenario == ("unilateral-fdp",)
    after = determine(NL_TOOL, rules, ON)
    assert after == before and before["jurisdictions"]["US"]["license_requirements"] == []
    # before the scenario's date, the real rule still holds
    assert determine(NL_TOOL, scenario_rules, date(2024, 12, 31))["jurisdictions"]["US"][
        "license_requirements"] == []


def test_scenarios_stack_and_change_groups_and_entries(rules: RuleSet) -> None:
    korea_in = Scenario.parse({"name": "korea-equivalent", "title": "Korea joins Supp. No. 4",
                               "changes": [{"group": "Supp4:742", "from": "2025-01-01",
                                            "members": ["JP", "NL", "GB", "AU", "KR"]}]})
    kr_tool = {**NL_TOOL, "from_country": "KR",
               "exporter": {"name": "Example KR", "country": "KR", "headquartered_in": "KR"},
               "item": {**NL_TOOL["item"], "made_in": "KR"}}  # type: ignore[dict-item]
    assert us(kr_tool, rules)["outcome"] == "license_required"
    stacked = apply(Scenario.parse(DROP_SUPP4), apply(korea_in, rules))
    assert apply(korea_in, rules) is not rules
    assert us(kr_tool, apply(korea_in, rules))["license_requirements"] == []
    assert us(kr_tool, stacked)["outcome"] == "license_required"
    assert stacked.scenario == ("korea-equivalent", "unilateral-fdp")
    fn5 = apply(Scenario.parse({"name": "shenzhen-fn5", "title": "FN5 for SMIC Shenzhen",
                                "changes": [{"entity": "smic-shenzhen", "from": "2025-01-01",
                                             "footnotes": [5]}]}), rules)
    entry = next(e for e in fn5.entities["US"] if e.id == "smic-shenzhen")
    assert entry.version_on(ON).footnotes == [5]  # type: ignore[union-attr]


@pytest.mark.parametrize(("change", "message"), [
    ({"parameter": "no.such.parameter", "from": "2025-01-01", "value": 1}, "unknown parameter"),
    ({"group": "Z:9", "from": "2025-01-01", "members": ["CN"]}, "unknown country group"),
    ({"entity": "nobody", "from": "2025-01-01", "footnotes": [5]}, "unknown Entity List"),
    ({"parameter": "us.ear.742.supp4.exclusion_in_force", "from": "2025-01-01",
      "value": "yes please"}, "value"),
])
def test_invalid_scenarios_name_what_is_wrong(change: dict, message: str,  # type: ignore[type-arg]
                                              rules: RuleSet) -> None:
    with pytest.raises(ScenarioError, match=message):
        apply(Scenario.parse({"name": "bad", "title": "bad", "changes": [change]}), rules)


def test_unknown_scenario_keys_are_refused() -> None:
    with pytest.raises(ScenarioError, match="colour"):
        Scenario.parse({"name": "x", "title": "x", "colour": "red"})


JP_END_USER_RULE = {
    "name": "japan-end-user-rule", "title": "Japan adopts an Entity List end-user rule",
    "add": [
        {"schema_version": 1, "kind": "provision", "id": "JP:end-user", "regime": "JP",
         "role": "subject_route", "title": "Is an SME item exported from Japan to a listed "
         "Chinese party?", "explain": "Hypothetical: a Japanese end-user rule.",
         "last_reviewed": "2026-11-26", "review_horizon_days": 365,
         "versions": [{"from": "2025-01-01", "citation": {
             "ref": "scenario: hypothetical Japanese end-user rule", "effective": "2025-01-01",
             "evidence": "unverified", "source": "a policy scenario (not law)"},
             "when": {"all": [{"fact": "item.kind", "eq": "sme"},
                              {"exists": {"over": "parties", "where": {"exists": {
                                  "over": "designations",
                                  "where": {"fact": "list", "eq": "entity_list"}}}}}]}}]},
        {"schema_version": 1, "kind": "provision", "id": "JP:end-user-licence", "regime": "JP",
         "role": "licence_requirement", "title": "Licence for SME to a listed party",
         "explain": "Hypothetical.", "last_reviewed": "2026-11-26",
         "review_horizon_days": 365,
         "versions": [{"from": "2025-01-01", "citation": {
             "ref": "scenario: hypothetical Japanese end-user rule", "effective": "2025-01-01",
             "evidence": "unverified", "source": "a policy scenario (not law)"},
             "review_policy": "presumption_of_denial",
             "when": {"ref": "JP:end-user"}}]}]}


def test_a_scenario_adds_a_rule_a_regime_does_not_have(rules: RuleSet) -> None:
    jp_part = {**NL_TOOL, "from_country": "JP",
               "exporter": {"name": "Example JP", "country": "JP", "headquartered_in": "JP"},
               "item": {"kind": "sme", "eccn": "EAR99", "made_in": "JP",
                        "national_classifications": {"JP": None},
                        "us_content": {"controlled_share": 0.0, "incorporated_us_items": []}},
               "parties": [{"role": "end_user", "name": "Example Fab", "country": "CN",
                            "designations": [{"list": "entity_list", "footnotes": []}]}]}
    assert determine(jp_part, rules, ON)["jurisdictions"]["JP"]["outcome"] != \
        "license_required"
    added = apply(Scenario.parse(JP_END_USER_RULE), rules)
    jp = determine(jp_part, added, ON)["jurisdictions"]["JP"]
    assert jp["outcome"] == "license_required"
    assert [r["rule"] for r in jp["license_requirements"]] == ["JP:end-user-licence"]
    assert determine(jp_part, added, date(2024, 6, 1))["jurisdictions"]["JP"]["outcome"] != \
        "license_required"  # not before the scenario's date
    bad = {**JP_END_USER_RULE, "add": [{**JP_END_USER_RULE["add"][0], "regime": 7}]}
    with pytest.raises(ScenarioError, match=r"add\[0\]"):
        apply(Scenario.parse(bad), rules)
