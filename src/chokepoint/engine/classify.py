"""Deriving facts (TPP, performance density) and classifying an item from its specifications.

Formulas and thresholds are rule data (``derivation`` files and ``classification``
provisions); this module only applies them. A given ``item.eccn`` is respected but checked:
when the specifications contradict it, the ECCN becomes unknown and the contradiction is
asked about - never silently resolved either way.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from chokepoint.engine import eccn as eccn_mod
from chokepoint.engine.evaluate import Context, Reads, evaluate
from chokepoint.engine.facts import MISSING, get
from chokepoint.engine.logic import Unknown
from chokepoint.rules.ruleset import Snapshot


def _set(root: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``root`` with ``path`` set, copying only the dicts along the path."""
    parts = path.split(".")
    out = dict(root)
    node = out
    for p in parts[:-1]:
        child = node.get(p)
        node[p] = dict(child) if isinstance(child, dict) else {}
        node = node[p]
    node[parts[-1]] = value
    return out


def derive(txn: dict[str, Any], snap: Snapshot) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fill in derivable facts that are not given; say so in the trace."""
    out: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    for d in snap.rules.derivations:
        version = d.version_on(snap.on)
        if version is None:
            continue
        current = out if out is not None else txn
        if get(current, d.target) is not MISSING:
            continue
        a, b = (get(current, p) for p in version.inputs)
        if a is MISSING or b is MISSING:
            continue
        x, y = Decimal(str(a)), Decimal(str(b))
        if version.operation == "quotient" and y == 0:
            continue
        value = x * y if version.operation == "product" else x / y
        shown = float(round(value, 4))
        out = _set(current, d.target, shown)
        op = " x " if version.operation == "product" else " / "
        steps.append({
            "rule": version.citation.ref.removeprefix("15 CFR ").strip(),
            "role": "derivation",
            "citation": version.citation.short(),
            "question": d.title,
            "result": f"{d.target} = {version.inputs[0]}{op}{version.inputs[1]} = "
                      f"{a}{op}{b} = {shown}",
            "evidence": version.citation.evidence,
        })
    return (out if out is not None else txn), steps


def _contradicts(given: str, derived: str | None, regime_patterns: tuple[str, ...]) -> bool:
    """Does the user's ECCN contradict what the specifications show?"""
    if derived is not None:
        return eccn_mod.match(given, derived) is False and eccn_mod.match(derived, given) is False
    # the specs show the item is in none of the classified paragraphs
    return any(eccn_mod.match(given, p) is True for p in regime_patterns)


def classify(txn: dict[str, Any], snap: Snapshot, regime: str, assertions: frozenset[str]
             ) -> tuple[dict[str, Any], dict[str, Any] | None, list[Unknown]]:
    """Returns the facts (with ``item.eccn`` settled where the specs decide it), the
    contract's ``classification`` object, and the questions an undecided class raises."""
    provisions = sorted((p for p in snap.rules.of_regime(regime, "classification")),
                        key=lambda p: p.id)
    item = txn.get("item") or {}
    if not provisions or not isinstance(item.get("chip"), dict):
        return txn, None, []
    ctx = Context(snap=snap, root=txn, assertions=assertions)
    trace: list[dict[str, Any]] = []
    matched: list[str] = []
    unknowns: list[Unknown] = []
    patterns: list[str] = []
    for prov in provisions:
        version = prov.version_on(snap.on)
        if version is None or version.predicate is None or version.eccn is None:
            continue
        patterns.append(version.eccn)
        ctx.rule, ctx.reads = prov.id, Reads()
        value, unk = evaluate(version.predicate, ctx)
        trace.append({
            "rule": prov.id,
            "citation": version.citation.short(),
            "question": prov.title,
            "result": {True: f"met: {version.eccn}", False: "not met",
                       None: "cannot be decided: it turns on "
                             + ", ".join(dict.fromkeys(u.field for u in unk))}[value],
            "facts": dict(ctx.reads.facts),
            "thresholds": list(ctx.reads.thresholds.values()),
            "evidence": version.citation.evidence,
        })
        if value is True:
            matched.append(version.eccn)
        elif value is None:
            unknowns.extend(unk)
    derived = matched[0] if matched else None
    decided = derived is not None or not unknowns
    given = item.get("eccn")
    out = txn
    eccn: str | None = given
    if given:
        if decided and _contradicts(str(given), derived, tuple(patterns)):
            shown = derived or "outside " + ", ".join(dict.fromkeys(
                p.split(".")[0] for p in patterns))
            trace.append({"rule": "classification", "result":
                          f"CONTRADICTION: the given ECCN {given} does not match the "
                          f"specifications ({shown}); the ECCN is treated as unknown"})
            unknowns = [Unknown("item.eccn",
                                f"The given ECCN {given} contradicts the chip's specifications, "
                                f"which show {shown}. Which is right? Correct the ECCN or the "
                                "specifications.", "classification")]
            eccn = None
        else:
            unknowns = []
            trace.append({"rule": "classification", "result":
                          f"the given ECCN {given} is consistent with the specifications"
                          + ("" if decided else " as far as they are given")})
    elif derived is not None:
        eccn = derived
        unknowns = []
    if eccn != given:
        out = _set(txn, "item.eccn", eccn)
    if given is None and derived is None and decided:
        unknowns = [Unknown("item.eccn",
                            "The specifications place the item outside "
                            + ", ".join(dict.fromkeys(p.split(".")[0] for p in patterns))
                            + ". Under which other ECCN (or EAR99) is it classified?",
                            "classification")]
    return out, {"eccn": eccn, "derived_eccn": derived, "trace": trace}, unknowns
