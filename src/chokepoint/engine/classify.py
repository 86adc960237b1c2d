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
from chokepoint.engine.set_aside import fields_among, with_questions
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
    """Fill in derivable facts that are not given; say so in the trace. A given figure that
    its own given inputs contradict (a TPP of 1000 with 600 TOPS at 8 bits) is set aside
    as unknown, with a question naming both values (set_aside.py), as the catalogue's
    contradictions are: the wrong one of the two must not clear an order."""
    out: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    for d in snap.rules.derivations:
        version = d.version_on(snap.on)
        if version is None:
            continue
        current = out if out is not None else txn
        given = get(current, d.target)
        a, b = (get(current, p) for p in version.inputs)
        if a is MISSING or b is MISSING:
            continue
        x, y = Decimal(str(a)), Decimal(str(b))
        if version.operation == "quotient" and y == 0:
            continue
        value = x * y if version.operation == "product" else x / y
        op = " x " if version.operation == "product" else " / "
        shown = float(round(value, 4))
        formula = (f"{d.target} = {version.inputs[0]}{op}{version.inputs[1]} = "
                   f"{a}{op}{b} = {shown}")
        if given is not MISSING:
            if Decimal(str(given)) == value:
                continue
            # the figure given and the figures it is computed from disagree: neither is used
            out = with_questions(_set(current, d.target, None), {d.target: (
                f"{d.target} is {given!r} (as given, or from the catalogue for the model), "
                f"but the figures it is computed from make it {shown} "
                f"({formula.split(' = ', 1)[1]}). Which is right? Correct the figure or the "
                "model, or the figures it is computed from.")})
            steps.append({"rule": d.id, "role": "derivation",
                          "citation": version.citation.short(), "question": d.title,
                          "result": f"CONFLICT: {d.target} is {given!r} (as given, or "
                                    f"from the catalogue), but {formula}; set aside as "
                                    "unknown (neither value is used)",
                          "evidence": version.citation.evidence})
            continue
        # Exact decimal arithmetic, stored unrounded: a boundary value (PD 5.92) must not be
        # pushed across its threshold by display rounding.
        out = _set(current, d.target, float(value))
        steps.append({
            "rule": d.id,
            "role": "derivation",
            "citation": version.citation.short(),
            "question": d.title,
            "result": formula,
            "evidence": version.citation.evidence,
        })
    return (out if out is not None else txn), steps


