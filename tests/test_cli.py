"""The command line per the contract: JSON valid against the schema, exit codes, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from chokepoint.contract import schema

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "src" / "chokepoint" / "examples").glob("*.yaml"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chokepoint", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False)


def test_check_json_on_every_example_is_schema_valid_and_in_input_order() -> None:
    result = run("check", *map(str, EXAMPLES), "--format", "json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [d["id"] for d in out] == [f"example-0{i}" for i in range(1, 7)]
    validator = Draft202012Validator(schema("determination"))
    for d in out:
        errors = list(validator.iter_errors(d))
        assert not errors, errors[0].message
        assert d["rules_version"].startswith("sha256:")


def test_bundled_schemas_are_the_shared_contract() -> None:
    shared = ROOT.parent / "shared" / "contract"
    if not shared.exists():
        pytest.skip("../shared not present")
    for name in ("transaction", "determination"):
        bundled = ROOT / "src" / "chokepoint" / "schemas" / f"{name}.schema.json"
        assert json.loads(bundled.read_text()) == json.loads(
            (shared / f"{name}.schema.json").read_text())


def test_date_option_overrides_every_transaction_date() -> None:
    result = run("check", str(EXAMPLES[2]), "--format", "json", "--date", "2024-12-01")
    (d,) = json.loads(result.stdout)
    assert d["as_of"] == "2024-12-01"
    assert "734.9(k)" not in [b["rule"] for b in d["jurisdictions"]["US"]["basis"]]


def test_text_report_names_outcome_rules_citations_and_questions() -> None:
    result = run("check", str(EXAMPLES[4]), "--format", "text")
    assert result.returncode == 0
    text = result.stdout
    assert "Determination example-05 - as of 2025-09-08" in text
    assert "US: UNDETERMINED" in text
    assert "[item.us_content.controlled_share]" in text
    assert "15 CFR 734.4(d)" in text
    assert "working position" in text


def test_invalid_input_exits_2_naming_transaction_id_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "orders.yaml"
    bad.write_text(
        "- {id: ok-1, to_country: CN, item: {made_in: US}}\n"
        "- {id: po-4711, to_country: CN, item: {made_in: US, chip: {tpp: -5}}}\n")
    result = run("check", str(bad), "--format", "json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "transaction 1 (id 'po-4711')" in result.stderr
    assert "item.chip.tpp" in result.stderr


def test_unknown_field_is_reported_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"to_country": "CN", "item": {"made_in": "US", "colour": "red"}}))
    result = run("check", str(bad))
    assert result.returncode == 2
    assert "transaction 0: item:" in result.stderr and "colour" in result.stderr


def test_an_assertion_no_rule_reads_exits_2_with_the_one_it_resembles(tmp_path: Path) -> None:
    """A misspelt assertion would be read as not made (the rules look ids up exactly):
    the input is refused, suggesting the known assertion it resembles."""
    bad = tmp_path / "t.yaml"
    bad.write_text("{id: po-1, to_country: CN, item: {made_in: US}, "
                   "assertions: [equivalent_review_policy, back-end-only]}\n")
    result = run("check", str(bad))
    assert result.returncode == 2 and result.stdout == ""
    assert ("transaction 0 (id 'po-1'): assertions[1]: 'back-end-only' is not a statement "
            "any rule reads (did you mean 'back_end_only'?)") in result.stderr
    bad.write_text("{id: po-1, to_country: CN, item: {made_in: US}, assertions: [xyzzy]}\n")
    result = run("gaps", str(bad))
    assert result.returncode == 2 and "the rules know advanced_node_ic_is_logic" in result.stderr
    bad.write_text("{id: po-1, to_country: CN, item: {made_in: US}, assertions: [back_end_only]}\n")
    assert run("check", str(bad)).returncode == 0


def test_bad_date_option_exits_2() -> None:
    result = run("check", str(EXAMPLES[0]), "--date", "2024-02-30")
    assert result.returncode == 2 and "--date" in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_chokepoint_test_runs_yaml_cases() -> None:
    result = run("test", "tests/rules")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("0 failed")


def test_chokepoint_test_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    case = tmp_path / "wrong.yaml"
    case.write_text(
        "- name: a US-origin item is (wrongly) claimed not subject\n"
        "  date: 2025-01-10\n"
        "  input: {from_country: US, to_country: CN, item: {made_in: US}}\n"
        "  expect: {US: {outcome: not_subject}}\n")
    result = run("test", str(case))
    assert result.returncode == 1
    assert "0 passed, 1 failed" in result.stdout
    assert "expected not_subject" in result.stderr


def test_classify_by_model_cites_the_catalogue_json() -> None:
    result = run("classify", "--model", "H100", "--date", "2024-06-01", "--format", "json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["eccn"] == "3A090.a.1" and out["tpp"] == 15832
    catalogue = [s for s in out["trace"] if s["rule"] == "catalogue"]
    assert catalogue and "item.chip.tpp = 15832" in catalogue[0]["result"]
    assert "shared/reference" in catalogue[0]["citation"] or "datasheet" in catalogue[0]["citation"]


def test_classify_from_flags_text_and_the_open_question() -> None:
    result = run("classify", "--tops", "375", "--bit-length", "16", "--die-area", "720",
                 "--datacenter", "--date", "2024-09-16")
    assert result.returncode == 0
    assert "ECCN: 3A090.a.1" in result.stdout and "TPP: 6000" in result.stdout
    open_q = run("classify", "--tpp", "2000", "--date", "2024-06-01")
    assert "ECCN: not decided" in open_q.stdout
    assert "[item.chip.die_area_mm2]" in open_q.stdout


def test_classify_uses_the_version_in_force() -> None:
    before = json.loads(run("classify", "--model", "A800", "--date", "2023-11-16",
                            "--format", "json").stdout)
    after = json.loads(run("classify", "--model", "A800", "--date", "2023-11-17",
                           "--format", "json").stdout)
    assert before["eccn"] is None and after["eccn"] == "3A090.a.1"
