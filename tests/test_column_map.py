"""Value maps in the column map: an ERP export that writes facts in its own words
(``China``, ``Yes``) is read as the flat layout without editing it, by every engine, and a
value the map does not name is still read as given - rejected where the layout refuses it,
never guessed."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from chokepoint.batch.columns import (
    CellMap,
    ColumnMap,
    read_column_map,
    recode_row,
    recode_table,
)
from chokepoint.batch.errors import BatchError
from chokepoint.batch.run import layout_warnings, run_batch
from chokepoint.batch.synthetic import write_book
from chokepoint.rules.ruleset import RuleSet

MapRefused = Callable[[Path, Path, str, str], None]  # (the map_refused fixture)

COUNTRIES = {"CN": "China", "NL": "Netherlands", "JP": "Japan", "US": "United States",
             "KR": "Korea, Republic of", "TW": "Taiwan", "MY": "Malaysia", "SG": "Singapore",
             "HK": "Hong Kong", "DE": "Germany", "IN": "India", "VN": "Vietnam"}
BOOLEANS = {"true": "Yes", "false": "No", "": "n/a"}

WORDS = ", ".join(f"{json.dumps(v)}: {k}" for k, v in COUNTRIES.items())
MAP = f"""\
Destination:
  column: to_country
  values: {{{WORDS}}}
"US person?":
  column: exporter_is_us_person
  values: {{"Yes": true, "No": false, "n/a": null}}
item_made_in:
  values: {{{WORDS}}}
Delivery Date:
  column: date
  format: "%d.%m.%Y"
"""


def _erp(rows: list[dict[str, str]]) -> tuple[list[str], list[list[str]]]:
    """The book as an ERP would export it: its own names for two columns, and words for
    countries and booleans (with the spaces some exports pad cells with)."""
    header = [{"to_country": "Destination", "exporter_is_us_person": "US person?",
               "date": "Delivery Date"}.get(c, c) for c in rows[0]]
    out = []
    for n, row in enumerate(rows):
        cells = dict(row)
        for column in ("to_country", "item_made_in"):
            cells[column] = COUNTRIES.get(row[column], row[column])
        cells["exporter_is_us_person"] = BOOLEANS[row["exporter_is_us_person"]]
        if n % 7 == 0:
            cells["to_country"] = f" {cells['to_country']} "
        if row["date"] and n % 5:  # (the export's own date format; a few rows in ISO)
            year, month, day = row["date"].split("-")
            cells["date"] = f"{day}.{month}.{year}"
        out.append(list(cells.values()))
    return header, out


@pytest.fixture
def books(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The synthetic book, its ERP export, and the column map that reads it back."""
    plain = tmp_path / "plain.csv"
    write_book(plain, 1_500, seed=21)
    with plain.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["to_country"] for r in rows} <= set(COUNTRIES) | {""}
    header, cells = _erp(rows)
    erp = tmp_path / "erp.csv"
    with erp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(cells)
    cmap = tmp_path / "map.yaml"
    cmap.write_text(MAP, encoding="utf-8")
    return plain, erp, cmap


def test_every_local_engine_reads_an_erp_export_through_its_value_maps(
        tmp_path: Path, rules: RuleSet, books: tuple[Path, Path, Path]) -> None:
    plain, erp, cmap = books
    run_batch(plain, tmp_path / "want.csv", rules)
    want = (tmp_path / "want.csv").read_bytes()
    assert b"license_required" in want
    for engine, workers in (("scalar", 1), ("columnar", 1), ("columnar", 2)):
        out = tmp_path / f"{engine}{workers}.csv"
        run_batch(erp, out, rules, columns=cmap, engine=engine, workers=workers, block=1000)
        assert out.read_bytes() == want, (engine, workers)
    # a Parquet export: its text read dictionary-encoded by the columnar engine
    with erp.open(encoding="utf-8") as fh:
        names = next(csv.reader(fh))
    table = pacsv.read_csv(erp, convert_options=pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False))
    parquet = tmp_path / "erp.parquet"
    pq.write_table(table, parquet, row_group_size=400)
    for engine in ("scalar", "columnar"):
        out = tmp_path / f"parquet-{engine}.csv"
        run_batch(parquet, out, rules, columns=cmap, engine=engine, block=1000)
        assert out.read_bytes() == want, engine
    # a partitioned dataset whose key is the ERP's, its values in the ERP's words
    lake = tmp_path / "lake.parquet"
    for n, country in enumerate(("China", "Netherlands")):
        rows = table.filter(pc.equal(table.column("Destination"), country))
        (lake / f"Destination={country}").mkdir(parents=True)
        pq.write_table(rows.drop_columns(["Destination"]),
                       lake / f"Destination={country}" / f"part-{n}.parquet")
    for engine in ("scalar", "columnar"):
        out = tmp_path / f"lake-{engine}.csv"
        run_batch(lake, out, rules, columns=cmap, engine=engine)
        with out.open(newline="", encoding="utf-8") as fh:
            got = list(csv.DictReader(fh))
        assert "license_required" in {r["outcome"] for r in got} and len(got) > 100
        with (tmp_path / "want.csv").open(newline="", encoding="utf-8") as fh:
            by_id = {r["id"]: r for r in csv.DictReader(fh)}
        assert all({**r, "row": ""} == {**by_id[r["id"]], "row": ""} for r in got), engine


