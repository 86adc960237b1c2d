"""Rule-change impact on the December 2024 amendment."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from chokepoint.contract import read_transactions
from chokepoint.diff import order_impact, rule_changes
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


def test_diff_cli(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from", "2024-12-01",
                          "--to", "2024-12-02", str(BOOK), "--format", "json"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["changed_rows"][0]["id"] == "kr-epi"
    bad = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from", "2025-01-02",
                          "--to", "2025-01-01"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
