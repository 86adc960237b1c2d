"""The fast validator (jsonschema-rs) and the reference one (jsonschema) agree on every input.

validate_transaction accepts what jsonschema-rs accepts without asking jsonschema, so a
transaction the reference would reject must never pass the fast one. Random mutations of the
bundled examples (wrong types, unknown keys, removed keys, bad enum values and dates) check it.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chokepoint import contract
from chokepoint.contract import (
    InputError,
    _fast_validator,
    _validator,
    read_transactions,
    validate_transaction,
)

EXAMPLES = [t for f in sorted((Path(__file__).parents[1] / "src" / "chokepoint" / "examples")
                              .glob("*.yaml")) for t in read_transactions(f)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["CN", "export", "3A090.a", "2024-02-30",
                                              "2024-12-02", "entity_list", "chip", ""]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.sampled_from(["list", "footnotes", "name", "role", "country", "x"]), kids,
        max_size=3),
    max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    txn = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(txn)
        path = draw(st.sampled_from(paths))
        parent = txn
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if action == "set":
            parent[path[-1]] = draw(json_values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["unknown_key", "id", "date", "activity"]))] = draw(
                json_values)
    return txn


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_fast_and_reference_validators_agree(txn: Any) -> None:
    reference_ok = not any(True for _ in _validator("transaction").iter_errors(txn))
    assert _fast_validator("transaction").is_valid(txn) == reference_ok, txn


def test_examples_are_valid_for_both() -> None:
    for txn in EXAMPLES:
        assert _fast_validator("transaction").is_valid(txn)
        assert not list(_validator("transaction").iter_errors(txn))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", [("item", "chip", "tops"),
                                   ("item", "us_content", "controlled_share")])
def test_a_number_that_is_not_finite_is_refused_by_its_path(value: float,
                                                            where: tuple[str, ...]) -> None:
    """NaN passes every minimum and maximum of the schema (and YAML's .nan/.inf and
    Python's JSON reader let it in): it is refused, naming the field, before any rule can
    compare it."""
    txn = copy.deepcopy(EXAMPLES[0])
    node = txn
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = value
    with pytest.raises(InputError, match=re.escape(".".join(where)) + ": not a finite number"):
        validate_transaction(txn, 0)


def test_non_finite_numbers_in_yaml_and_json_files_are_refused(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "src" / "chokepoint" / "examples"
            / "01-us-origin-3a090a-chip-to-china.yaml").read_text()
    data = yaml.safe_load(text)
    data["item"]["chip"] = {**data["item"].get("chip", {}), "tops": math.inf}
    data = contract._jsonable(data)
    as_yaml = tmp_path / "t.yaml"
    as_yaml.write_text(yaml.safe_dump(data))  # (written as .inf)
    as_json = tmp_path / "t.json"
    data["item"]["chip"]["tops"] = math.nan
    as_json.write_text(json.dumps(data))  # (written as NaN)
    for path, shown in ((as_yaml, "inf"), (as_json, "nan")):
        with pytest.raises(InputError, match=f"item.chip.tops: not a finite number \\({shown}\\)"):
            read_transactions(path)


def test_a_key_given_twice_is_refused_not_read_as_the_last(tmp_path: Path) -> None:
    """YAML and Python's JSON reader keep the last of two equal keys without a word; a
    transaction naming to_country twice is ambiguous and is refused, naming the key."""
    as_yaml = tmp_path / "t.yaml"
    as_yaml.write_text("id: dup\nto_country: CN\nitem: {made_in: US}\nto_country: NL\n")
    with pytest.raises(InputError, match="duplicate key 'to_country'"):
        read_transactions(as_yaml)
    as_json = tmp_path / "t.json"
    as_json.write_text('{"id": "dup", "to_country": "CN", "item": {"made_in": "US", '
                       '"made_in": "KR"}}')
    with pytest.raises(InputError, match="not valid JSON: duplicate key 'made_in'$"):
        read_transactions(as_json)
    # anchors and merge keys still work, and a merged key may be overridden
    as_yaml.write_text("- &a {id: one, to_country: CN, item: {made_in: US}}\n"
                       "- {<<: *a, id: two}\n")
    assert [t["id"] for t in read_transactions(as_yaml)] == ["one", "two"]
