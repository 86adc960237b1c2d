"""Three-valued results combined as the engine combines them (``all``, ``any``, a
provision's exclusions, a regime's outcome), reduced to what a flat batch row shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chokepoint.engine.jurisdiction import (
    both,
    either,
    outcome_of,
)
from chokepoint.engine.logic import Result, Unknown, negate

FALSE: Result = (False, ())
TRUE: Result = (True, ())


def all_of(results: list[Result]) -> Result:
    """``all`` as the engine evaluates it: false if a child is false, otherwise open on the
    undecided children's fields in order (De Morgan over the engine's own ``any``)."""
    return flat(negate(either([negate(r) for r in results])))


def any_of(results: list[Result]) -> Result:
    """``any`` as the engine evaluates it (engine.jurisdiction.either)."""
    return flat(either(results))


def effective_of(results: list[Result]) -> Result:
    """A provision's base result after its exclusions (RegimeEvaluation.effective)."""
    result = results[0]
    if result[0] is False:
        return result
    for ex_value, ex_unknowns in results[1:]:
        if ex_value is True:
            return FALSE
        if ex_value is None:
            result = both(result, negate((None, ex_unknowns)))
    return flat(result)


def summary_of(provs: list[Any]) -> Callable[[list[Result]], Any]:
    def step(results: list[Result]) -> Any:
        applying = tuple(p.id for p, r in zip(provs, results, strict=True) if r[0] is True)
        return (flat(either(results)), applying)
    return step


def core_of(summaries: list[Any]) -> Any:
    """The routes', dependent and independent requirements' summaries, keeping only what
    the outcome shows: which apply, and the fields the outcome turns on - given to every
    undecided part, as the answer lists each field once in first-seen order."""
    (subject, _), (dependent, _), (independent, _) = summaries
    _, unknowns = outcome_of(subject, dependent, independent)
    fields = flat((None, unknowns))[1]
    return tuple(((value, fields if value is None else ()), applying)
                 for (value, _), applying in summaries)


def decided_of(parts: list[Any]) -> Any:
    """A core without its open fields: what decides the outcome, rules and review policy."""
    return tuple(((value, ()), applying) for (value, _), applying in parts[0])


def regime_answer(requirements: list[str], parts: list[Any]) -> Any:
    """Outcome and rules, the missing fields, and the review policies of the requirements
    that apply, as one regime's flat cells (batch.run.regime_cells); and whether one of
    those requirements has no review policy, which the flat cell cannot show (the
    rule-change impact compares it: batch/impact.py)."""
    cells, fields, *policies = parts
    if cells is None:
        return None
    by_rule = dict(zip(requirements, policies, strict=True))
    shown = dict.fromkeys(by_rule[r] for r in cells[4] if by_rule.get(r))
    unpolicied = any(not by_rule.get(r) for r in cells[4])
    return [cells[0], cells[1], ";".join(shown), fields[3], unpolicied]


def standing_in(provs: list[Any], summary: Any) -> dict[str, Result]:
    """Effects for a role's provisions that a regime's answer cannot tell from the real ones:
    the same ones apply, and the same fields are open when none does."""
    either, applying = summary
    out: dict[str, Result] = {}
    carried = False
    for p in provs:
        if p.id in applying:
            out[p.id] = TRUE
        elif either[0] is None and not carried:
            out[p.id], carried = either, True
        else:
            out[p.id] = FALSE
    return out


def flat(result: Result) -> Result:
    """A provision's effect reduced to what a flat answer shows: the truth value and the
    fields it turns on, each once in first-seen order. (The questions' wording and the
    rules each field decides are in the full determination, not in a batch row; every way
    the engine combines effects - and, or, not, exclusions, the outcome, the ECCN
    expansion, the missing-facts list - keeps the first-seen order of the fields.)"""
    value, unknowns = result
    if not unknowns:
        return result
    return (value, tuple(Unknown(f) for f in dict.fromkeys(u.field for u in unknowns)))
