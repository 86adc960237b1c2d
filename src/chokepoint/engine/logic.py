"""Three-valued (Kleene) logic: True, False, and None for "unknown".

A fact that is not given makes a test *unknown*, never false. ``all`` is false as soon
as one branch is false, ``any`` true as soon as one is true; otherwise unknown stays
unknown. The unknown leaves that kept a test from deciding are the questions to ask.
"""

from __future__ import annotations

from typing import NamedTuple

TV = bool | None


class Unknown(NamedTuple):
    """An unknown leaf: the fact (or rule datum) whose value would decide a test."""

    field: str
    question: str | None = None
    rule: str = ""


Result = tuple[TV, tuple[Unknown, ...]]

TRUE: Result = (True, ())
FALSE: Result = (False, ())


def negate(r: Result) -> Result:
    value, unknowns = r
    return (None if value is None else not value, unknowns)


def describe(value: TV) -> str:
    return {True: "applies", False: "does not apply", None: "cannot be decided yet"}[value]
