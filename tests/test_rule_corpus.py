"""Whole-corpus health: every rule file loads, every dated value is cited, broken files fail."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from chokepoint.rules.loader import DATA_DIR, RuleLoadError, load_rules, parse_rule_file, read_yaml
from chokepoint.rules.ruleset import RuleSet

FIXTURES = Path(__file__).parent / "fixtures"
RULE_FILES = sorted(DATA_DIR.rglob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} lacks its '# expect:' line"
    return first.removeprefix("# expect: ")


def _dated_values(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every mapping inside a 'versions' list, wherever it sits in the file."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "versions" and isinstance(value, list):
                found += [(f"{where}.versions[{i}]", v) for i, v in enumerate(value)]
            found += _dated_values(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _dated_values(value, f"{where}[{i}]")
    return found


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(DATA_DIR)))
def test_every_dated_value_is_cited(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    if data["kind"] == "questions":  # wording for users, not regulation values
        return
    if data["kind"] == "catalogue":
        for i, entry in enumerate(data["entries"]):
            if entry.get("chip") or entry.get("parameters"):
                c = entry.get("figures_citation")
                assert isinstance(c, dict) and c.get("ref") and c.get("evidence"), (
                    f"{path}: entries[{i}] ({entry['model']}) has uncited figures")
                assert c.get("fr") or c.get("source"), f"{path}: entries[{i}] names no source"
            assert entry.get("chip") or entry.get("parameters") or entry.get("versions"), (
                f"{path}: entries[{i}] says nothing")
    dated = _dated_values(data)
    assert dated or data["kind"] == "catalogue", f"{path}: no dated values"
    for where, version in dated:
        c = version.get("citation")
        assert isinstance(c, dict), f"{path}{where}: no citation"
        assert c.get("ref") and c.get("effective") and c.get("evidence"), f"{path}{where}"
        assert c.get("fr") or c.get("source"), f"{path}{where}: citation names no source"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(DATA_DIR)))
def test_every_list_carries_a_review_stamp(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert data.get("last_reviewed") and data.get("review_horizon_days"), path


def test_layout_mirrors_the_regulation(rules: RuleSet) -> None:
    """A provision for § 734.9(k) lives at us/ear/734/9/k.yaml, and so on."""
    for pid, prov in rules.provisions.items():
        path = rules.path_of("provision", pid)
        assert path.startswith(f"{prov.regime.lower()}/"), path
        if ":" in pid.split("(")[0]:  # NL:/JP: references name their own instruments
            assert pid.startswith(f"{prov.regime}:"), pid
            continue
        section = pid.split("(")[0]
        assert "/" + section.replace(".", "/") + "/" in "/" + path.replace(".yaml", "/"), (
            f"{pid} is stored at {path}")


def test_the_bundled_tree_loads_and_has_a_content_hash(rules: RuleSet) -> None:
    assert rules.content_hash.startswith("sha256:")
    assert {"734.9(k)", "734.9(e)(3)", "734.4(a)(8)", "734.3(a)(2)"} <= set(rules.provisions)
    assert {"D:1", "D:4", "D:5", "E:1", "E:2", "A:1", "A:5", "A:6", "Supp4:742"} <= set(
        rules.groups)


@pytest.mark.parametrize("path", sorted((FIXTURES / "broken_rules").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_broken_rule_file_fails_with_a_clear_message(path: Path) -> None:
    expected = _expected(path)
    with pytest.raises(RuleLoadError) as err:
        parse_rule_file(read_yaml(path.read_text(), path.name), path.name)
    message = str(err.value)
    assert path.name in message
    assert expected in message, message


@pytest.mark.parametrize("path", sorted((FIXTURES / "broken_trees").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_inconsistent_rule_tree_fails_naming_file_and_key(path: Path, tmp_path: Path) -> None:
    tree = tmp_path / "rules"
    shutil.copytree(DATA_DIR, tree)
    (tree / "us" / "broken.yaml").write_text(path.read_text())
    with pytest.raises(RuleLoadError) as err:
        load_rules(tree)
    assert _expected(path) in str(err.value), str(err.value)


def test_content_hash_changes_with_any_rule_byte(tmp_path: Path, rules: RuleSet) -> None:
    tree = tmp_path / "rules"
    shutil.copytree(DATA_DIR, tree)
    assert load_rules(tree).content_hash == rules.content_hash
    f = tree / "us" / "ear" / "734" / "4" / "d" / "threshold.yaml"
    f.write_text(f.read_text() + "\n# reviewed again\n")
    assert load_rules(tree).content_hash != rules.content_hash
