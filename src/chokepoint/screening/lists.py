"""Restricted-party list entries and loaders for the official file formats.

Formats: the Consolidated Screening List ``consolidated.csv`` (the current 29-column layout
with ``_id`` and the older 28-column layout) and ``consolidated.json``; OFAC's legacy SDN
CSV (``sdn.csv`` with ``alt.csv`` and ``add.csv`` beside it; Latin-1, a trailing 0x1A); the
BIS Denied Persons List text file (tab-separated, quoted); a user's own watch list CSV
(``id,name,aliases,country``, aliases separated by ``;``). Errors name the file and line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ListFormatError(ValueError):
    """A list file could not be read; the message names the file and the line."""


@dataclass(frozen=True)
class ListEntry:
    """One listed party with every name it is known by."""

    list: str
    entry_id: str
    name: str
    aliases: tuple[str, ...] = ()
    country: str | None = None
    addresses: tuple[str, ...] = ()
    # An Entity List entry's footnotes (Supp. No. 4 to part 744); None where the list file
    # does not show them (a Consolidated Screening List row without a footnote mark)
    footnotes: tuple[int, ...] | None = ()
    programs: str = ""
    start_date: str | None = None
    end_date: str | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


CSL_29 = ["_id", "source", "entity_number", "type", "programs", "name", "title", "addresses",
          "federal_register_notice", "start_date", "end_date", "standard_order",
          "license_requirement", "license_policy", "call_sign", "vessel_type", "gross_tonnage",
          "gross_registered_tonnage", "vessel_flag", "vessel_owner", "remarks",
          "source_list_url", "alt_names", "citizenships", "dates_of_birth", "nationalities",
          "places_of_birth", "source_information_url", "ids"]
CSL_28 = CSL_29[1:]

_COUNTRY_NAMES = {"CHINA": "CN", "HONG KONG": "HK", "MACAU": "MO", "UNITED STATES": "US",
                  "RUSSIA": "RU", "IRAN": "IR", "CUBA": "CU", "NORTH KOREA": "KP",
                  "KOREA, NORTH": "KP", "SYRIA": "SY", "TAIWAN": "TW", "SINGAPORE": "SG",
                  "MALAYSIA": "MY", "JAPAN": "JP", "NETHERLANDS": "NL", "GERMANY": "DE",
                  "UNITED KINGDOM": "GB", "UNITED ARAB EMIRATES": "AE", "PAKISTAN": "PK",
                  "INDIA": "IN", "TURKEY": "TR", "BELARUS": "BY", "VENEZUELA": "VE"}

_FOOTNOTE_MARKS = {"¹": 1, "²": 2, "³": 3, "⁴": 4, "⁵": 5}


def _country_code(text: str | None) -> str | None:
    if not text:
        return None
    t = text.strip().rstrip(".").upper()
    if len(t) == 2 and t.isalpha():
        return t
    return _COUNTRY_NAMES.get(t)


def _address_country(addresses: list[str]) -> str | None:
    for a in addresses:
        tail = a.rsplit(",", 1)[-1].strip()
        code = _country_code(tail)
        if code:
            return code
    return None


def _footnotes(listed: str, *texts: str) -> tuple[int, ...] | None:
    """The footnotes a row's texts mark. For an Entity List row that marks none: unknown,
    not "none" - the file need not carry the marks, and a footnote brings the foreign
    direct product rules (§ 734.9(e)) that can make a foreign-made item subject."""
    found = {n for t in texts for mark, n in _FOOTNOTE_MARKS.items() if mark in (t or "")}
    for t in texts:
        low = (t or "").lower()
        for n in range(1, 6):
            if f"footnote {n}" in low:
                found.add(n)
    if not found and listed == "entity_list":
        return None
    return tuple(sorted(found))


def _split(value: str, sep: str = ";") -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(sep) if v.strip())


def _list_name(source: str) -> str:
    low = source.lower()
    if "entity list" in low:
        return "entity_list"
    if "denied persons" in low:
        return "denied_persons"
    if "specially designated" in low or "(sdn)" in low:
        return "sdn"
    if "unverified" in low:
        return "unverified_list"
    if "military end user" in low:
        return "military_end_user"
    return low.split(" - ")[0].strip().replace(" ", "_") or "csl"


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        return path.read_bytes().decode(encoding).replace("\x1a", "")
    except OSError as exc:
        raise ListFormatError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ListFormatError(f"{path}: not {encoding} text (byte {exc.start})") from exc


def load_csl_csv(path: Path) -> list[ListEntry]:
    text = _read_text(path, "utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header == CSL_29:
        columns = CSL_29
    elif header == CSL_28:
        columns = CSL_28
    else:
        raise ListFormatError(f"{path}: line 1: not a Consolidated Screening List header "
                              "(expected the 29- or 28-column layout)")
    entries = []
    for line, r in _records(reader, columns, path):
        name = r["name"].strip()
        if not name:
            raise ListFormatError(f"{path}: line {line}: empty name")
        addresses = list(_split(r["addresses"]))
        source = r["source"].strip()
        listed = _list_name(source)
        entries.append(ListEntry(
            list=listed,
            entry_id=r.get("_id") or r["entity_number"] or f"{path.name}:{line}",
            name=name,
            aliases=_split(r["alt_names"]),
            country=_address_country(addresses),
            addresses=tuple(addresses),
            footnotes=_footnotes(listed, r["license_requirement"], r["license_policy"], name),
            programs=r["programs"],
            start_date=r["start_date"] or None,
            end_date=r["end_date"] or None,
            source=source,
            extra={"license_requirement": r["license_requirement"],
                   "license_policy": r["license_policy"],
                   "federal_register_notice": r["federal_register_notice"]},
        ))
    return entries


def load_csl_json(path: Path) -> list[ListEntry]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ListFormatError(f"{path}: line {exc.lineno}: not JSON: {exc.msg}") from exc
    results = data.get("results") if isinstance(data, dict) else data
    if not isinstance(results, list):
        raise ListFormatError(f"{path}: expected a 'results' list")
    entries = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not r.get("name"):
            raise ListFormatError(f"{path}: results[{i}]: an entry needs a 'name'")
        addresses = []
        for a in r.get("addresses") or []:
            if isinstance(a, dict):
                addresses.append(", ".join(str(a[k]) for k in
                                           ("address", "city", "state", "postal_code", "country")
                                           if a.get(k)))
        country = None
        for a in r.get("addresses") or []:
            if isinstance(a, dict) and a.get("country"):
                country = _country_code(str(a["country"]))
                break
        source = str(r.get("source", ""))
        listed = _list_name(source)
        entries.append(ListEntry(
            list=listed, entry_id=str(r.get("id") or r.get("_id") or i),
            name=str(r["name"]).strip(), aliases=tuple(str(a) for a in r.get("alt_names") or []),
            country=country, addresses=tuple(addresses),
            footnotes=_footnotes(listed, str(r.get("license_requirement") or ""),
                                 str(r.get("license_policy") or "")),
            programs=";".join(r.get("programs") or []), start_date=r.get("start_date"),
            end_date=r.get("end_date"), source=source))
    return entries


def _records(reader: Any, columns: list[str], path: Path
             ) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row by column) for each non-blank row of a fixed-width delimited file;
    a row with another number of fields is an error naming its line."""
    for row in reader:
        if not any(row):
            continue
        if len(row) != len(columns):
            raise ListFormatError(f"{path}: line {reader.line_num}: {len(row)} fields, "
                                  f"expected {len(columns)}")
        yield reader.line_num, dict(zip(columns, row, strict=True))


