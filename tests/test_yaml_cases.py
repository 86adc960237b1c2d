"""Every YAML rule test case under tests/rules runs as a pytest test."""

from __future__ import annotations

from pathlib import Path

import pytest

from chokepoint.rules.ruleset import RuleSet
from chokepoint.testcases import collect, run_case

CASES = collect([Path(__file__).parent / "rules"])


def test_there_are_cases_for_every_fdp_rule_and_de_minimis_path() -> None:
    names = " ".join(c.name for c in CASES)
    for rule in ("734.3(a)(1)", "734.3(a)(2)", "734.4(c)", "734.4(d)", "734.4(a)(3)",
                 "734.4(a)(8)", "734.4(a)(9)", "734.9(b)", "734.9(e)(1)", "734.9(e)(2)",
                 "734.9(e)(3)", "734.9(h)", "734.9(i)", "734.9(k)"):
        assert rule in names, f"no YAML test case names {rule}"


@pytest.mark.parametrize("case", CASES, ids=[c.source.split("tests/")[-1] for c in CASES])
def test_case(case, rules: RuleSet) -> None:  # type: ignore[no-untyped-def]
    problems = run_case(case, rules)
    assert not problems, f"{case.name}:\n  " + "\n  ".join(problems)