def test_a_value_the_map_does_not_name_is_read_as_given(tmp_path: Path, rules: RuleSet,
                                                       books: tuple[Path, Path, Path]) -> None:
    _, erp, cmap = books
    text = erp.read_text(encoding="utf-8").splitlines()
    header = text[0].split(",")
    # a country the map does not name (a typo); a case the map does not name
    first = next(csv.reader([text[1]]))
    first[header.index("Destination")] = "Chine"
    second = next(csv.reader([text[2]]))
    second[header.index("US person?")] = "YES"
    third = next(csv.reader([text[3]]))  # (a day the format reads no date in)
    third[header.index("Delivery Date")] = "31.02.2025"
    lines = [text[0], *(",".join(json.dumps(c) for c in row)
                        for row in (first, second, third))]
    erp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for engine in ("scalar", "columnar"):
        out = tmp_path / f"{engine}.csv"
        summary = run_batch(erp, out, rules, columns=cmap, engine=engine)
        assert summary.written == 1 and summary.rejected == 2, engine  # ("YES" is a bool)
        with (tmp_path / f"{engine}.csv.rejects.csv").open(encoding="utf-8") as fh:
            rejects = list(csv.DictReader(fh))
        assert [(r["row"], r["field"]) for r in rejects] == [("1", "to_country"),
                                                             ("3", "date")]
        assert "Chine" in rejects[0]["message"] and "31.02.2025" in rejects[1]["message"]


def test_value_maps_apply_alike_to_a_row_and_to_a_block() -> None:
    recode = {"to_country": CellMap({"China": "CN", "Korea": "KR", "n/a": ""})}
    cells = ["China", " China ", "china", "Korea", "n/a", "", "KR", None, "\u3000China\t"]
    rows = [recode_row({"to_country": c, "id": "x"}, recode)["to_country"] for c in cells]
    assert rows == ["CN", "CN", "china", "KR", "", "", "KR", None, "CN"]
    for array in (pa.array(cells), pa.array(cells).dictionary_encode()):
        table = recode_table(pa.table({"to_country": array, "id": ["x"] * len(cells)}),
                             recode)
        assert table.column("to_country").to_pylist() == rows
        assert table.column("id").to_pylist() == ["x"] * len(cells)
    with pytest.raises(BatchError, match="'to_country' is int64, not text"):
        recode_table(pa.table({"to_country": [1, 2]}), recode)
    day = CellMap({"n/a": ""}, "%d.%m.%Y")
    cells = ["28.11.2026", " 1.2.2025 ", "2026-11-28", "31.02.2025", "n/a", "28/11/2026", ""]
    want = ["2026-11-28", "2025-02-01", "2026-11-28", "31.02.2025", "", "28/11/2026", ""]
    assert [day(c) for c in cells] == want
    table = recode_table(pa.table({"date": cells}), {"date": day})
    assert table.column("date").to_pylist() == want


@pytest.mark.parametrize(("text", "error"), [
    ("Dest:\n  column: to_country\n  values: {Yes: CN}\n",
     "'Dest': the value True is not text to YAML; quote it"),
    ("Dest:\n  column: to_country\n  values: {1: CN}\n", "the value 1 is not text"),
    ("Dest:\n  column: to_country\n  values: [China, CN]\n", "'values' maps their text"),
    ("Dest:\n  column: to_country\n  vals: {China: CN}\n", "has 'values'"),
    ("Dest:\n  column: to_countries\n  values: {China: CN}\n",
     "'Dest' is mapped to 'to_countries', which is not a column"),
    ("Dest:\n  column: to_country\n  values: {' China': CN}\n", "spaces around it"),
    ("Dest:\n  column: to_country\n  values: {China: [CN]}\n", "mapped to ['CN'], not text"),
    ("Dest:\n  column: to_country\n  format: '%d.%m.%Y'\n", "'format' is the date column's"),
    ("Day:\n  column: date\n  format: 'DD.MM.YYYY'\n", "a strptime format such as"),
    ("Dest:\n  column: to_country\n  values: {China: CN}\n"
     "to_country:\n  values: {Japan: JP}\n", "two value maps or formats for 'to_country'"),
])
def test_a_bad_value_map_is_refused_naming_its_entry(tmp_path: Path, text: str,
                                                     error: str) -> None:
    cmap = tmp_path / "map.yaml"
    cmap.write_text(text, encoding="utf-8")
    with pytest.raises(BatchError, match=error.replace("[", r"\[").replace("]", r"\]")):
        read_column_map(cmap)


