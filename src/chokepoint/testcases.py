"""YAML rule test cases: a legal claim, a date, a transaction, the expected answer.

A file holds a list of cases (or ``{cases: [...]}``)::

    - name: 734.9(k) reaches a Korean SME-set tool made by a US-technology plant
      date: 2025-04-07            # optional: as --date
      input: {...transaction...}
      expect:
        outcome: undetermined     # overall (optional)
        classification: {eccn: 3A090.a.1}        # the ECCN the engine settled on
        US:
          outcome: license_required
          subject: true
          basis: [734.9(k)]                      # exactly these routes (prefix match)
          license_requirements: [742.4(a)(4)]    # exactly these (prefix match)
          license_exceptions: [740.8(a)]         # reported as possibly available
          missing_facts: [item.eccn]             # exactly these fields
          missing_facts_include: [item.eccn]     # at least these fields
          missing_facts_exclude: [item.eccn]     # none of these fields
    - name: a transaction without an item is rejected
      input: {...}
      expect_error: "item"

Rule ids match by prefix, as the contract says: ``734.9(k)(1)`` satisfies ``734.9(k)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from chokepoint.contract import InputError, _jsonable, validate_transaction
from chokepoint.engine import determine
from chokepoint.engine.determine import as_of
from chokepoint.rules.loader import strict_yaml
from chokepoint.rules.ruleset import RuleSet

_JURISDICTION_KEYS = {"outcome", "subject", "basis", "license_requirements", "license_exceptions",
                      "missing_facts",
                      "missing_facts_include", "missing_facts_exclude", "review_policy",
                      "applies"}


@dataclass(frozen=True)
class Case:
    source: str
    name: str
    input: dict[str, Any]
    on: date | None
    expect: dict[str, Any]
    expect_error: str | None


def _load_file(path: Path) -> list[Case]:
    try:
        data = strict_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from exc
    if isinstance(data, dict) and "cases" in data:
        data = data["cases"]
    if not isinstance(data, list):
        raise InputError(f"{path}: a test file holds a list of cases")
    cases = []
    for i, raw in enumerate(data):
        where = f"{path}: case {i}"
        if not isinstance(raw, dict) or "name" not in raw or "input" not in raw:
            raise InputError(f"{where}: a case needs 'name' and 'input'")
        unknown = set(raw) - {"name", "date", "input", "expect", "expect_error"}
        if unknown:
            raise InputError(f"{where}: unknown key(s) {sorted(unknown)}")
        expect = raw.get("expect") or {}
        for key, value in expect.items():
            if key == "outcome":
                continue
            if key == "classification":
                if not isinstance(value, dict) or set(value) != {"eccn"}:
                    raise InputError(f"{where}: expect.classification takes only 'eccn'")
                continue
            if not isinstance(value, dict) or set(value) - _JURISDICTION_KEYS:
                raise InputError(f"{where}: expect.{key}: unknown expectation keys")
        on = raw.get("date")
        cases.append(Case(
            source=f"{path}#{i}",
            name=str(raw["name"]),
            input=_jsonable(raw["input"]),
            on=date.fromisoformat(str(on)) if on is not None else None,
            expect=_jsonable(expect),
            expect_error=raw.get("expect_error"),
        ))
    return cases


def collect(paths: list[Path]) -> list[Case]:
    cases: list[Case] = []
    for p in paths:
        files = sorted(p.rglob("*.yaml")) if p.is_dir() else [p]
        for f in files:
            cases.extend(_load_file(f))
    return cases


def _matches(expected: list[str], actual: list[str]) -> list[str]:
    problems = []
    for e in expected:
        if not any(a.startswith(e) for a in actual):
            problems.append(f"expected {e}, got {actual}")
    for a in actual:
        if not any(a.startswith(e) for e in expected):
            problems.append(f"did not expect {a} (expected {expected})")
    return problems


def run_case(case: Case, rules: RuleSet, today: date | None = None) -> list[str]:
    """The ways the determination differs from the case's expectation ([] = pass)."""
    try:
        txn = validate_transaction(case.input, 0, assertions=rules.assertions)
    except InputError as exc:
        if case.expect_error is not None and case.expect_error in str(exc):
            return []
        return [f"input rejected: {exc}"]
    if case.expect_error is not None:
        return [f"expected the input to be rejected ({case.expect_error!r}); it was accepted"]
    d = determine(txn, rules, as_of(txn, case.on, today or date.today()))
    problems: list[str] = []
    if "classification" in case.expect:
        want = case.expect["classification"].get("eccn")
        got = (d.get("classification") or {}).get("eccn")
        if want != got:
            problems.append(f"classification: expected ECCN {want}, got {got}")
    if "outcome" in case.expect and d["outcome"] != case.expect["outcome"]:
        problems.append(f"outcome: expected {case.expect['outcome']}, got {d['outcome']}")
    for code, exp in case.expect.items():
        if code in ("outcome", "classification"):
            continue
        j = d["jurisdictions"].get(code)
        if j is None:
            problems.append(f"{code}: no such jurisdiction in the determination")
            continue
        where = f"{code}."
        if "outcome" in exp and j["outcome"] != exp["outcome"]:
            problems.append(f"{where}outcome: expected {exp['outcome']}, got {j['outcome']} "
                            f"(missing: {[m['field'] for m in j['missing_facts']]})")
        if "subject" in exp and j.get("subject") != exp["subject"]:
            problems.append(f"{where}subject: expected {exp['subject']}, got {j.get('subject')}")
        if "basis" in exp:
            problems += [where + "basis: " + p
                         for p in _matches(exp["basis"], [b["rule"] for b in j["basis"]])]
        if "license_requirements" in exp:
            got = [r["rule"] for r in j["license_requirements"]]
            problems += [where + "license_requirements: " + p
                         for p in _matches(exp["license_requirements"], got)]
        if "license_exceptions" in exp:
            got = [e["rule"] for e in j["license_exceptions"]]
            problems += [where + "license_exceptions: " + p
                         for p in _matches(exp["license_exceptions"], got)]
        fields = [m["field"] for m in j["missing_facts"]]
        if "missing_facts" in exp and sorted(exp["missing_facts"]) != sorted(fields):
            problems.append(f"{where}missing_facts: expected {exp['missing_facts']}, got {fields}")
        for f in exp.get("missing_facts_include", []):
            if f not in fields:
                problems.append(f"{where}missing_facts: expected {f} among {fields}")
        for f in exp.get("missing_facts_exclude", []):
            if f in fields:
                problems.append(f"{where}missing_facts: did not expect {f}")
        if "review_policy" in exp:
            policies = [r.get("review_policy") for r in j["license_requirements"]]
            if exp["review_policy"] not in policies:
                problems.append(f"{where}review_policy: expected {exp['review_policy']}, "
                                f"got {policies}")
    return problems
