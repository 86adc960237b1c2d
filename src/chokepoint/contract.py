"""The transaction/determination contract: bundled JSON Schemas and input validation.

Errors name the transaction (index and id) and the field path, so a user can find the
offending value in a file of many transactions.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Collection
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker

from chokepoint.rules.loader import strict_yaml


class InputError(ValueError):
    """Invalid input: the message names the transaction and the field path."""


@cache
def schema(name: str) -> dict[str, Any]:
    text = resources.files("chokepoint.schemas").joinpath(f"{name}.schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schema(name), format_checker=FormatChecker())


@cache
def _fast_validator(name: str) -> Any:
    """The same schema compiled by jsonschema-rs (about 100x faster), used to accept valid
    input quickly; anything it rejects is re-checked by ``jsonschema`` for the error message
    that names the field. tests/test_contract_validators.py checks that both agree."""
    import jsonschema_rs

    return jsonschema_rs.validator_for(schema(name), validate_formats=True)


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out or "(the transaction itself)"


def _non_finite(obj: Any, where: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], float] | None:
    """The path and value of the first NaN or infinite number in ``obj`` (which YAML's
    ``.nan``/``.inf``, Python's JSON reader and float cells let in), or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where, obj)
    items = (obj.items() if isinstance(obj, dict)
             else enumerate(obj) if isinstance(obj, list) else ())
    for key, value in items:
        found = _non_finite(value, (*where, key))
        if found is not None:
            return found
    return None


def validate_transaction(txn: Any, index: int, label: str | None = None,
                         assertions: Collection[str] | None = None) -> dict[str, Any]:
    """Check one transaction against the contract; raise :class:`InputError` if invalid.
    Errors name it as ``label`` (default: "transaction INDEX", counted from 0) and its id.
    ``assertions``: the statements the rules read (``RuleSet.assertions``); an assertion
    not among them is refused, since the rules would read it as not made."""
    label = label or f"transaction {index}"
    if isinstance(txn, dict) and isinstance(txn.get("id"), str):
        label += f" (id {txn['id']!r})"
    if not isinstance(txn, dict):
        raise InputError(f"{label}: expected a mapping of facts, got {type(txn).__name__}")
    bad = _non_finite(txn)
    if bad is not None:  # (JSON Schema cannot say it: NaN passes every minimum and maximum)
        where, value = bad
        raise InputError(f"{label}: {_path(where)}: not a finite number ({value!r})")
    errors = [] if _fast_validator("transaction").is_valid(txn) else sorted(
        _validator("transaction").iter_errors(txn), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise InputError(f"{label}: {_path(e.absolute_path)}: {e.message}{more}")
    if "date" in txn:
        try:
            date.fromisoformat(str(txn["date"]))
        except ValueError as exc:
            raise InputError(f"{label}: date: not a date (YYYY-MM-DD): {txn['date']!r}") from exc
    if assertions is not None:
        for i, said in enumerate(txn.get("assertions") or ()):
            if said not in assertions:
                why = _unknown_assertion(said, assertions)
                raise InputError(f"{label}: assertions[{i}]: {why}")
    return txn


def _unknown_assertion(said: str, assertions: Collection[str]) -> str:
    """Why an assertion is refused, with the known one it most resembles."""
    close = difflib.get_close_matches(said, sorted(assertions), n=1, cutoff=0.6)
    hint = (f"did you mean {close[0]!r}?" if close else
            f"the rules know {', '.join(sorted(assertions))}")
    return f"{said!r} is not a statement any rule reads ({hint})"


class DuplicateKeyError(json.JSONDecodeError):
    """A JSON object naming a key twice (no position: the reader's hook does not know it)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}", "", 0)

    def __str__(self) -> str:
        return self.msg


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def loads_json(text: str | bytes) -> Any:
    """JSON as data, refusing an object that names a key twice (json.JSONDecodeError, whose
    ``msg`` says which): Python's reader would keep the last value without a word."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def _jsonable(obj: Any) -> Any:
    """YAML turns unquoted dates into date objects; the contract wants ISO strings."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, date):
        return obj.isoformat()
    return obj


def read_transactions(path: Path, assertions: Collection[str] | None = None
                      ) -> list[dict[str, Any]]:
    """One transaction or a list of them from a YAML or JSON file, validated (with the
    rules' ``assertions``, as :func:`validate_transaction` takes them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = loads_json(text) if path.suffix.lower() == ".json" else strict_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                         f"{exc}") from exc
    items = data if isinstance(data, list) else [data]
    out = []
    for i, txn in enumerate(items):
        try:
            out.append(validate_transaction(_jsonable(txn), i, assertions=assertions))
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
    return out
