"""Licence review policies: fixed, conditional (tried in order), or per Entity List entry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chokepoint.engine.evaluate import Reads, evaluate
from chokepoint.engine.questions import question_for
from chokepoint.rules.model import PER_ENTRY, ProvisionVersion

if TYPE_CHECKING:
    from chokepoint.engine.jurisdiction import RegimeEvaluation

STRICTNESS = ("presumption_of_denial", "case_by_case", "presumption_of_approval")
"""Strictest first, for a requirement that reaches several listed parties."""


def _per_entry(ev: RegimeEvaluation) -> dict[str, Any]:
    listed = []
    for i, party in enumerate(ev.txn.get("parties") or []):
        for d in party.get("designations") or []:
            if isinstance(d, dict) and d.get("list") == "entity_list":
                listed.append((i, party))
                break
    policies: list[dict[str, Any]] = []
    unmatched: list[str] = []
    for i, party in listed:
        entry = ev.entries.get(i)
        if entry is None:
            unmatched.append(party.get("name", f"party {i}"))
        else:
            policies.append(entry)
    if unmatched:
        return {"review_policy": None,
                "review_policy_note": "as stated in the Entity List entry of "
                + ", ".join(unmatched) + " (not in chokepoint's curated snapshot)"}
    if not policies:
        return {"review_policy": None}
    ranked = sorted(policies, key=lambda e: STRICTNESS.index(e["review_policy"])
                    if e["review_policy"] in STRICTNESS else len(STRICTNESS))
    top = ranked[0]
    return {"review_policy": top["review_policy"],
            "review_policy_note": "; ".join(f"{e['name']}: {e['review_policy_text']} "
                                            f"[{e['citation']}]" for e in ranked)}


def review_policy(version: ProvisionVersion, ev: RegimeEvaluation) -> dict[str, Any]:
    """The review policy of a licence requirement that applies, and why."""
    candidates: list[str] = []
    questions: list[dict[str, str]] = []
    for cp in version.review_policies:
        outer = (ev.ctx.rule, ev.ctx.reads)
        ev.ctx.reads = Reads()
        try:
            value, unknowns = evaluate(cp.when, ev.ctx)
        finally:
            ev.ctx.rule, ev.ctx.reads = outer
        if value is True and not candidates:
            return {"review_policy": cp.policy, "review_policy_note": cp.why}
        if value is not False:
            candidates.append(cp.policy)
            questions += [{"field": u.field,
                           "question": question_for(u, ev.snap.rules.questions, ev.txn)}
                          for u in unknowns]
            if value is True:
                break
    if version.review_policy == PER_ENTRY:
        default = _per_entry(ev)
    else:
        default = {"review_policy": version.review_policy}
    if candidates:
        options = list(dict.fromkeys([*candidates, default.get("review_policy") or "other"]))
        return {"review_policy": None,
                "review_policy_open": {"candidates": options, "questions": questions}}
    return default
