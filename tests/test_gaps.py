"""The gap report: each gap category is shown by a bundled example, and the summary adds up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chokepoint.contract import read_transactions
from chokepoint.gaps import CATEGORIES, gap_report
from chokepoint.rules.ruleset import RuleSet

ROOT = Path(__file__).resolve().parents[1]
GAPS = sorted((ROOT / "src" / "chokepoint" / "examples" / "gaps").glob("*.yaml"))


def _report(rules: RuleSet) -> dict:  # type: ignore[type-arg]
    txns = [t for f in GAPS for t in read_transactions(f)]
    return gap_report(txns, rules)


def test_each_gap_category_is_demonstrated(rules: RuleSet) -> None:
    report = _report(rules)
    by_id = {e["id"]: {g["category"] for g in e["gaps"]} for e in report["transactions"]}
    assert "unlisted_item" in by_id["gap-01-unlisted-part"]
    assert by_id["gap-02-servicing"] == {"servicing"}
    assert "end_use_end_user" in by_id["gap-03-end-user"]
    assert "third_country_shipment" in by_id["gap-04-third-country"]
    assert by_id["gap-05-fdp-reach"] == {"extraterritorial_reach"}
    assert by_id["gap-06-us-defers"] == {"us_defers_to_ally"}
    assert set().union(*by_id.values()) == set(CATEGORIES)


def test_outcomes_per_regime_and_summary(rules: RuleSet) -> None:
    report = _report(rules)
    entries = {e["id"]: e for e in report["transactions"]}
    assert entries["gap-06-us-defers"]["outcome_by_regime"] == {
        "US": "no_license_required", "JP": "does_not_apply", "NL": "license_required"}
    assert entries["gap-04-third-country"]["caught_by"] == ["US"]
    summary = report["summary"]
    assert summary["transactions"] == len(GAPS)
    assert summary["caught_by"]["US"] == 5 and summary["caught_by"]["NL"] == 1
    assert summary["transactions_with_gap"]["extraterritorial_reach"] == 4


def test_gaps_cli_json_and_text() -> None:
    result = subprocess.run([sys.executable, "-m", "chokepoint", "gaps", *map(str, GAPS),
                             "--format", "json"], capture_output=True, text=True, cwd=ROOT,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["transactions"]) == len(GAPS)
    text = subprocess.run([sys.executable, "-m", "chokepoint", "gaps", str(GAPS[1])],
                          capture_output=True, text=True, cwd=ROOT, check=False).stdout
    assert "gap [servicing] caught by US, not by JP" in text
