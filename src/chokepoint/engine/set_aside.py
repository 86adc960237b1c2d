"""Facts set aside because another source contradicts them.

A fact the user gave that the catalogue contradicts for the named model (catalogue.py), or
that the figures it is computed from contradict (classify.derive), is set aside: it becomes
unknown, and the question asked when a rule turns on it names both values. Those questions
travel with the facts, by field path, under :data:`SET_ASIDE`.
"""

from __future__ import annotations

from typing import Any

SET_ASIDE = "set_aside_facts"
"""The key of the facts under which each set-aside field's question is kept."""


def with_questions(facts: dict[str, Any], questions: dict[str, str]) -> dict[str, Any]:
    """The facts, with these fields' questions added to those already set aside."""
    if not questions:
        return facts
    return {**facts, SET_ASIDE: {**(facts.get(SET_ASIDE) or {}), **questions}}


def question_for(facts: dict[str, Any], field: str) -> str | None:
    """The question for a field that was set aside, None for any other."""
    found = (facts.get(SET_ASIDE) or {}).get(field)
    return None if found is None else str(found)


def fields_among(facts: dict[str, Any], fields: list[str]) -> list[str]:
    """Those of ``fields`` that were set aside, in their order."""
    kept = facts.get(SET_ASIDE) or {}
    return [f for f in fields if f in kept]
