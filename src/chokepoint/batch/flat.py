"""The flat column layout of an order book, and its mapping to contract transactions.

One row is one transaction. An empty cell means "unknown". List-valued facts are written
as ``;``-separated values, and ``none`` (or ``[]``) means "known: none". Booleans are
``true``/``false``. The layout is documented in ``docs/batch.md``; a column-mapping file
renames a user's ERP columns to these names without editing the export.
"""

from __future__ import annotations

import math
from typing import Any

NONE_MARKERS = ("none", "[]")

# column -> (path in the transaction, type)
COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("id", "str"),
    "date": ("date", "str"),
    "activity": ("activity", "str"),
    "from_country": ("from_country", "str"),
    "to_country": ("to_country", "str"),
    "exporter_name": ("exporter.name", "str"),
    "exporter_country": ("exporter.country", "str"),
    "exporter_headquartered_in": ("exporter.headquartered_in", "str"),
    "exporter_is_us_person": ("exporter.is_us_person", "bool"),
    "item_description": ("item.description", "str"),
    "item_model": ("item.model", "str"),
    "item_eccn": ("item.eccn", "str"),
    "item_kind": ("item.kind", "str"),
    "item_made_in": ("item.made_in", "str"),
    "item_made_by": ("item.made_by", "str"),
    "chip_tpp": ("item.chip.tpp", "num"),
    "chip_tops": ("item.chip.tops", "num"),
    "chip_bit_length": ("item.chip.bit_length", "int"),
    "chip_die_area_mm2": ("item.chip.die_area_mm2", "num"),
    "chip_datacenter": ("item.chip.datacenter", "bool"),
    "chip_interconnect_bandwidth_gbps": ("item.chip.interconnect_bandwidth_gbps", "num"),
    "chip_memory_bandwidth_gbps": ("item.chip.memory_bandwidth_gbps", "num"),
    "chip_memory_bandwidth_density_gbps_per_mm2":
        ("item.chip.memory_bandwidth_density_gbps_per_mm2", "num"),
    "chip_transistor_count": ("item.chip.transistor_count", "num"),
    "us_controlled_share": ("item.us_content.controlled_share", "num"),
    "us_incorporated_items": ("item.us_content.incorporated_us_items", "items"),
    "us_direct_product_of": ("item.us_technology.direct_product_of", "list"),
    "us_plant_direct_product_of": ("item.us_technology.plant_direct_product_of", "list"),
    "us_contains_ic_made_by_plant_direct_product_of":
        ("item.us_technology.contains_ic_made_by_plant_direct_product_of", "list"),
    "national_NL": ("item.national_classifications.NL", "listing"),
    "national_JP": ("item.national_classifications.JP", "listing"),
    "end_uses": ("end_uses", "list"),
    "us_person_support": ("us_person_support", "bool"),
    "assertions": ("assertions", "list"),
}
PARTY_COLUMNS = {
    "name": "str", "role": "str", "country": "str", "headquartered_in": "str",
    "designations": "designations", "at_advanced_node_facility": "bool",
}
MAX_PARTIES = 3


def list_cell(values: list[Any]) -> str:
    """A Parquet list cell as the flat layout's text: ``;``-separated, and an empty list
    "known: none" (a null cell, unknown, is no list)."""
    return ";".join(map(str, values)) if values else NONE_MARKERS[1]


def party_prefix(slot: int) -> str:
    """The columns of the ``slot``-th party (from 1) start with this."""
    return "party_" if slot == 1 else f"party{slot}_"


LAYOUT: frozenset[str] = frozenset(COLUMNS) | frozenset(
    party_prefix(n) + key for n in range(1, MAX_PARTIES + 1) for key in PARTY_COLUMNS)
"""Every column name the flat layout reads."""


