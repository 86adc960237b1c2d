"""The column map (``--columns map.yaml``): a user's ERP export read as the flat layout
without editing it - its column names renamed to the layout's, and, where the export
writes a fact in its own words (``China``, ``Y``), its values recoded to the layout's.

```yaml
Order No: id                    # a rename
Destination:                    # a rename with a value map
  column: to_country
  values: {China: CN, Hong Kong: HK, "": ""}
exporter_is_us_person:          # a value map alone (``column`` defaults to the key)
  values: {"Yes": "true", "No": "false", "n/a": null}
```

A value map replaces a cell whose text (surrounding spaces aside) is one of its keys,
exactly as written (case and all); any other cell is read as it is, so a value the layout
does not accept is still rejected with its row, never guessed. ``null`` (or ``""``) maps
to an empty cell: unknown. The whole cell is matched, list cells included. Keys must be
YAML text: an unquoted ``Yes``, ``1`` or ``null`` is read by YAML as a boolean, number or
null, whose text in the export is not known, so it is refused with a hint to quote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from chokepoint.batch.errors import BatchError
from chokepoint.batch.flat import LAYOUT
from chokepoint.rules.loader import strict_yaml


class ColumnMap(dict[str, str]):
    """``{their column: the layout's}`` (a dict, as every reader renames by it), with the
    value maps in :attr:`recode`: ``{layout column: {their text: the layout's}}``."""

    def __init__(self, renames: Mapping[str, str] | None = None,
                 recode: Mapping[str, Mapping[str, str]] | None = None) -> None:
        super().__init__(renames or {})
        self.recode: dict[str, dict[str, str]] = {k: dict(v) for k, v in (recode or {}).items()}


def value_maps(mapping: Mapping[str, str] | None) -> dict[str, dict[str, str]]:
    """The value maps of a column map (none for a plain dict of renames)."""
    return mapping.recode if isinstance(mapping, ColumnMap) else {}


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
    recode: dict[str, dict[str, str]] = {}
    for theirs, entry in data.items():
        if isinstance(entry, dict):
            unknown = set(entry) - {"column", "values"}
            if unknown or "values" not in entry:
                raise BatchError(f"{path}: {theirs!r}: an entry with a value map has "
                                 "'values' (and may have 'column'), not "
                                 + ", ".join(map(repr, sorted(map(str, unknown)))))
            ours = entry.get("column", theirs)
            values = _values(path, theirs, entry["values"])
        else:
            ours, values = entry, None
        if not isinstance(ours, str):
            raise BatchError(f"{path}: a column map is 'their column: our column' pairs")
        if ours not in LAYOUT:
            raise BatchError(f"{path}: {theirs!r} is mapped to {ours!r}, which is not a "
                             "column of the flat layout (docs/batch.md)")
        if values is not None:
            if ours in recode:
                raise BatchError(f"{path}: two value maps for {ours!r}")
            recode[ours] = values
        if str(theirs) != ours or values is None:
            renames[str(theirs)] = ours
    return ColumnMap(renames, recode)


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


def recode_row(row: dict[str, Any], recode: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A row's cells (already renamed) with the value maps applied (the row itself)."""
    for column, values in recode.items():
        cell = row.get(column)
        if isinstance(cell, str):
            row[column] = values.get(cell.strip(), cell)
    return row


def recode_table(table: pa.Table, recode: dict[str, dict[str, str]]) -> pa.Table:
    """A block's columns (already renamed) with the value maps applied, as
    :func:`recode_row` applies them (the same Python lookup, once per distinct text of
    each chunk); a recoded column comes back dictionary-encoded."""
    from chokepoint.batch.columnar.arrow import strings

    for column, values in recode.items():
        if column not in table.column_names:
            continue
        cells = table.column(column)
        kind = cells.type.value_type if pa.types.is_dictionary(cells.type) else cells.type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise BatchError(f"the column {column!r} is {kind}, not text; a value map "
                             "(--columns) reads text cells")
        chunks = []
        for chunk in cells.chunks:
            coded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
            texts = [values.get(v.strip(), v) if v is not None else ""
                     for v in coded.dictionary.to_pylist()]
            chunks.append(pa.DictionaryArray.from_arrays(coded.indices, strings(texts)))
        if chunks:
            table = table.set_column(table.column_names.index(column), column,
                                     pa.chunked_array(chunks))
    return table


def text_columns_only(book: str, names: list[str], types: list[pa.DataType],
                      mapping: Mapping[str, str]) -> None:
    """BatchError when a value map is given for a Parquet column that is not text (its
    values are not written as text, so no text of the map would match)."""
    recode = value_maps(mapping)
    for name, kind in zip(names, types, strict=False):
        ours = mapping.get(name, name)
        if ours in recode and not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
                                   or (pa.types.is_dictionary(kind)
                                       and pa.types.is_string(kind.value_type))):
            raise BatchError(f"{book}: the column {name!r} is {kind}, not text; a value "
                             "map (--columns) reads text cells")
