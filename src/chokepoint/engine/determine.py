"""The engine's entry point: transaction + rule set + date -> determination."""

from __future__ import annotations

import copy
import re
from datetime import date
from functools import partial
from typing import Any

from chokepoint import __version__
from chokepoint.engine.catalogue import apply_catalogue
from chokepoint.engine.classify import classify, derive
from chokepoint.engine.evaluate import Context, evaluate
from chokepoint.engine.jurisdiction import evaluate_regime, stale_files
from chokepoint.engine.logic import Unknown
from chokepoint.engine.questions import missing_facts
from chokepoint.rules.model import Regime
from chokepoint.rules.names import normalise_name
from chokepoint.rules.ruleset import RuleSet, Snapshot

OUTCOME_ORDER = ("license_required", "undetermined", "no_license_required", "not_subject")
"""Strictest first: the overall outcome is the strictest over all jurisdictions."""

_COUNTRY_FIELDS = ("to_country", "from_country")
_TRAILING_NOTE = re.compile(r"\s*\([^)]*\)\s*$")
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


def apply_aliases(txn: dict[str, Any], snap: Snapshot, regime: str
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Replace destinations the regime treats as another (e.g. HK as CN) and say so."""
    table = snap.aliases.get(regime, {})
    if not table or not _mentions(txn, set(table)):
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


def _entry_step(rule: str, i: int, entry: Any, version: Any, question: str, found: str
                ) -> dict[str, Any]:
    """The trace step of a party found in the snapshot by its exact name."""
    return {"rule": rule, "role": "definition", "citation": version.citation.short(),
            "question": question,
            "result": f"parties[{i}] matches the entry '{entry.name}' by exact name {found}",
            "evidence": version.citation.evidence}


def resolve_parties(txn: dict[str, Any], snap: Snapshot, regime: str
                     ) -> tuple[dict[str, Any], dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """Look parties up in the curated Entity List snapshot by exact normalised name.

    A party found gets the entry's designation when its designations are unknown (null)
    or do not name the Entity List: a party the rule data lists under its exact name is
    never cleared by an input saying it is not listed (an export filling a default
    ``none``). Nor by one giving it fewer footnotes than the entry carries (a screening
    list that does not show them, an older list): the entry's footnotes are added to
    those given. One not found keeps what it was given (null: unknown - the engine then
    asks). Every party found brings its entry's review policy.
    """
    parties = txn.get("parties")
    if not parties:
        return txn, {}, []
    index = snap.entity_index(regime)
    if not index:
        return txn, {}, []
    out = {**txn, "parties": [dict(p) for p in parties]}
    entries: dict[int, dict[str, Any]] = {}
    steps: list[dict[str, Any]] = []
    for i, party in enumerate(out["parties"]):
        name = party.get("name", "")
        hit = index.get(normalise_name(name)) or index.get(
            normalise_name(_TRAILING_NOTE.sub("", name)))
        if hit is None and party.get("screened_entry_id"):
            # a fuzzy screening hit on a snapshot entry (set by the screening adapter)
            hit = next((v for v in index.values() if v[0].id == party["screened_entry_id"]),
                       None)
        if hit is None:
            continue
        entry, version = hit
        entries[i] = {"entry_id": entry.id, "name": entry.name,
                      "review_policy": version.review_policy,
                      "review_policy_text": version.review_policy_text,
                      "footnotes": version.footnotes,
                      "citation": version.citation.short()}
        party["entity_list_entry"] = {"id": entry.id, "rff": version.rff}
        step = partial(_entry_step, snap.rules.entity_rule[regime], i, entry, version)
        given = party.get("designations")
        listed = [d for d in given or ()
                  if isinstance(d, dict) and d.get("list") == "entity_list"]
        # (footnotes not given, or fewer than the entry carries)
        short = [d for d in listed if d.get("footnotes") is None
                 or not set(version.footnotes) <= set(d["footnotes"])]
        if short:
            party["designations"] = [
                {**d, "footnotes": sorted({*(d.get("footnotes") or ()), *version.footnotes})}
                if d in short else d for d in given or ()]
            gave = ", ".join("none" if d.get("footnotes") is None else str(d["footnotes"])
                             for d in short)
            steps.append(step(
                f"Which footnotes does {party.get('name')}'s Entity List entry carry?",
                f"(footnotes {list(version.footnotes)}); the input gave {gave}: the entry's "
                "footnotes are added (a party is not cleared by fewer footnotes than its "
                "entry carries)"))
        elif not listed:
            party["designations"] = [*(given or ()), {"list": "entity_list",
                                                      "footnotes": list(version.footnotes)}]
            said = ("" if given is None else
                    f"; the input gave {'no designation' if not given else 'other lists only'}"
                    ", but a party the Entity List names is not cleared")
            steps.append(step(f"Is {party.get('name')} on the Entity List?",
                              f"(footnotes {version.footnotes or 'none'}): designation "
                              f"set{said}"))
    return out, entries, steps


def _mentions(txn: dict[str, Any], codes: set[str]) -> bool:
    """Does any country field of the transaction hold one of the codes?"""
    if any(txn.get(k) in codes for k in _COUNTRY_FIELDS):
        return True
    exporter = txn.get("exporter")
    if isinstance(exporter, dict) and any(exporter.get(k) in codes
                                          for k in ("country", "headquartered_in")):
        return True
    return any(p.get(k) in codes for p in txn.get("parties") or []
               for k in _PARTY_COUNTRY_FIELDS)


def regime_applies(regime: Regime, snap: Snapshot, facts: dict[str, Any],
                    assertions: frozenset[str]) -> tuple[bool | None, list[dict[str, Any]],
                                                         list[Unknown]]:
    """Does the regime reach the transaction at all (e.g. the Dutch rules: shipped from NL)?"""
    version = regime.version_on(snap.on)
    if version is None or version.applies is None:
        return True, [], []
    ctx = Context(snap=snap, root=facts, assertions=assertions, rule=regime.code)
    value, unknowns = evaluate(version.applies, ctx)
    step = {"rule": regime.code, "role": "regime", "citation": version.citation.short(),
            "question": f"Does the {regime.title} reach this transaction?",
            "result": {True: "yes", False: "no",
                       None: "cannot be decided yet"}[value],
            "facts": ctx.reads.facts}
    return value, [step], list(unknowns)


def settle_applies(answer: dict[str, Any], applies: bool | None, apply_unknowns: list[Unknown],
                   rules: RuleSet, facts: dict[str, Any]) -> dict[str, Any]:
    """A regime's answer when it is not known whether the regime reaches the transaction:
    undetermined, asking that first."""
    if applies is not None:
        return answer
    return {**answer, "outcome": "undetermined", "subject": None,
            "missing_facts": missing_facts(apply_unknowns, rules.questions, facts)
            + answer["missing_facts"]}


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
    classification: dict[str, Any] | None = None
    # Regime-independent facts first: the catalogue and the derived figures (TPP, PD).
    shared, catalogue_steps = apply_catalogue(txn, snap)
    shared, derive_steps = derive(shared, snap)
    derive_steps = catalogue_steps + derive_steps
    for code in sorted(rules.regimes):
        regime = rules.regimes[code]
        applies, apply_step, apply_unknowns = regime_applies(regime, snap, shared, assertions)
        if applies is False:
            continue  # the regime does not reach this transaction: no entry
        facts, alias_steps = apply_aliases(shared, snap, code)
        facts, entries, list_steps = resolve_parties(facts, snap, code)
        facts, cls, eccn_questions = classify(facts, snap, code, assertions)
        if cls is not None and classification is None:
            classification = {**cls, "trace": derive_steps + cls["trace"]}
        pre = (stale_files(snap, code, on) + apply_step + alias_steps + list_steps
               + derive_steps)
        answer = evaluate_regime(regime, snap, facts, assertions, pre, entries, eccn_questions)
        jurisdictions[code] = settle_applies(answer, applies, apply_unknowns, rules, facts)
    outcome = strictest([j["outcome"] for j in jurisdictions.values()])
    return {
        "id": txn.get("id"),
        "as_of": on.isoformat(),
        "rules_version": rules.content_hash,
        "engine_version": __version__,
        "outcome": outcome,
        "classification": classification,
        "jurisdictions": jurisdictions,
        "receipt": {
            "engine_version": __version__,
            "rules_version": rules.content_hash,
            "as_of": on.isoformat(),
            "scenario": list(rules.scenario),
            "assertions_relied_on": sorted(assertions),
        },
    }
