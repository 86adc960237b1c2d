"""A fact the user gave that the catalogue contradicts for the named product, or that the
figures it is computed from contradict, is set aside: neither value is used, the trace says
so, and the question names both values (engine/catalogue.py, engine/classify.derive). A
typing error must not clear an order that the catalogue or the other figures show to be
controlled."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

import chokepoint.rules
from chokepoint.engine import determine
from chokepoint.engine.classify import classify_item
from chokepoint.rules.loader import read_rule_tree, rules_from_bytes
from chokepoint.rules.ruleset import RuleSet

ON = date(2025, 6, 1)
DATA_DIR = Path(chokepoint.rules.__file__).parent / "data"


def _order(item: dict[str, Any], to: str = "CN", sent_from: str = "US") -> dict[str, Any]:
    return {"to_country": to, "from_country": sent_from, "parties": [], "end_uses": [],
            "us_person_support": False,
            "exporter": {"name": "Example Exporter", "country": sent_from,
                         "headquartered_in": sent_from, "is_us_person": sent_from == "US"},
            "item": item}


def _catalogue_step(d: dict[str, Any], regime: str = "US") -> str:
    steps = [s for s in d["jurisdictions"][regime]["trace"] if s.get("rule") == "catalogue"]
    return str(steps[0]["result"])


def _question(d: dict[str, Any], field: str, regime: str = "US") -> str:
    found = [m["question"] for m in d["jurisdictions"][regime]["missing_facts"]
             if m["field"] == field]
    assert found, f"{field} not asked: {d['jurisdictions'][regime]['missing_facts']}"
    return str(found[0])


def test_a_mistyped_chip_figure_does_not_clear_a_catalogued_chip(rules: RuleSet) -> None:
    # An H100 with its TPP mistyped and called EAR99: the given figure was trusted and
    # the order cleared ("no licence required") for China.
    d = determine(_order({"model": "H100 SXM", "made_in": "TW", "eccn": "EAR99",
                          "chip": {"tpp": 1000}}), rules, ON)
    us = d["jurisdictions"]["US"]
    assert us["outcome"] == "undetermined"
    assert "CONFLICT" in _catalogue_step(d) and "item.chip.tpp given as 1000" in \
        _catalogue_step(d)
    question = _question(d, "item.chip.tpp")
    assert "1000" in question and "15832" in question and "H100 SXM" in question
    assert any("cannot be checked" in s["result"] for s in d["classification"]["trace"])
    # the same order without the typing error is a contradiction of the ECCN, as before
    d = determine(_order({"model": "H100 SXM", "made_in": "TW", "eccn": "EAR99",
                          "chip": {"tpp": 15832.0}}), rules, ON)
    assert "CONFLICT" not in _catalogue_step(d)
    assert "contradicts the chip's specifications" in _question(d, "item.eccn")
    # and with no ECCN given the catalogue's figures classify it
    d = determine(_order({"model": "H100 SXM", "made_in": "TW"}), rules, ON)
    assert d["jurisdictions"]["US"]["outcome"] == "license_required"


def test_an_eccn_the_catalogue_contradicts_is_asked_about(rules: RuleSet) -> None:
    d = determine(_order({"model": "TWINSCAN NXT:2000i", "kind": "sme", "made_in": "NL",
                          "eccn": "EAR99"}), rules, ON)
    assert d["jurisdictions"]["US"]["outcome"] == "undetermined"
    question = _question(d, "item.eccn")
    assert "'EAR99'" in question and "'3B001.f.1.b'" in question
    assert "88 FR 73424" in question  # the catalogue entry's citation


@pytest.mark.parametrize("given", ["3B001.f.1.b", "3B001.f", "3B001"])
def test_an_eccn_that_falls_under_the_catalogues_or_above_it_is_no_conflict(
        rules: RuleSet, given: str) -> None:
    d = determine(_order({"model": "TWINSCAN NXT:2000i", "kind": "sme", "made_in": "NL",
                          "eccn": given}), rules, ON)
    assert "CONFLICT" not in _catalogue_step(d)


def test_not_listed_against_listed_is_a_conflict_two_listings_are_not(
        rules: RuleSet) -> None:
    shipped = {"model": "TWINSCAN NXT:2000i", "kind": "sme", "made_in": "NL",
               "eccn": "3B001.f.1.b"}
    d = determine(_order({**shipped, "national_classifications": {"NL": None}},
                         sent_from="NL"), rules, ON)
    assert d["jurisdictions"]["NL"]["outcome"] == "undetermined"
    question = _question(d, "item.national_classifications.NL", "NL")
    assert "'not listed'" in question and "NL national measure" in question
    d = determine(_order({**shipped, "national_classifications": {"NL": "EU 3B001.f.1"}},
                         sent_from="NL"), rules, ON)
    assert "CONFLICT" not in _catalogue_step(d, "NL")
    assert d["jurisdictions"]["NL"]["outcome"] == "license_required"


def test_the_classify_command_shows_the_conflict(rules: RuleSet) -> None:
    out = classify_item({"model": "H100 SXM", "chip": {"tpp": 1000}}, rules, ON, "US")
    assert out["eccn"] is None
    asked = {m["field"]: m["question"] for m in out["missing_facts"]}
    assert "15832" in asked["item.chip.tpp"]


def test_a_kind_or_country_the_catalogue_contradicts_is_asked_about(rules: RuleSet) -> None:
    # an H100 called "other" fell outside the chip tests, and its EAR99 cleared it
    d = determine(_order({"model": "H100 SXM", "kind": "other", "made_in": "TW",
                          "eccn": "EAR99"}), rules, ON)
    assert d["jurisdictions"]["US"]["outcome"] == "undetermined"
    assert "'chip'" in _question(d, "item.kind")
    # a computer named by its chip, and a part named by its tool, are no conflict
    d = determine(_order({"model": "H100 SXM", "kind": "computer", "made_in": "TW"}),
                  rules, ON)
    assert "CONFLICT" not in _catalogue_step(d)
    assert d["classification"]["eccn"] == "4A090.a"
    d = determine(_order({"model": "TWINSCAN NXT:2000i", "kind": "sme_part_or_component",
                          "made_in": "NL"}), rules, ON)
    assert "CONFLICT" not in _catalogue_step(d)
    d = determine(_order({"model": "TWINSCAN NXT:2000i", "kind": "sme", "made_in": "KR"},
                         to="MY", sent_from="KR"), rules, ON)
    assert "item.made_in given as 'KR'" in _catalogue_step(d)
    assert "'NL'" in _question(d, "item.made_in")


def test_a_tpp_its_own_tops_and_bit_length_contradict_is_set_aside(rules: RuleSet) -> None:
    chip = {"tops": 600, "bit_length": 8, "die_area_mm2": 800, "datacenter": True}
    # TPP 1000 given, but 600 TOPS at 8 bits make it 4800: this cleared a 3A090.a chip
    d = determine(_order({"kind": "chip", "made_in": "TW", "eccn": "EAR99",
                          "chip": {**chip, "tpp": 1000}}), rules, ON)
    assert d["jurisdictions"]["US"]["outcome"] == "undetermined"
    question = _question(d, "item.chip.tpp")
    assert "1000" in question and "4800" in question
    assert any(s["result"].startswith("CONFLICT") for s in d["classification"]["trace"])
    # the same figures agreeing (4800.0 = 600 x 8) decide it
    d = determine(_order({"kind": "chip", "made_in": "TW", "chip": {**chip, "tpp": 4800.0}}),
                  rules, ON)
    assert d["jurisdictions"]["US"]["outcome"] == "license_required"
    assert not any("CONFLICT" in s["result"] for s in d["classification"]["trace"])
    # a catalogue figure contradicted by the TOPS given with the model is set aside too
    d = determine(_order({"model": "H100 SXM", "made_in": "TW",
                          "chip": {"tops": 100, "bit_length": 8}}), rules, ON)
    assert "15832" in _question(d, "item.chip.tpp")


def test_an_eccn_set_aside_is_not_settled_by_the_chip_figures() -> None:
    # A catalogue entry that states an ECCN (tools do; this test gives one to a chip), and
    # an order that gives another: both are set aside. The chip's figures then show a
    # class, but they are a third account of the item, not a ruling between the two.
    raw = read_rule_tree(DATA_DIR)
    path = "catalogue/chips.yaml"
    text = raw[path].decode()
    anchor = "  description: A100 variant for China with 400 GB/s interconnect\n"
    assert anchor in text
    raw[path] = text.replace(anchor, anchor + (
        "  versions:\n"
        "  - from: '2023-11-17'\n"
        "    eccn: 3A090.a\n"
        "    citation: {ref: a test's own entry, effective: '2023-11-17', "
        "evidence: unverified, source: this test}\n")).encode()
    rules = rules_from_bytes(raw)
    item = {"model": "A800", "made_in": "TW", "eccn": "4A994"}
    d = determine(_order(item), rules, ON)
    assert d["jurisdictions"]["US"]["outcome"] == "undetermined"
    assert d["classification"]["eccn"] is None
    assert any("the specifications show 3A090.a.1, but the ECCN given was set aside"
               in s["result"] for s in d["classification"]["trace"])
    question = _question(d, "item.eccn")
    assert "4A994" in question and "3A090.a" in question and "A800" in question
    # with no ECCN given, the catalogue's ECCN stands and the figures refine it
    d = determine(_order({"model": "A800", "made_in": "TW"}), rules, ON)
    assert d["classification"]["eccn"] == "3A090.a.1"
