"""What the item's processing (catalogue, derived figures, classification) reads and
writes, and the rule versions it uses on a day."""

from __future__ import annotations

from datetime import date
from typing import Any

from chokepoint.batch.columnar.codes import Unsupported
from chokepoint.engine.catalogue import FILLED
from chokepoint.rules.predicate import (
    FactReads,
    InGroup,
    ParamRef,
    ParamTrue,
    Pred,
    fact_reads,
    walk,
)
from chokepoint.rules.ruleset import RuleSet


def _item_rules(rules: RuleSet) -> tuple[list[Any], list[Pred]]:
    """The classification provisions (with the definitions they use) and their predicates."""
    provs: dict[str, Any] = {}
    todo = [p for p in rules.provisions.values() if p.role == "classification"]
    while todo:
        prov = todo.pop()
        if prov.id in provs:
            continue
        provs[prov.id] = prov
        for v in prov.versions:
            if v.predicate is not None:
                todo += [rules.provisions[r] for r in fact_reads(v.predicate).refs or ()]
    preds = [v.predicate for p in provs.values() for v in p.versions if v.predicate is not None]
    return list(provs.values()), preds


def item_keys(rules: RuleSet) -> set[str]:
    """The item's first-level keys that the catalogue, derivations or classification read
    or write; the others pass through them untouched."""
    keys = {*FILLED, "model"}  # the catalogue reads the model
    _, preds = _item_rules(rules)
    paths: set[str] = set()
    for pred in preds:
        reads = fact_reads(pred)
        paths |= reads.paths | set(reads.lists)
    for d in rules.derivations:
        paths.add(d.target)
        for dv in d.versions:
            paths.update(dv.inputs)
    return keys | {p.split(".")[1] for p in paths if p.startswith("item.")}


def item_state(rules: RuleSet, day: date) -> Any:
    """The identity of every rule version the item's processing can use on a day."""
    ids: list[int] = []
    for entry in {id(e): e for e in rules.catalogue.values()}.values():
        ids.append(id(entry.version_on(day)))
    for d in rules.derivations:
        ids.append(id(d.version_on(day)))
    provs, _ = _item_rules(rules)
    for prov in provs:
        version = prov.version_on(day)
        ids.append(id(version))
        if version is None or version.predicate is None:
            continue
        for node in walk(version.predicate):
            for attr in ("value", "eccns"):
                ref = getattr(node, attr, None)
                if isinstance(ref, ParamRef):
                    ids.append(id(rules.parameters[ref.param].version_on(day)))
            if isinstance(node, ParamTrue):
                ids.append(id(rules.parameters[node.param].version_on(day)))
            if isinstance(node, InGroup):
                ids.append(id(rules.groups[node.group].version_on(day)))
    return tuple(ids)


def check_supported(rules: RuleSet) -> None:
    """Classification and derivations must read the item only (they run once per item)."""
    reads = FactReads(set(), {}, False, set())
    for prov in rules.provisions.values():
        if prov.role == "classification":
            for v in prov.versions:
                if v.predicate is not None:
                    reads.merge(fact_reads(v.predicate))
                    for ref in fact_reads(v.predicate).refs or ():
                        for rv in rules.provisions[ref].versions:
                            if rv.predicate is not None:
                                reads.merge(fact_reads(rv.predicate))
    paths = set(reads.paths) | set(reads.lists)
    for d in rules.derivations:
        paths.add(d.target)
        for dv in d.versions:
            paths.update(dv.inputs)
    outside = sorted(p for p in paths if not p.startswith("item."))
    if outside:
        raise Unsupported(f"classification or derivation reads {', '.join(outside)}")
