"""The engine's entry point: transaction + rule set + date -> determination."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from chokepoint import __version__
from chokepoint.engine.jurisdiction import evaluate_regime, stale_files
from chokepoint.rules.ruleset import RuleSet, Snapshot

OUTCOME_ORDER = ("license_required", "undetermined", "no_license_required", "not_subject")
"""Strictest first: the overall outcome is the strictest over all jurisdictions."""

_COUNTRY_FIELDS = ("to_country", "from_country")
_PARTY_COUNTRY_FIELDS = ("country", "headquartered_in")


def as_of(txn: dict[str, Any], override: date | None, today: date) -> date:
    """The date whose rules apply: ``--date``, else the transaction's date, else today."""
    if override is not None:
        return override
    given = txn.get("date")
    if given:
        return date.fromisoformat(str(given))
    return today


def strictest(outcomes: list[str]) -> str:
    for o in OUTCOME_ORDER:
        if o in outcomes:
            return o
    return "not_subject"


def _apply_aliases(txn: dict[str, Any], snap: Snapshot, regime: str
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Replace destinations the regime treats as another (e.g. HK as CN) and say so."""
    table = snap.aliases.get(regime, {})
    if not table:
        return txn, []
    out = copy.deepcopy(txn)
    steps: list[dict[str, Any]] = []

    def swap(holder: dict[str, Any], key: str, where: str) -> None:
        code = holder.get(key)
        if isinstance(code, str) and code in table:
            target, citation = table[code]
            holder[key] = target
            steps.append({
                "rule": citation.ref.removeprefix("15 CFR ").strip(),
                "role": "definition",
                "citation": citation.short(),
                "question": f"How does the regime treat {code}?",
                "result": f"{where} {code} is treated as {target}",
                "evidence": citation.evidence,
            })

    for key in _COUNTRY_FIELDS:
        swap(out, key, key)
    exporter = out.get("exporter")
    if isinstance(exporter, dict):
        for key in ("country", "headquartered_in"):
            swap(exporter, key, f"exporter.{key}")
    for i, party in enumerate(out.get("parties") or []):
        for key in _PARTY_COUNTRY_FIELDS:
            swap(party, key, f"parties[{i}].{key}")
    return out, steps


def determine(txn: dict[str, Any], rules: RuleSet, on: date) -> dict[str, Any]:
    """The determination for one (schema-valid) transaction under the rules in force ``on``.

    Pure: reads nothing but its arguments. Every jurisdiction whose regime file is in
    ``rules`` is answered; the overall outcome is the strictest of them.
    """
    snap = rules.at(on)
    if not txn.get("activity"):
        txn = {**txn, "activity": "export"}  # the contract's declared default
    assertions = frozenset(txn.get("assertions") or ())
    jurisdictions: dict[str, Any] = {}
    for code in sorted(rules.regimes):
        regime = rules.regimes[code]
        facts, alias_steps = _apply_aliases(txn, snap, code)
        pre = stale_files(snap, code, on) + alias_steps
        jurisdictions[code] = evaluate_regime(regime, snap, facts, assertions, pre)
    outcome = strictest([j["outcome"] for j in jurisdictions.values()])
    return {
        "id": txn.get("id"),
        "as_of": on.isoformat(),
        "rules_version": rules.content_hash,
        "engine_version": __version__,
        "outcome": outcome,
        "classification": None,
        "jurisdictions": jurisdictions,
        "receipt": {
            "engine_version": __version__,
            "rules_version": rules.content_hash,
            "as_of": on.isoformat(),
            "scenario": list(rules.scenario),
            "assertions_relied_on": sorted(assertions),
        },
    }