def _sdn_rows(path: Path, width: int) -> list[tuple[int, list[str]]]:
    text = _read_text(path, "latin-1")
    rows = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < width:
            raise ListFormatError(f"{path}: line {reader.line_num}: {len(row)} fields, "
                                  f"expected {width}")
        rows.append((reader.line_num, [("" if c.strip() == "-0-" else c.strip()) for c in row]))
    return rows


def load_sdn(path: Path) -> list[ListEntry]:
    """OFAC legacy CSV: ``sdn.csv``, with ``alt.csv`` and ``add.csv`` read from beside it."""
    aliases: dict[str, list[str]] = {}
    alt = path.with_name("alt.csv")
    if alt.exists():
        for _, row in _sdn_rows(alt, 4):
            aliases.setdefault(row[0], []).append(row[3])
    addresses: dict[str, list[tuple[str, str]]] = {}
    add = path.with_name("add.csv")
    if add.exists():
        for _, row in _sdn_rows(add, 5):
            text = ", ".join(p for p in row[2:5] if p)
            addresses.setdefault(row[0], []).append((text, row[4]))
    entries = []
    for line, row in _sdn_rows(path, 12):
        ent, name, kind, programs = row[0], row[1], row[2], row[3]
        if not ent.isdigit():
            raise ListFormatError(f"{path}: line {line}: entity number {ent!r} is not a number")
        adds = addresses.get(ent, [])
        country = next((_country_code(c) for _, c in adds if _country_code(c)), None)
        entries.append(ListEntry(list="sdn", entry_id=ent, name=name,
                                 aliases=tuple(aliases.get(ent, [])), country=country,
                                 addresses=tuple(a for a, _ in adds), programs=programs,
                                 source="OFAC SDN", extra={"type": kind}))
    return entries


