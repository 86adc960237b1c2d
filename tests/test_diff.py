"""Rule-change impact on the December 2024 amendment."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from chokepoint.contract import read_transactions
from chokepoint.diff import UNEXPLAINED, causes, order_impact, reads_field, rule_changes
from chokepoint.rules.predicate import data_reads, fact_reads
from chokepoint.rules.ruleset import RuleSet

BOOK = Path(__file__).parent / "fixtures" / "books" / "december_2024.yaml"


def test_the_december_2024_rules_are_listed_with_citations(rules: RuleSet) -> None:
    changes = rule_changes(rules, date(2024, 12, 1), date(2024, 12, 2))
    ids = {c["id"] for c in changes if c["kind"] == "provision"}
    assert {"734.9(k)", "734.9(e)(3)", "734.4(a)(8)", "734.4(a)(9)"} <= ids
    k = next(c for c in changes if c["id"] == "734.9(k)")
    assert k["citation"] == "15 CFR 734.9(k) (89 FR 96790, eff. 2024-12-02)"
    assert not rule_changes(rules, date(2024, 12, 2), date(2024, 12, 3))


def test_the_korean_sme_order_changes_and_the_unrelated_one_does_not(rules: RuleSet) -> None:
    report = order_impact(read_transactions(BOOK), rules, date(2024, 12, 1), date(2024, 12, 2))
    (row,) = report["changed_rows"]
    assert row["id"] == "kr-epi"
    assert row["outcome"] == {"from": "undetermined", "to": "license_required"}
    assert "734.9(k)" in row["caused_by"]
    assert "734.9(k)" in row["regimes"]["US"]["rules_added"]


def test_a_move_is_explained_by_the_changed_rule_or_a_changed_exclusion_of_it(
        rules: RuleSet) -> None:
    d1, d2 = date(2024, 12, 1), date(2024, 12, 2)
    changes = rule_changes(rules, d1, d2)
    found = causes(rules, changes)
    asked: list[str] = []

    def entries(*listed: str) -> Callable[[], frozenset[str]]:
        def look() -> frozenset[str]:
            asked.append("looked")
            return frozenset(listed)
        return look

    def explain(touched: set[str], regimes: frozenset[str] = frozenset({"US"}),
                listed: tuple[str, ...] = (), asked_once: frozenset[str] = frozenset()
                ) -> list[str]:
        return found(touched, set(regimes), entries(*listed), set(asked_once))

    # a deciding rule that changed names itself, whatever else decides (the parties' list
    # entries are not even looked up)
    assert explain({"742.4(a)(4)", "744.11(a)"}, listed=("US:xmc",)) == ["742.4(a)(4)"]
    assert not asked
    # an unchanged rule qualified by an exclusion that took effect: the exclusion
    assert explain({"744.23(a)(2)(i)"}) == ["744.23(a)(2)(iv)"]
    # a party whose Entity List entry changed that day (Wuhan Xinxin was added): the entry
    assert {"US:xmc", "US:smic"} <= {c["id"] for c in changes}
    assert explain({"744.11(a)"}, listed=("US:xmc",)) == ["US:xmc"]
    assert explain(set(), listed=("US:xmc", "US:not-changed")) == ["US:xmc"]
    # ... in a regime that moved only
    assert explain(set(), regimes=frozenset({"NL"}), listed=("US:xmc",)) == [UNEXPLAINED]
    # provisions a rule merely refers to are not named (an Entity List requirement refers
    # to the footnote 5 FDP rules, which changed that day): nothing is, rather than those
    assert explain({"744.11(a)"}) == [UNEXPLAINED]
    assert explain(set()) == [UNEXPLAINED]
    # a changed parameter a deciding rule reads, when no rule or exclusion changed: the
    # footnote 1 FDP rule's technology list was amended that day, the rule itself was not
    assert "us.ear.734.9.e.1.technology" in data_reads(
        rules.provisions["734.9(e)(1)"].versions[-1].predicate)
    assert explain({"734.9(e)(1)"}) == ["us.ear.734.9.e.1.technology"]
    # a new rule that asks a fact of an order with no deciding rule: the changed
    # provisions of the regime that read it (the SME FDP rule of 2024-12-02 reads whether
    # the item contains an IC made by a plant that is a US direct product)
    field = "item.us_technology.contains_ic_made_by_plant_direct_product_of"
    named = explain(set(), asked_once=frozenset({f"US:{field}"}))
    assert "734.9(k)" in named and named == sorted(
        pid for pid in {c["id"] for c in changes} & set(rules.provisions)
        if rules.provisions[pid].regime == "US"
        and rules.provisions[pid].role != "licence_exception" and any(
            v.predicate is not None and reads_field(fact_reads(v.predicate), field)
            for v in rules.provisions[pid].versions))
    assert explain(set(), regimes=frozenset({"NL"}),
                   asked_once=frozenset({f"US:{field}"})) == [UNEXPLAINED]
    assert reads_field(fact_reads(rules.provisions["744.11(a)"].versions[-1].predicate),
                       "parties[0].designations")
    # every predicate of the rule data says what rule data it reads
    read = set().union(*(data_reads(v.predicate) for p in rules.provisions.values()
                         for v in p.versions if v.predicate is not None))
    assert read <= set(rules.provisions) | set(rules.parameters) | set(rules.groups)


def test_diff_cli(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from", "2024-12-01",
                          "--to", "2024-12-02", str(BOOK), "--format", "json"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["changed_rows"][0]["id"] == "kr-epi"
    bad = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from", "2025-01-02",
                          "--to", "2025-01-01"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2


def test_the_text_report_says_what_moved_in_each_order() -> None:
    """Rules added and removed and a changed review policy in words, each order with its
    causes, and per cause a count (the JSON report lists the orders)."""
    from chokepoint.diff import render_impact

    moved = {"row": 7, "id": "po-7", "outcome": {"from": "undetermined",
                                                 "to": "license_required"},
             "caused_by": ["744.11(a)", "US:smic"],
             "regimes": {"US": {"outcome": {"from": "undetermined", "to": "license_required"},
                                "rules_added": ["744.11(a)"], "rules_removed": ["742.4(a)(4)"],
                                "review_policy": {"from": [""],
                                                  "to": ["", "presumption_of_denial"]}}}}
    same_policy = {"row": 8, "id": "", "outcome": {"from": "undetermined", "to": "not_subject"},
                   "caused_by": ["742.4(a)(4)"],
                   "regimes": {"US": {"outcome": {"from": "undetermined", "to": "not_subject"},
                                      "rules_added": [], "rules_removed": ["742.4(a)(4)"],
                                      "review_policy": {"from": [""], "to": []}}}}
    text = render_impact({"from": "2024-12-01", "to": "2024-12-02", "rule_changes": [],
                          "changed_rows": [moved, same_policy],
                          "by_cause": {"744.11(a), US:smic": [7], "742.4(a)(4)": [8]}})
    assert "  caused by 744.11(a), US:smic: 1 order(s)\n" in text
    assert ("  po-7 (row 7): undetermined -> license_required  [caused by 744.11(a), US:smic]\n"
            "      US: undetermined -> license_required; rules added 744.11(a); rules removed "
            "742.4(a)(4); review policy (none) -> presumption_of_denial\n") in text
    assert ("  row 8: undetermined -> not_subject  [caused by 742.4(a)(4)]\n"
            "      US: undetermined -> not_subject; rules removed 742.4(a)(4)\n") in text
