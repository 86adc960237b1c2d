"""Filling in a named product's figures and list status from the cited catalogue.

Only facts the user did not give are filled; every filled fact is named in the trace with
its citation, so a determination shows which figures came from the catalogue.
"""

from __future__ import annotations

from typing import Any

from chokepoint.rules.names import normalise_name
from chokepoint.rules.ruleset import Snapshot

FILLED = ("kind", "made_by", "made_in", "chip", "parameters", "eccn",
          "national_classifications")
"""The item's keys ``apply_catalogue`` may fill (others pass through it untouched)."""


def apply_catalogue(txn: dict[str, Any], snap: Snapshot
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    item = txn.get("item") or {}
    model = item.get("model")
    if not isinstance(model, str):
        return txn, []
    entry = snap.rules.catalogue.get(normalise_name(model))
    if entry is None:
        return txn, [{"rule": "catalogue", "role": "catalogue",
                      "result": f"model '{model}' is not in chokepoint's catalogue; "
                                "only the facts given are used"}]
    new_item = dict(item)
    filled: list[str] = []
    citations: list[str] = []
    for key, value in (("kind", entry.kind), ("made_by", entry.made_by),
                       ("made_in", entry.made_in)):
        if value is not None and new_item.get(key) is None:
            new_item[key] = value
            filled.append(f"item.{key} = {value}")
    groups: tuple[tuple[str, dict[str, Any]], ...] = (("chip", entry.chip),
                                                     ("parameters", entry.parameters))
    for group, figures in groups:
        if not figures:
            continue
        current = dict(new_item.get(group) or {})
        for key, value in figures.items():
            if current.get(key) is None:
                current[key] = value
                filled.append(f"item.{group}.{key} = {value}")
        new_item[group] = current
    if (entry.chip or entry.parameters) and entry.figures_citation is not None:
        citations.append(entry.figures_citation.short())
    version = entry.version_on(snap.on)
    if version is not None:
        if version.eccn and not new_item.get("eccn"):
            new_item["eccn"] = version.eccn
            filled.append(f"item.eccn = {version.eccn}")
        if version.national_classifications:
            given = dict(new_item.get("national_classifications") or {})
            for regime, listing in version.national_classifications.items():
                if regime not in given:
                    given[regime] = listing
                    filled.append(f"item.national_classifications.{regime} = "
                                  f"{listing if listing is not None else 'not listed'}")
            new_item["national_classifications"] = given
        citations.append(version.citation.short())
    step = {
        "rule": "catalogue",
        "role": "catalogue",
        "question": f"What does chokepoint's catalogue say about '{entry.model}' "
                    f"({entry.made_by})?",
        "result": ("filled from the catalogue: " + "; ".join(filled)) if filled
        else "the catalogue adds nothing the transaction does not already state",
        "citation": " / ".join(citations),
    }
    return {**txn, "item": new_item}, [step]
