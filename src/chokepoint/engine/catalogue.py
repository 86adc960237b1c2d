"""Filling in a named product's figures and list status from the cited catalogue.

Only facts the user did not give are filled; every filled fact is named in the trace with
its citation, so a determination shows which figures came from the catalogue.

A fact the user gave that the catalogue contradicts for the named product is set aside:
a chip figure or a tool parameter of another value; another country of production; a kind
of item other than the product's own, a computer built around a catalogued chip or a part
of a catalogued tool (:data:`NAMED_AS`); an ECCN neither of which is a sub-paragraph of the
other; "not listed" against "listed" on a regime's control list. Neither value is then
used, the trace says so, and a rule that turns on the fact asks which is right
(set_aside.py): a typing error must not clear an order the catalogue shows to be
controlled.
"""

from __future__ import annotations

from typing import Any

from chokepoint.engine import eccn as eccn_mod
from chokepoint.engine.set_aside import with_questions
from chokepoint.rules.names import normalise_name
from chokepoint.rules.ruleset import Snapshot

FILLED = ("kind", "made_by", "made_in", "chip", "parameters", "eccn",
          "national_classifications")
"""The item's keys ``apply_catalogue`` may fill (others pass through it untouched)."""

NAMED_AS = {"chip": ("chip", "computer"), "sme": ("sme", "sme_part_or_component")}
"""The kinds an item named by a catalogued product's model may be, by the product's kind:
the product itself, a computer built around a chip, a part of a tool."""


def _fact_conflicts(key: str, given: Any, listed: str) -> bool:
    """Whether the item's kind or country of production contradicts the catalogue's (the
    maker's name is not compared: it is written in many ways and no rule reads it)."""
    if key == "kind":
        return given not in NAMED_AS.get(listed, (listed,))
    return key == "made_in" and given != listed


def _figure_conflicts(given: Any, listed: Any) -> bool:
    """Whether a given figure contradicts the catalogue's (a number by value, else as
    given)."""
    if given is None or listed is None:
        return False
    numbers = (int, float)
    if (isinstance(given, numbers) and isinstance(listed, numbers)
            and not isinstance(given, bool) and not isinstance(listed, bool)):
        return float(given) != float(listed)
    return bool(given != listed)


def _eccn_conflicts(given: Any, listed: str) -> bool:
    """Whether a given ECCN contradicts the catalogue's: neither falls under the other."""
    if not isinstance(given, str) or not given.strip():
        return False
    return (eccn_mod.match(given, listed) is False
            and eccn_mod.match(listed, given) is False)


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
    conflicts: dict[str, str] = {}
    set_aside: list[str] = []
    name = f"'{entry.model}'"

    def conflict(field: str, given: Any, listed: Any, source: str) -> None:
        set_aside.append(f"{field} given as {given!r}, the catalogue has {listed!r}")
        conflicts[field] = (
            f"You gave {field} = {given!r}, but chokepoint's catalogue has {listed!r} for "
            f"{name} ({source}). Which is right? Correct the value, or remove the model if "
            "the item is not this product.")

    figures_source = (entry.figures_citation.short() if entry.figures_citation is not None
                      else "the catalogue's entry")
    for key, value in (("kind", entry.kind), ("made_by", entry.made_by),
                       ("made_in", entry.made_in)):
        if value is not None and new_item.get(key) is None:
            new_item[key] = value
            filled.append(f"item.{key} = {value}")
        elif value is not None and _fact_conflicts(key, new_item[key], value):
            conflict(f"item.{key}", new_item[key], value, figures_source)
            new_item[key] = None
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
            elif _figure_conflicts(current[key], value):
                conflict(f"item.{group}.{key}", current[key], value, figures_source)
                current[key] = None
        new_item[group] = current
    if (entry.chip or entry.parameters) and entry.figures_citation is not None:
        citations.append(entry.figures_citation.short())
    version = entry.version_on(snap.on)
    if version is not None:
        source = version.citation.short()
        if version.eccn and not new_item.get("eccn"):
            new_item["eccn"] = version.eccn
            filled.append(f"item.eccn = {version.eccn}")
        elif version.eccn and _eccn_conflicts(new_item.get("eccn"), version.eccn):
            conflict("item.eccn", new_item["eccn"], version.eccn, source)
            new_item["eccn"] = None
        if version.national_classifications:
            given = dict(new_item.get("national_classifications") or {})
            for regime, listing in version.national_classifications.items():
                if regime not in given:
                    given[regime] = listing
                    filled.append(f"item.national_classifications.{regime} = "
                                  f"{listing if listing is not None else 'not listed'}")
                elif (given[regime] is None) != (listing is None):
                    # (listed against not listed; two listings' wording is not compared)
                    conflict(f"item.national_classifications.{regime}",
                             given[regime] if given[regime] is not None else "not listed",
                             listing if listing is not None else "not listed", source)
                    del given[regime]  # (absent: unknown)
            new_item["national_classifications"] = given
        citations.append(source)
    result = ("filled from the catalogue: " + "; ".join(filled)) if filled \
        else "the catalogue adds nothing the transaction does not already state"
    if set_aside:
        result += ("; CONFLICT, set aside as unknown (neither value is used): "
                   + "; ".join(set_aside))
    step = {
        "rule": "catalogue",
        "role": "catalogue",
        "question": f"What does chokepoint's catalogue say about '{entry.model}' "
                    f"({entry.made_by})?",
        "result": result,
        "citation": " / ".join(citations),
    }
    return with_questions({**txn, "item": new_item}, conflicts), [step]