class RowError(ValueError):
    """A cell that cannot be read; ``column`` names it."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"{column}: {message}")
        self.column = column


RAGGED = "__ragged__"
"""A row's own cell, not a column of a book: set (to "CELLS HEADER", two counts) on a CSV
row whose cells are more or fewer than its header names. A comma or quote out of place
moves cells under other columns, so no cell of such a row is read: it is rejected."""


def ragged(cells: int, header: int) -> dict[str, str]:
    """The :data:`RAGGED` cell of a row of ``cells`` cells under a ``header`` of so many."""
    return {RAGGED: f"{cells} {header}"}


def _check_whole(row: dict[str, Any]) -> None:
    mark = row.get(RAGGED)
    if mark:
        cells, header = str(mark).split()
        raise RowError("(the row)", f"{cells} cells where the header names {header}; a "
                       "comma or quote out of place would put cells under other columns, "
                       "so none is read")


def _cell(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, float) and raw != raw:  # NaN from a Parquet null
        return None
    text = str(raw).strip()
    return text or None


def _value(column: str, kind: str, raw: Any) -> Any:
    text = _cell(raw)
    if text is None:
        return None
    if "\ufffd" in text:  # (bytes a reader could not decode, replaced: not the book's text)
        raise RowError(column, "holds bytes that are not text in the encoding the book was "
                       "read in (shown as U+FFFD); name its encoding (--encoding)")
    if kind == "str":
        return text
    if kind in ("num", "int"):
        try:
            value = float(text)
        except ValueError as exc:
            raise RowError(column, f"not a number: {text!r}") from exc
        if not math.isfinite(value):  # ("nan", "inf" and "1e999" parse as floats)
            raise RowError(column, f"not a finite number: {text!r}")
        if kind == "int" and not value.is_integer():  # (never rounded: 8.9 bits is not 8)
            raise RowError(column, f"not a whole number: {text!r}")
        return int(value) if kind == "int" or value.is_integer() else value
    if kind == "bool":
        low = text.lower()
        if low in ("true", "yes", "1", "y"):
            return True
        if low in ("false", "no", "0", "n"):
            return False
        raise RowError(column, f"not true/false: {text!r}")
    if kind == "list":
        return [] if text.lower() in NONE_MARKERS else [v.strip() for v in text.split(";")
                                                        if v.strip()]
    if kind == "listing":  # a national list entry, or "-" / "not listed" for explicit null
        return "__null__" if text.lower() in ("-", "not listed", "none") else text
    if kind == "items":  # "3A991:ic;3D992:software"
        if text.lower() in NONE_MARKERS:
            return []
        items = []
        for part in text.split(";"):
            eccn, _, item_kind = part.strip().partition(":")
            if not eccn:
                raise RowError(column, f"empty ECCN in {text!r}")
            items.append({"eccn": eccn, **({"kind": item_kind} if item_kind else {})})
        return items
    if kind == "designations":  # "entity_list:5,1;sdn" or "none"
        if text.lower() in NONE_MARKERS:
            return []
        out = []
        for part in text.split(";"):
            name, _, notes = part.strip().partition(":")
            entry: dict[str, Any] = {"list": name}
            if notes:
                try:
                    entry["footnotes"] = [int(n) for n in notes.split(",") if n.strip()]
                except ValueError as exc:
                    raise RowError(column, f"footnotes must be numbers: {notes!r}") from exc
            out.append(entry)
        return out
    raise AssertionError(kind)


def _put(txn: dict[str, Any], path: str, value: Any) -> None:
    node = txn
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = None if value == "__null__" else value


def row_to_transaction(row: dict[str, Any]) -> dict[str, Any]:
    """A flat row as a contract transaction (validation follows in the caller)."""
    _check_whole(row)
    txn: dict[str, Any] = {}
    for column, (path, kind) in COLUMNS.items():
        if column in row:
            value = _value(column, kind, row[column])
            if value is not None:
                _put(txn, path, value)
    txn.setdefault("item", {})
    parties = []
    for n in range(1, MAX_PARTIES + 1):
        prefix = party_prefix(n)
        fields = {key: _value(prefix + key, kind, row.get(prefix + key))
                  for key, kind in PARTY_COLUMNS.items()}
        if fields["name"] is None:
            continue
        party = {k: v for k, v in fields.items() if v is not None}
        party.setdefault("role", "end_user")
        parties.append(party)
    if parties:
        txn["parties"] = parties
    return txn
