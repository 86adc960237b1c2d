"""The column map (``--columns map.yaml``): a user's ERP export read as the flat layout
without editing it - its column names renamed to the layout's and, where the export
writes a fact in its own words (``China``, ``Y``) or its dates in its own format
(``28.11.2026``), its cells converted to the layout's.

```yaml
Order No: id                    # a rename
Destination:                    # a rename with a value map
  column: to_country
  values: {China: CN, Hong Kong: HK}
exporter_is_us_person:          # a value map alone (``column`` defaults to the key)
  values: {"Yes": true, "No": false, "n/a": null}
Delivery Date:                  # the date column's format (Python's strptime codes)
  column: date
  format: "%d.%m.%Y"
```

A value map replaces a cell whose text (surrounding spaces aside) is one of its keys,
exactly as written (case and all); ``null`` (or ``""``) maps to an empty cell: unknown.
The whole cell is matched, list cells included. A date ``format`` turns a cell it reads
into ``YYYY-MM-DD``. Any other cell is read as it is, so a value the layout does not
accept is still rejected with its row, never guessed. Keys must be YAML text: an unquoted
``Yes``, ``1`` or ``null`` is read by YAML as a boolean, number or null, whose text in the
export is not known, so it is refused with a hint to quote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from chokepoint.batch.errors import BatchError
from chokepoint.batch.flat import LAYOUT
from chokepoint.rules.loader import strict_yaml

DATE_COLUMN = "date"  # (the one column a date format applies to)


@dataclass(frozen=True)
class CellMap:
    """How one layout column's cells are converted: ``values`` (their text: the layout's),
    then ``date_format`` (a strptime format) for the cells no value names."""

    values: dict[str, str] = field(default_factory=dict)
    date_format: str | None = None

    def __call__(self, cell: str) -> str:
        text = cell.strip()
        if text in self.values:
            return self.values[text]
        if self.date_format is not None and text:
            try:
                return datetime.strptime(text, self.date_format).date().isoformat()
            except ValueError:  # (read as it is: the layout rejects it, naming the cell)
                pass
        return cell

    def record(self) -> dict[str, Any]:
        """As JSON, for the run a checkpoint records (--resume)."""
        return {"values": self.values, "format": self.date_format}


class ColumnMap(dict[str, str]):
    """``{their column: the layout's}`` (a dict, as every reader renames by it), with the
    conversions of cells in :attr:`cells`: ``{layout column: CellMap}``."""

    def __init__(self, renames: Mapping[str, str] | None = None,
                 cells: Mapping[str, CellMap] | None = None) -> None:
        super().__init__(renames or {})
        self.cells: dict[str, CellMap] = dict(cells or {})


def cell_maps(mapping: Mapping[str, str] | None) -> dict[str, CellMap]:
    """The cell conversions of a column map (none for a plain dict of renames)."""
    return mapping.cells if isinstance(mapping, ColumnMap) else {}


def read_column_map(path: Path | None) -> ColumnMap:
    """A column map file; every target must be a column of the flat layout (a misspelt
    one would leave its fact unknown on every row). BatchError naming the entry."""
    if path is None:
        return ColumnMap()
    try:
        data = strict_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BatchError(f"{path}: not a valid column map: {exc}") from exc
    if not isinstance(data, dict):
        raise BatchError(f"{path}: a column map is 'their column: our column' pairs")
    renames: dict[str, str] = {}
    cells: dict[str, CellMap] = {}
    for theirs, entry in data.items():
        converted = None
        if isinstance(entry, dict):
            ours = entry.get("column", theirs)
            converted = _cell_map(path, theirs, ours, entry)
        else:
            ours = entry
        if not isinstance(ours, str):
            raise BatchError(f"{path}: a column map is 'their column: our column' pairs")
        if ours not in LAYOUT:
            raise BatchError(f"{path}: {theirs!r} is mapped to {ours!r}, which is not a "
                             "column of the flat layout (docs/batch.md)")
        if converted is not None:
            if ours in cells:
                raise BatchError(f"{path}: two value maps or formats for {ours!r}")
            cells[ours] = converted
        if str(theirs) != ours or converted is None:
            renames[str(theirs)] = ours
    return ColumnMap(renames, cells)


def _cell_map(path: Path, theirs: Any, ours: Any, entry: dict[Any, Any]) -> CellMap:
    unknown = set(map(str, entry)) - {"column", "values", "format"}
    if unknown or not {"values", "format"} & set(entry):
        raise BatchError(f"{path}: {theirs!r}: an entry of its own has 'values' or "
                         "'format' (and may have 'column')"
                         + (", not " + ", ".join(map(repr, sorted(unknown))) if unknown
                            else ""))
    date_format = entry.get("format")
    if date_format is not None and (ours != DATE_COLUMN or not isinstance(date_format, str)
                                    or "%" not in date_format):
        raise BatchError(f"{path}: {theirs!r}: 'format' is the date column's, a "
                         "strptime format such as \"%d.%m.%Y\"")
    return CellMap(_values(path, theirs, entry.get("values", {})), date_format)


def _values(path: Path, column: Any, values: Any) -> dict[str, str]:
    if not isinstance(values, dict):
        raise BatchError(f"{path}: {column!r}: 'values' maps their text to the layout's")
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise BatchError(f"{path}: {column!r}: the value {key!r} is not text to YAML; "
                             "quote it as it is written in the export (e.g. \"Yes\", "
                             "\"1\", \"null\")")
        if isinstance(value, bool):  # (true/false: the layout's booleans)
            value = "true" if value else "false"
        elif value is None:  # (unknown: an empty cell)
            value = ""
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise BatchError(f"{path}: {column!r}: {key!r} is mapped to {value!r}, not text")
        if key.strip() != key:
            raise BatchError(f"{path}: {column!r}: the value {key!r} has spaces around "
                             "it; cells are matched without them")
        out[key] = value
    return out


def recode_row(row: dict[str, Any], cells: dict[str, CellMap]) -> dict[str, Any]:
    """A row's cells (already renamed) converted by the column map (the row itself)."""
    for column, convert in cells.items():
        cell = row.get(column)
        if isinstance(cell, str):
            row[column] = convert(cell)
    return row


def recode_table(table: pa.Table, cells: dict[str, CellMap]) -> pa.Table:
    """A block's columns (already renamed) converted as :func:`recode_row` converts a
    row's (the same Python code, once per distinct text of each chunk); a converted
    column comes back dictionary-encoded."""
    from chokepoint.batch.columnar.arrow import strings

    for column, convert in cells.items():
        if column not in table.column_names:
            continue
        found = table.column(column)
        if not is_text(found.type):
            raise not_text(None, column, found.type)
        chunks = []
        for chunk in found.chunks:
            coded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
            texts = [convert(v) if v is not None else ""
                     for v in coded.dictionary.to_pylist()]
            chunks.append(pa.DictionaryArray.from_arrays(coded.indices, strings(texts)))
        if chunks:
            table = table.set_column(table.column_names.index(column), column,
                                     pa.chunked_array(chunks))
    return table


def is_text(kind: pa.DataType) -> bool:
    """Whether a column of this Arrow type holds text (dictionary-encoded or not)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def not_text(book: str | None, column: str, kind: Any) -> BatchError:
    """The refusal of a value map or date format for a column that is not text (its
    values are not written as text, so no text of the map would match)."""
    return BatchError(f"{book + ': ' if book else ''}the column {column!r} is {kind}, not "
                      "text; a value map or date format (--columns) reads text cells")


def text_columns_only(book: str, names: list[str], types: list[pa.DataType],
                      mapping: Mapping[str, str]) -> None:
    """BatchError when the column map converts the cells of a column that is not text."""
    cells = cell_maps(mapping)
    for name, kind in zip(names, types, strict=False):
        if mapping.get(name, name) in cells and not is_text(kind):
            raise not_text(book, name, kind)
