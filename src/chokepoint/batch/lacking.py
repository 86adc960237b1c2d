"""What a batch's undetermined answers lack: each missing fact counted over the rows, with
the column of the flat layout that would answer it - for the closing lines of
``chokepoint batch``, so that a user sees which columns to add to the export first."""

from __future__ import annotations

import re

from chokepoint.batch.flat import COLUMNS, PARTY_COLUMNS, party_prefix

_BY_PATH = {path: column for column, (path, _) in COLUMNS.items()}
_PARTY = re.compile(r"parties\[(\d+)\]\.(\w+)$")
_ELEMENT = re.compile(r"(.+?)\[\d+\]")


def tally(counts: dict[str, int], cell: str, rows: int = 1) -> None:
    """Add the fields of a ``missing_facts`` cell ("US:field;NL:field") to ``counts``, each
    field once for each of ``rows`` rows holding that cell (whichever regimes ask it)."""
    if cell:
        for field in dict.fromkeys(item.split(":", 1)[1] for item in cell.split(";")):
            counts[field] = counts.get(field, 0) + rows


def column_for(field: str) -> str | None:
    """The flat-layout column that answers a missing field (None: no column does)."""
    if field in _BY_PATH:
        return _BY_PATH[field]
    party = _PARTY.match(field)
    if party and party[2] in PARTY_COLUMNS:
        return party_prefix(int(party[1]) + 1) + party[2]
    if field.startswith("assertions:"):
        return f"assertions ({field.split(':', 1)[1]})"
    within = _ELEMENT.match(field)  # (a list's element: written in the list's cell)
    return _BY_PATH.get(within[1]) if within else None


def report(counts: dict[str, int], top: int = 10) -> list[str]:
    """Lines naming the ``top`` facts lacked by most rows, and how many more there are."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    width = len(f"{ranked[0][1]:,}") if ranked else 0
    lines = []
    for field, rows in ranked[:top]:
        column = column_for(field)
        if column is not None:
            what = column if column == field else f"{column}  ({field})"
        elif field.startswith("rules:"):
            what = f"{field}  (left open by the rule data: a row's --trace asks it)"
        else:
            what = f"{field}  (no column of the flat layout: JSON Lines books can give it)"
        lines.append(f"  {rows:>{width},} row{'s' if rows != 1 else ' '}  {what}")
    if len(ranked) > top:
        more = len(ranked) - top
        lines.append(f"  ... and {more} more fact{'s' if more != 1 else ''}")
    return lines