def _ask_inputs(unknowns: list[Unknown], txn: dict[str, Any], snap: Snapshot) -> list[Unknown]:
    """A derived figure that is unknown is asked as the given figures it is computed from."""
    targets = {}
    for d in snap.rules.derivations:
        version = d.version_on(snap.on)
        if version is not None:
            targets[d.target] = version.inputs
    out: list[Unknown] = []
    for u in unknowns:
        inputs = targets.get(u.field)
        if inputs is None:
            out.append(u)
            continue
        missing = [i for i in inputs if get(txn, i) is MISSING]
        out.extend(Unknown(m, None, u.rule) for m in (missing or [u.field]))
    return list({u.field: u for u in out}.values())


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
    ordered = snap.memo("classification-order")
    provisions = ordered.get(regime)
    if provisions is None:
        provisions = ordered[regime] = sorted(
            snap.rules.of_regime(regime, "classification"), key=lambda p: p.id)
    item = txn.get("item") or {}
    if not provisions or not isinstance(item.get("chip"), dict):
        return txn, None, []
    ctx = Context(snap=snap, root=txn, assertions=assertions)
    memo: dict[str, Any] = {}

    def resolve(rule_id: str) -> Any:
        # definitions referenced by classification provisions (e.g. "meets 3A090.a")
        if rule_id not in memo:
            version = snap.rules.provisions[rule_id].version_on(snap.on)
            outer = (ctx.rule, ctx.reads)
            ctx.reads = Reads()
            try:
                memo[rule_id] = (False, ()) if version is None or version.predicate is None \
                    else evaluate(version.predicate, ctx)
            finally:
                ctx.rule, ctx.reads = outer
        return memo[rule_id]

    ctx.resolve = resolve
    trace: list[dict[str, Any]] = []
    matched: list[tuple[tuple[int, int], str]] = []
    undecided: list[tuple[tuple[int, int], str, set[str]]] = []
    unknowns: list[Unknown] = []
    patterns: list[str] = []
    for place, prov in enumerate(provisions):
        version = snap.version(prov)
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
        # the most specific paragraph met is taken (3A090.a.1 over the presumption's
        # 3A090.a), the first in id order among equally specific ones
        rank = (-len(eccn_mod.parse(version.eccn)[1]), place)
        if value is True:
            matched.append((rank, version.eccn))
        elif value is None:
            unknowns.extend(unk)
            undecided.append((rank, version.eccn, {u.field for u in unk}))
    unknowns = _ask_inputs(unknowns, txn, snap)
    best = min(matched) if matched else None
    derived = best[1] if best else None
    # A paragraph not yet decided that would be taken over the one met, and is not a
    # refinement of it, leaves the class open: 3A090.c met by a memory bandwidth density
    # says nothing of 3A090.a.1 while the TPP is unknown (co-packaged HBM and logic whose
    # main function is processing is not 3A090.c). A paragraph that turns on the item's
    # own ECCN (the .z paragraphs refine a given ECCN) is not a rival here.
    rivals = [] if best is None else list(dict.fromkeys(
        eccn for rank, eccn, fields in undecided
        if rank < best[0] and "item.eccn" not in fields
        and eccn_mod.match(eccn, best[1]) is False))
    if rivals:
        trace.append({"rule": "classification", "result":
                      f"{derived} is met, but {', '.join(rivals)} cannot be decided yet and "
                      "would be taken over it: the class is left open until the facts "
                      "asked are given"})
        derived = None
    decided = derived is not None or not unknowns
    given = item.get("eccn")
    out = txn
    eccn: str | None = given
    if given and derived and eccn_mod.match(derived, str(given)) is True \
            and derived != given:
        # the specifications refine the given ECCN (e.g. 5A992 -> 5A992.z)
        trace.append({"rule": "classification", "result":
                      f"the specifications refine the given ECCN {given} to {derived}"})
        eccn = derived
        unknowns = []
    elif given:
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
        elif not decided and (set_aside := fields_among(txn, [u.field for u in unknowns])):
            # a figure the test turns on was set aside as contradicting the catalogue or
            # the figures it is computed from (derive):
            # the given ECCN cannot be checked, and the figure may be the one that is right
            trace.append({"rule": "classification", "result":
                          f"the given ECCN {given} cannot be checked against the "
                          f"specifications: {', '.join(set_aside)} "
                          f"{'was' if len(set_aside) == 1 else 'were'} set aside as "
                          "contradicting the catalogue or the figures it is computed "
                          "from; the ECCN is treated as unknown"})
            eccn = None
        else:
            unknowns = []
            trace.append({"rule": "classification", "result":
                          f"the given ECCN {given} is consistent with the specifications"
                          + ("" if decided else " as far as they are given")})
    elif derived is not None and fields_among(txn, ["item.eccn"]):
        # the ECCN given was set aside as contradicting the catalogue for the named model:
        # the specifications are a third account, and do not settle which one is right
        trace.append({"rule": "classification", "result":
                      f"the specifications show {derived}, but the ECCN given was set aside "
                      "as contradicting the catalogue for the named model; the ECCN is "
                      "left unknown"})
        unknowns = [Unknown("item.eccn", None, "classification")]
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


def classify_item(item: dict[str, Any], rules: Any, on: Any, regime: str
                  ) -> dict[str, Any]:
    """Classify one item on its own (the ``classify`` command): catalogue, derived figures,
    classification provisions in force ``on``. Returns ECCN, figures, reasoning, questions."""
    from chokepoint.engine.catalogue import apply_catalogue
    from chokepoint.engine.questions import missing_facts

    snap = rules.at(on)
    txn: dict[str, Any] = {"item": dict(item)}
    txn, steps = apply_catalogue(txn, snap)
    txn, derived_steps = derive(txn, snap)
    txn, cls, unknowns = classify(txn, snap, regime, frozenset())
    chip = txn["item"].get("chip") or {}
    return {
        "as_of": on.isoformat(),
        "rules_version": rules.content_hash,
        "model": item.get("model"),
        "eccn": cls["eccn"] if cls else item.get("eccn"),
        "derived_eccn": cls["derived_eccn"] if cls else None,
        "tpp": chip.get("tpp"),
        "performance_density": chip.get("performance_density"),
        "trace": steps + derived_steps + (cls["trace"] if cls else []),
        "missing_facts": missing_facts(unknowns, rules.questions, txn),
    }