_DPL_HEADER = ["Name", "Street_Address", "City", "State", "Country", "Postal_Code",
               "Effective_Date", "Expiration_Date", "Standard_Order", "Last_Update", "Action",
               "FR_Citation"]


def load_dpl(path: Path) -> list[ListEntry]:
    text = _read_text(path, "utf-8-sig")
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    header = next(reader, None)
    if header != _DPL_HEADER:
        raise ListFormatError(f"{path}: line 1: not a BIS Denied Persons List header")
    entries = []
    for line, r in _records(reader, _DPL_HEADER, path):
        address = ", ".join(p.strip() for p in (r["Street_Address"], r["City"], r["State"],
                                                 r["Postal_Code"], r["Country"]) if p.strip())
        entries.append(ListEntry(list="denied_persons", entry_id=f"dpl:{line}",
                                 name=r["Name"].strip(), country=_country_code(r["Country"]),
                                 addresses=(address,), start_date=r["Effective_Date"],
                                 end_date=r["Expiration_Date"], source="BIS Denied Persons List",
                                 extra={"fr_citation": r["FR_Citation"]}))
    return entries


def load_watchlist(path: Path) -> list[ListEntry]:
    text = _read_text(path, "utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"id", "name"} <= set(reader.fieldnames):
        raise ListFormatError(f"{path}: line 1: a watch list needs 'id' and 'name' columns")
    entries = []
    for r in reader:
        if not (r.get("name") or "").strip():
            raise ListFormatError(f"{path}: line {reader.line_num}: empty name")
        entries.append(ListEntry(list="watch_list", entry_id=r["id"], name=r["name"].strip(),
                                 aliases=_split(r.get("aliases") or ""),
                                 country=_country_code(r.get("country")), source=path.name))
    return entries


def load_list(path: Path) -> list[ListEntry]:
    """Read a list file, recognising its format from its name and first line."""
    if path.suffix.lower() == ".json":
        return load_csl_json(path)
    if path.name.lower() == "sdn.csv":
        return load_sdn(path)
    head = _read_text(path, "latin-1").splitlines()[0] if path.exists() else ""
    if head.startswith('"Name"\t'):
        return load_dpl(path)
    if head.startswith("_id,source") or head.startswith("source,entity_number"):
        return load_csl_csv(path)
    if head.lower().startswith("id,name"):
        return load_watchlist(path)
    raise ListFormatError(f"{path}: line 1: unrecognised list format")
