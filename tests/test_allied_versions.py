"""The allied measures whose item lists are not encoded item by item still change the
version in force - and its citation in every trace - on their effective dates."""

from __future__ import annotations

from datetime import date

import pytest

from chokepoint.engine import determine
from chokepoint.rules.ruleset import RuleSet

CASES = [("NL", "NL:list", date(2023, 9, 1), "Regeling geavanceerde productieapparatuur"),
         ("NL", "NL:list", date(2024, 9, 7), "NXT:1970i and NXT:1980i"),
         ("NL", "NL:list", date(2025, 4, 1), "measurement and inspection equipment"),
         ("JP", "JP:list", date(2023, 7, 23), "METI ordinance"),
         ("JP", "JP:list", date(2024, 7, 1), "2024 additions")]


@pytest.mark.parametrize(("regime", "rule", "day", "cited"), CASES)
def test_measure_in_force_from_its_date(regime: str, rule: str, day: date, cited: str,
                                        rules: RuleSet) -> None:
    txn = {"from_country": regime, "to_country": "CN",
           "item": {"eccn": "3B993.q.2", "made_in": regime,
                    "national_classifications": {regime: "listed (as the user states)"}}}

    def citation(on: date) -> str:
        steps = determine(txn, rules, on)["jurisdictions"][regime]["trace"]
        return next(s["citation"] for s in steps if s["rule"] == rule)

    assert cited in citation(day)
    assert cited not in citation(date.fromordinal(day.toordinal() - 1))
