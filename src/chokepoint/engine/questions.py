"""Turning the unknown leaves of an evaluation into plain questions (``missing_facts``)."""

from __future__ import annotations

import re
from typing import Any

from chokepoint.engine import set_aside
from chokepoint.engine.facts import MISSING, get
from chokepoint.engine.logic import Unknown

_INDEX = re.compile(r"\[(\d+)\]")


def _pattern(fld: str) -> str:
    return _INDEX.sub("[]", fld)


def _element(root: dict[str, Any], fld: str) -> dict[str, Any]:
    """The innermost list element a field path points into (for ``{name}`` in questions)."""
    found = list(_INDEX.finditer(fld))
    if not found:
        return {}
    scope: Any = root
    for part in re.split(r"\.(?![^\[]*\])", fld[: found[-1].end()]):
        name, _, rest = part.partition("[")
        scope = get(scope, name) if name else scope
        if scope is MISSING:
            return {}
        for idx in re.findall(r"(\d+)\]", "[" + rest if rest else ""):
            if not isinstance(scope, list) or int(idx) >= len(scope):
                return {}
            scope = scope[int(idx)]
    return scope if isinstance(scope, dict) else {}


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def question_for(u: Unknown, templates: dict[str, str], root: dict[str, Any]) -> str:
    if u.question:
        return u.question
    contradicted = set_aside.question_for(root, u.field)
    if contradicted is not None:  # a fact set aside: the question says why
        return contradicted
    pattern = _pattern(u.field)
    template = templates.get(pattern)
    if template is None and u.field.startswith("assertions:"):
        template = templates.get("assertions:" + u.field.split(":", 1)[1])
    if template is None and u.field.startswith("item.national_classifications."):
        template = templates.get("item.national_classifications.<country>")
        if template:
            template = template.replace("<country>", u.field.rsplit(".", 1)[1])
    if template is None:
        return f"What is {u.field}? (not given; it decides this rule)"
    values = _Blank({k: v for k, v in _element(root, u.field).items() if isinstance(v, str)})
    return template.format_map(values)


def missing_facts(unknowns: list[Unknown], templates: dict[str, str],
                  root: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per unknown field, in first-seen order, naming the rules it decides."""
    by_field: dict[str, dict[str, Any]] = {}
    for u in unknowns:
        entry = by_field.get(u.field)
        if entry is None:
            entry = by_field[u.field] = {
                "field": u.field,
                "question": question_for(u, templates, root),
                "rules": [],
            }
        if u.rule and u.rule not in entry["rules"]:
            entry["rules"].append(u.rule)
    return list(by_field.values())