def test_what_a_column_map_reads(tmp_path: Path, books: tuple[Path, Path, Path]) -> None:
    _, erp, cmap = books
    mapping = read_column_map(cmap)
    assert dict(mapping) == {"Destination": "to_country", "US person?": "exporter_is_us_person",
                             "Delivery Date": "date"}
    assert mapping.cells["date"] == CellMap({}, "%d.%m.%Y")
    assert mapping.cells["exporter_is_us_person"] == CellMap(
        {"Yes": "true", "No": "false", "n/a": ""})
    assert mapping.cells["item_made_in"].values["Korea, Republic of"] == "KR"
    # a value map for a column the book does not have is named before the run
    cmap.write_text(MAP + "party2_country:\n  values: {China: CN}\n", encoding="utf-8")
    assert layout_warnings(erp, cmap)[-1] == (
        f"{cmap}: value map(s) or format(s) for column(s) erp.csv does not have: "
        "'party2_country'")


def test_a_value_map_for_a_parquet_column_that_is_not_text_is_refused(
        tmp_path: Path, map_refused: MapRefused) -> None:
    book = tmp_path / "b.parquet"
    pq.write_table(pa.table({"id": ["a"], "to_country": ["CN"],
                             "exporter_is_us_person": [True]}), book)
    cmap = tmp_path / "map.yaml"
    cmap.write_text("exporter_is_us_person:\n  values: {'Y': true}\n", encoding="utf-8")
    map_refused(book, cmap, "'exporter_is_us_person' is bool, not text", "is bool, not text")


def test_a_resume_with_other_value_maps_is_refused(tmp_path: Path, rules: RuleSet,
                                                   books: tuple[Path, Path, Path]) -> None:
    _, erp, cmap = books
    out = tmp_path / "out.csv"
    run_batch(erp, out, rules, columns=cmap)
    # an interrupted run's checkpoint, as run_batch leaves it (the run file records the map)
    checkpoint = out.with_name(out.name + ".checkpoint")
    checkpoint.write_text(json.dumps({"rows": 0, "bytes": 0, "reject_bytes": 0}))
    run_file = checkpoint.with_name(checkpoint.name + ".run")
    from chokepoint.batch.run import run_identity

    identity = run_identity(erp, None, read_column_map(cmap), False, rules)
    run_file.write_text(json.dumps({**identity, "today": "2026-11-28"}))
    cmap.write_text(MAP.replace('"n/a": null', '"n/a": false'), encoding="utf-8")
    with pytest.raises(BatchError, match=r"--columns \(its value maps and formats\) differ"):
        run_batch(erp, out, rules, columns=cmap, resume=True)
    assert ColumnMap({"a": "id"}) == {"a": "id"}  # (a map of renames alone: as before)


def test_the_sample_erp_export_reads_through_its_column_map(tmp_path: Path) -> None:
    """examples/erp: an ERP export with its own names and words for countries and lists,
    and the map that reads it; every row answered, none rejected."""
    erp = Path(__file__).resolve().parents[1] / "examples" / "erp"
    out = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(erp / "orders.csv"),
                           str(out), "--columns", str(erp / "columns.yaml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "6 rows: 6 determined, 0 rejected" in done.stderr
    assert "1 column(s) not in the flat layout, not read: 'Plant Notes'" in done.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert rows["4500012001"]["as_of"] == "2025-06-02"  # (read as 02.06.2025)
    # a US-made H100 shipped from the United States to China needs a US licence
    assert rows["4500012001"]["US_outcome"] == "license_required"
    # the Dutch scanner shipped from the Netherlands is read under the Dutch regime
    assert rows["4500012002"]["NL_outcome"] == "license_required"


def test_a_column_map_for_a_json_lines_book_is_refused(tmp_path: Path,
                                                      map_refused: MapRefused) -> None:
    """A JSON Lines book holds contract transactions: there are no columns to map, and a
    map given for it would be ignored."""
    book = tmp_path / "b.jsonl"
    book.write_text(json.dumps({"id": "j1", "to_country": "China"}) + "\n")
    cmap = tmp_path / "map.yaml"
    cmap.write_text("to_country:\n  values: {China: CN}\n", encoding="utf-8")
    map_refused(book, cmap, "a JSON Lines book holds contract transactions",
                "--columns maps the columns of a CSV or Parquet book")
