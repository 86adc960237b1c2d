"""The columnar batch path gives the scalar engine's answers, row by row.

The columnar path evaluates each rule once per distinct set of the facts it reads and
spreads the answer back to the rows; these tests compare it with the scalar path on random
books (hypothesis: unknown, invalid and multi-party rows, dates across rule changes, HK
aliases, listed and unscreened parties) and on a fixed 10,000-row synthetic book.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chokepoint.batch.columnar import Unsupported, evaluate_table
from chokepoint.batch.columnar_run import evaluate_block
from chokepoint.batch.errors import BatchError
from chokepoint.batch.flat import COLUMNS, MAX_PARTIES, PARTY_COLUMNS
from chokepoint.batch.run import OUT_COLUMNS, REGIMES, evaluate_row, run_batch
from chokepoint.rules.loader import default_rules
from chokepoint.rules.predicate import fact_reads, parse_predicate
from chokepoint.rules.ruleset import RuleSet

ROOT = Path(__file__).resolve().parents[1]

TODAY = date(2026, 11, 26)
RULES = default_rules()
LISTED = sorted({e.name for entries in RULES.entities.values() for e in entries})[:6]
MODELS = sorted({e.model for e in RULES.catalogue.values()})

# every day a rule value changes and the day before, from the rule data (a new rule's
# dates are drawn as soon as its file has them), and days inside intervals
CHANGES = RULES.change_dates()
DAYS = sorted({str(d + timedelta(days=k)) for d in CHANGES for k in (-1, 0)}
              | {"2019-05-01", "2023-01-01", "2023-10-17", "2025-06-01", "2026-11-26",
                 "2027-02-01"})
VALUES: dict[str, list[str]] = {
    "date": ["", *DAYS, "2024-13-01"],
    "activity": ["", "export", "reexport", "transfer_in_country", "service", "lend"],
    "country": ["", "CN", "HK", "MO", "US", "NL", "JP", "KR", "TW", "SG", "MY", "DE", "RU",
                "China"],
    "bool": ["", "true", "false", "maybe"],
    "kind": ["", "chip", "sme", "sme_part_or_component", "other", "software"],
    "eccn": ["", "3A090.a", "3A090", "4A090.a", "3B001.a.4", "3B001.p.2", "3B993", "3B090.a",
             "5A992.z", "3A001.z", "EAR99", "3A991"],
    "model": ["", *MODELS],  # chips and tools (a tool's ECCN and list status too)
    "tpp": ["", "300", "1600", "2400", "4800", "6000", "abc", "nan", "inf"],
    "area": ["", "100", "600", "814"],
    "tops": ["", "100", "600", "1979"],  # (x 8 bits: 800, 4800 = a tier's TPP, 15832)
    "bits": ["", "8", "16"],
    "density": ["", "1.5", "2", "2.5", "3.3", "5"],  # memory bandwidth density (3A090.c)
    "gbps": ["", "100", "600", "900", "4000", "8000"],  # interconnect, memory bandwidth
    "transistors": ["", "10000000000", "30000000000", "40000000000"],
    "share": ["", "0", "0.05", "0.1", "0.25", "0.3"],
    "items": ["", "none", "3A090.a:ic", "3A991:ic;3D992:software", ":ic"],
    "technology": ["", "none", "3E001", "3D001;3E001", "3E991"],
    "listing": ["", "-", "3B001.a", "Cat.3"],
    "end_uses": ["", "none", "advanced_node_ic_development_or_production",
                 "ai_model_training", "ic_development_or_production_other",
                 "supercomputer;ai_model_training"],
    "assertions": ["", "back_end_only", "package_without_hbm;equivalent_review_policy",
                   "employer_not_majority_owned_from_d5", "back-end-only"],
    "exporter": ["", "NVIDIA Corporation", "Nvidia Corporation", "Applied Materials",
                 "Tokyo Electron"],  # the is-informed letters name their exporter
    "party": ["", *LISTED, "Buyer 7 Electronics Co., Ltd.", "中芯国际集成电路制造有限公司",
              "Semiconductor Manufacturing International Corp"],
    "role": ["", "end_user", "ultimate_consignee", "purchaser", "intermediate_consignee",
             "banker"],
    "designations": ["", "none", "entity_list", "entity_list:1", "entity_list:5,1", "sdn",
                     "entity_list:x", "denied_persons", "Entity List:4"],
}
KIND_OF = {"date": "date", "activity": "activity", "from_country": "country",
           "to_country": "country", "exporter_name": "exporter", "exporter_country": "country",
           "exporter_headquartered_in": "country", "exporter_is_us_person": "bool",
           "item_kind": "kind", "item_eccn": "eccn", "item_model": "model",
           "item_made_in": "country", "chip_tpp": "tpp", "chip_tops": "tops",
           "chip_bit_length": "bits", "chip_die_area_mm2": "area",
           "chip_datacenter": "bool", "chip_interconnect_bandwidth_gbps": "gbps",
           "chip_memory_bandwidth_gbps": "gbps",
           "chip_memory_bandwidth_density_gbps_per_mm2": "density",
           "chip_transistor_count": "transistors", "us_controlled_share": "share",
           "us_incorporated_items": "items", "us_direct_product_of": "technology",
           "us_plant_direct_product_of": "technology",
           "us_contains_ic_made_by_plant_direct_product_of": "technology",
           "national_NL": "listing", "national_JP": "listing", "end_uses": "end_uses",
           "us_person_support": "bool", "assertions": "assertions"}
PARTY_KIND = {"name": "party", "role": "role", "country": "country",
              "headquartered_in": "country", "designations": "designations",
              "at_advanced_node_facility": "bool"}
MOSTLY_GIVEN = ("to_country", "date")


def _party_prefix(slot: int) -> str:
    return "party_" if slot == 1 else f"party{slot}_"


@st.composite
def flat_rows(draw: Any) -> dict[str, str]:
    row: dict[str, str] = {"id": f" SO-{draw(st.integers(0, 99))} "}
    for column, kind in KIND_OF.items():
        values = VALUES[kind]
        if column in MOSTLY_GIVEN:
            values = [v for v in values if v] * 6 + values
        row[column] = draw(st.sampled_from(values))
    for slot in range(1, draw(st.integers(0, MAX_PARTIES)) + 1):
        for key, kind in PARTY_KIND.items():
            row[_party_prefix(slot) + key] = draw(st.sampled_from(VALUES[kind]))
    return row


def _table(rows: list[dict[str, str]]) -> pa.Table:
    columns = ["id", *KIND_OF, *(_party_prefix(s) + k for s in range(1, MAX_PARTIES + 1)
                                 for k in PARTY_COLUMNS)]
    return pa.table({c: pa.array([r.get(c, "") for r in rows], type=pa.string())
                     for c in columns})


def _scalar(rows: list[dict[str, str]], override: date | None
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ok, rejects = [], []
    for n, row in enumerate(rows, 1):
        raw = {c: row.get(c, "") for c in _table([row]).column_names}
        kind, out = evaluate_row((n, raw), RULES, override, TODAY, False)
        (ok if kind == "ok" else rejects).append(out)
    return ok, rejects


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows=st.lists(flat_rows(), min_size=1, max_size=40),
       override=st.one_of(st.none(), st.sampled_from([*CHANGES, date(2023, 6, 1)])))
def test_columnar_answers_equal_the_scalar_engine_row_by_row(
        rows: list[dict[str, str]], override: date | None) -> None:
    result, rejects = evaluate_block(_table(rows), 1, RULES, override, TODAY, OUT_COLUMNS)
    ok, scalar_rejects = _scalar(rows, override)
    assert result.to_pylist() == ok
    assert rejects == scalar_rejects


def test_rows_that_differ_only_in_id_and_day_share_the_scalar_answer() -> None:
    """Rows that differ only in id and date (within one interval of unchanged rules) get
    the one answer the scalar engine gives each of them."""
    base = {"to_country": "CN", "item_kind": "chip", "item_model": "H100 SXM",
            "party_name": LISTED[0], "party_role": "end_user"}
    rows = [{**base, "id": f"x{i}", "date": f"2025-06-{1 + i % 28:02d}"} for i in range(3000)]
    result, rejects = evaluate_block(_table(rows), 1, RULES, None, TODAY, OUT_COLUMNS)
    assert not rejects and result.num_rows == 3000
    assert len(set(result.column("outcome").to_pylist())) == 1
    sample = [rows[0], rows[1234], rows[2999]]
    ok, _ = _scalar(sample, None)
    got = result.to_pylist()
    for want, n in zip(ok, (1, 1235, 3000), strict=True):
        assert got[n - 1] == {**want, "row": n}


def test_the_fixed_10000_row_book_gives_identical_rows(tmp_path: Path, rules: RuleSet) -> None:
    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 10_000, seed=11)
    scalar, columnar = tmp_path / "scalar.parquet", tmp_path / "columnar.parquet"
    one = run_batch(src, scalar, rules, today=TODAY)
    two = run_batch(src, columnar, rules, today=TODAY, engine="columnar")
    assert (one.written, one.rejected, one.outcomes) == (two.written, two.rejected,
                                                          two.outcomes)
    assert pq.read_table(columnar).to_pylist() == pq.read_table(scalar).to_pylist()
    assert set(one.outcomes or {}) == {"license_required", "no_license_required",
                                       "not_subject", "undetermined"}
    # the closing lines' count of the facts the answers lack: per row, each field once
    lacking: dict[str, int] = {}
    for cell in pq.read_table(scalar).column("missing_facts").to_pylist():
        for field in {item.split(":", 1)[1] for item in cell.split(";") if item}:
            lacking[field] = lacking.get(field, 0) + 1
    assert one.missing == two.missing == lacking
    assert len(lacking) > 10 and lacking["parties[0].designations"] > 100


def test_csv_books_with_bad_rows_give_the_same_rows_and_rejects(tmp_path: Path,
                                                                 rules: RuleSet) -> None:
    src = tmp_path / "book.csv"
    header = ("id,date,to_country,item_kind,item_model,item_eccn,chip_tpp,party_name,"
              "party_designations,end_uses\n")
    src.write_text(header + (
        "a1,2025-06-02,CN,chip,H100 SXM,,,Buyer 1,none,none\n"
        "a2,2025-06-02,CN,chip,,,abc,Buyer 1,none,none\n"          # not a number
        "a3,2025-06-02,China,other,,EAR99,,X,,none\n"               # not a country code
        "a4,2025-13-02,CN,other,,EAR99,,X,,none\n"                  # not a date
        "a5,2024-01-10,HK,sme,TWINSCAN NXT:2000i,,,Buyer 2,,\n"
        "a6,2023-05-01,SG,other,,3A090.a,,Buyer 3,entity_list:x,\n"  # bad footnote
        "a7,,MO,chip,,3A090.a,4800,Buyer 3,none,ai_model_training\n") * 3)
    for engine in ("scalar", "columnar"):
        run_batch(src, tmp_path / f"{engine}.csv", rules, today=TODAY, engine=engine)

    def read(name: str) -> list[dict[str, str]]:
        with (tmp_path / name).open(newline="") as fh:
            return list(csv.DictReader(fh))

    assert read("columnar.csv") == read("scalar.csv") and len(read("scalar.csv")) == 9
    assert (tmp_path / "columnar.csv.rejects.csv").read_text() == (
        tmp_path / "scalar.csv.rejects.csv").read_text()
    assert len(read("scalar.csv.rejects.csv")) == 12


def test_numbers_that_are_not_finite_and_other_lists_read_alike_in_both_engines(
        tmp_path: Path, rules: RuleSet) -> None:
    """A cell of "nan", "inf" or a number too large for a float is rejected with its row
    (an "inf" stopped the whole batch with a traceback in both engines), a fraction in an
    int column is rejected rather than rounded, a NaN in a Parquet float column is unknown,
    a party on a list chokepoint does not encode leaves the US answer open, and an
    assertion no rule reads (misspelt) is rejected rather than read as not made."""
    rows = [
        {"id": "n1", "chip_tops": "500", "chip_bit_length": "8"},
        {"id": "n2", "chip_tops": "nan", "chip_bit_length": "8"},
        {"id": "n3", "chip_tops": "inf", "chip_bit_length": "8"},
        {"id": "n4", "chip_tops": "1e999", "chip_bit_length": "8"},
        {"id": "n5", "chip_tops": "500", "chip_bit_length": "8.9"},
        {"id": "n6", "chip_tops": "500", "chip_bit_length": "8.0"},
        {"id": "d1", "item_kind": "other", "item_eccn": "EAR99",
         "party_designations": "denied_persons"},
        {"id": "d2", "item_kind": "other", "item_eccn": "EAR99",
         "party_designations": "Entity List:4"},
        {"id": "d3", "item_kind": "other", "item_eccn": "EAR99",
         "party_designations": "none"},
        {"id": "a1", "assertions": "advanced_node_ic_is_logic"},
        {"id": "a2", "assertions": "advanced_node_ic_is_logic;advanced_node_ic_is_LOGIC"},
    ]
    base = {"date": "2025-06-02", "activity": "export", "from_country": "US",
            "to_country": "CN", "exporter_name": "Acme", "exporter_country": "US",
            "exporter_headquartered_in": "US", "item_kind": "chip", "item_made_in": "TW",
            "chip_die_area_mm2": "800", "chip_datacenter": "true",
            "us_controlled_share": "0", "end_uses": "none", "us_person_support": "false",
            "party_name": "Example Buyer", "party_role": "end_user", "party_country": "CN",
            "party_designations": "none"}
    book = [{**base, **r} for r in rows]
    src = tmp_path / "book.csv"
    with src.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list({k: 0 for r in book for k in r}))
        writer.writeheader()
        writer.writerows(book)
    for engine in ("scalar", "columnar"):
        run_batch(src, tmp_path / f"{engine}.csv", rules, today=TODAY, engine=engine)

    def read(name: str) -> list[dict[str, str]]:
        with (tmp_path / name).open(newline="") as fh:
            return list(csv.DictReader(fh))

    assert read("columnar.csv") == read("scalar.csv")
    assert read("columnar.csv.rejects.csv") == read("scalar.csv.rejects.csv")
    rejects = {r["id"]: r["message"] for r in read("scalar.csv.rejects.csv")}
    assert rejects == {
        "n2": "row 2 (id 'n2'): chip_tops: not a finite number: 'nan'",
        "n3": "row 3 (id 'n3'): chip_tops: not a finite number: 'inf'",
        "n4": "row 4 (id 'n4'): chip_tops: not a finite number: '1e999'",
        "n5": "row 5 (id 'n5'): chip_bit_length: not a whole number: '8.9'",
        "a2": "row 11 (id 'a2'): assertions[1]: 'advanced_node_ic_is_LOGIC' is not a "
              "statement any rule reads (did you mean 'advanced_node_ic_is_logic'?)"}
    assert [r["id"] for r in read("scalar.csv")] == ["n1", "n6", "d1", "d2", "d3", "a1"]
    got = {r["id"]: r for r in read("scalar.csv")}
    assert got["n1"]["US_outcome"] == got["n6"]["US_outcome"] == "license_required"
    for listed in ("d1", "d2"):
        assert got[listed]["US_outcome"] == "undetermined"
        assert "US:rules:US:designation_lists" in got[listed]["missing_facts"].split(";")
    assert got["d3"]["US_outcome"] == "no_license_required"
    # a Parquet float column: NaN is unknown (as a null), infinity is rejected
    floats = pa.table({**{k: [r.get(k) for r in book[:2]] for k in book[0]},
                       "chip_tops": pa.array([float("nan"), float("inf")], pa.float64())})
    pq.write_table(floats, tmp_path / "floats.parquet")
    for engine in ("scalar", "columnar"):
        run_batch(tmp_path / "floats.parquet", tmp_path / f"f-{engine}.csv", rules,
                  today=TODAY, engine=engine)
    assert read("f-columnar.csv") == read("f-scalar.csv")
    assert read("f-columnar.csv.rejects.csv") == read("f-scalar.csv.rejects.csv")
    (answered,) = read("f-scalar.csv")
    assert answered["id"] == "n1" and answered["US_outcome"] == "undetermined"
    assert "US:item.chip.tops" in answered["missing_facts"].split(";")
    assert [r["id"] for r in read("f-scalar.csv.rejects.csv")] == ["n2"]


def test_an_interrupted_columnar_run_resumes_to_the_rows_of_a_clean_run(
        tmp_path: Path, rules: RuleSet, interrupt: Any) -> None:
    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 3500, seed=5)
    clean, out = tmp_path / "clean.parquet", tmp_path / "out.parquet"
    run_batch(src, clean, rules, today=TODAY)

    interrupt(lambda progress: run_batch(src, out, rules, today=TODAY, engine="columnar",
                                         progress=progress, block=1000), 2000)
    assert not out.exists() and (tmp_path / "out.parquet.checkpoint").exists()
    summary = run_batch(src, out, rules, today=TODAY, engine="columnar", resume=True,
                        block=1000)
    assert summary.rows == 3500
    assert pq.read_table(out).to_pylist() == pq.read_table(clean).to_pylist()


def test_two_processes_give_the_rows_of_one(tmp_path: Path, rules: RuleSet) -> None:
    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 2500, seed=9)
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    run_batch(src, one, rules, today=TODAY, engine="columnar", block=700)
    run_batch(src, two, rules, today=TODAY, engine="columnar", workers=2, block=700)
    assert pq.read_table(one).to_pylist() == pq.read_table(two).to_pylist()
    # the same bytes too: nothing in the file depends on what a process evaluated before
    assert one.read_bytes() == two.read_bytes()


def test_what_the_columnar_engine_refuses(tmp_path: Path, rules: RuleSet) -> None:
    src = tmp_path / "book.jsonl"
    src.write_text('{"item": {}, "to_country": "CN"}\n')
    with pytest.raises(BatchError, match="reads .csv or .parquet"):
        run_batch(src, tmp_path / "out.csv", rules, engine="columnar")
    with pytest.raises(BatchError, match="--trace"):
        run_batch(src, tmp_path / "out.csv", rules, engine="columnar", with_trace=True)
    lists = pa.table({"id": ["a"], "to_country": ["CN"], "end_uses": [["ai_model_training"]]})
    with pytest.raises(Unsupported, match="list"):
        evaluate_table(lists, rules, None, TODAY, 1, REGIMES, OUT_COLUMNS)


def test_fact_reads_name_what_a_predicate_can_look_at() -> None:
    pred = parse_predicate({"all": [
        {"fact": "item.eccn", "eccn_in": ["3A090"]},
        {"exists": {"over": "parties", "where": {"any": [
            {"fact": "designations", "is_empty": True},
            {"fact": "$.to_country", "in_group": "D:5"}]}}},
        {"ref": "734.3(a)(1)"},
        {"assertion": "back_end_only"},
        {"listed_by": "from_country"}]})
    reads = fact_reads(pred)
    assert reads.paths == {"item.eccn", "to_country", "from_country",
                           "item.national_classifications"}
    assert reads.lists == {"parties": {"designations"}}
    assert reads.refs == {"734.3(a)(1)"} and reads.assertions


def test_day_data_reads_name_the_parameters_and_groups_and_know_every_node() -> None:
    from typing import get_args

    from chokepoint.rules import predicate

    pred = parse_predicate({"all": [
        {"fact": "item.eccn", "eccn_in": {"param": "us.ear.734.9.h.products"}},
        {"exists": {"over": "parties", "where": {"fact": "$.to_country", "in_group": "D:5"}}},
        {"not": {"fact": "item.us_content", "gt": {"param": "us.ear.734.4.d.threshold"}}},
        {"ref": "734.3(a)(1)"}]})
    assert predicate.day_data_reads(pred) == (
        ("us.ear.734.4.d.threshold", "us.ear.734.9.h.products"), ("D:5",))
    # every kind of node is placed: one that reads rule data some other way must say so
    assert set(get_args(predicate.Pred)) == {*predicate._DAY_BLIND, predicate.InGroup}

    class Novel:
        pass

    with pytest.raises(TypeError, match="Novel"):
        predicate.day_data_reads(Novel())  # type: ignore[arg-type]


def test_rule_intervals_are_told_apart_only_by_the_rule_data_a_node_reads() -> None:
    """A node's answers are kept by its facts and by which intervals of unchanged rules
    differ in the parameters and groups it reads: rows of one order on many days are
    evaluated by the engine's code once per interval that can change the answer."""
    import numpy as np

    from chokepoint.batch.columnar.book import Book
    from chokepoint.batch.columnar.evaluator import Evaluator
    from chokepoint.rules.loader import load_rules
    from chokepoint.rules.predicate import ParamRef, parse_predicate

    rules = load_rules()
    days = ["2022-11-01", "2023-06-01", "2023-11-16", "2023-11-17", "2024-06-01",
            "2025-01-15", "2026-01-01"]
    base = {"to_country": "CN", "item_kind": "chip", "item_eccn": "4A090.a",
            "party_name": "Buyer 7 Electronics Co., Ltd.", "party_role": "end_user"}
    rows = [{**base, "id": f"o{i}", "date": d} for i, d in enumerate(days)]
    book = Book(_table(rows), rules, None, TODAY)
    assert len(set(book.epoch.tolist())) >= 4  # the days fall in several intervals
    ev = Evaluator(book, rules)
    live = np.ones(book.epoch_size, dtype=np.bool_)
    blind, size = ev.data_epoch(parse_predicate({"fact": "to_country", "eq": "CN"}), live)
    assert len(set(blind.tolist())) == 1
    products = parse_predicate({"fact": "item.eccn",
                                "eccn_in": {"param": "us.ear.734.9.h.products"}})
    assert ParamRef("us.ear.734.9.h.products") == products.eccns  # type: ignore[union-attr]
    codes = ev.data_epoch(products, live)[0].tolist()
    # its list grew on 2023-11-17 (rule data): told apart there and nowhere else
    assert codes[:3] == [codes[0]] * 3 and codes[3:] == [codes[3]] * 4
    assert codes[0] != codes[3]
    # a version not in force in one interval: that interval apart too
    off = live.copy()
    off[book.epoch[5]] = False
    cut = ev.data_epoch(products, off)[0].tolist()
    assert cut[5] not in (cut[4], cut[6]) and cut[4] == cut[6]
    # and the answers are the scalar engine's, day by day
    result, _ = evaluate_block(_table(rows), 1, rules, None, TODAY, OUT_COLUMNS)
    ok, _ = _scalar(rows, None)
    assert result.to_pylist() == ok


def test_change_dates_include_the_december_2024_rule() -> None:
    days = RULES.change_dates()
    assert date(2024, 12, 2) in days and days == sorted(days)
    assert all(isinstance(d, date) for d in days)
    assert set(COLUMNS) >= set(KIND_OF)


@pytest.mark.parametrize("name", ["multilateral", "unilateral-no-fdp", "hybrid-2024"])
def test_scenario_rule_sets_give_the_scalar_answers_too(tmp_path: Path, rules: RuleSet,
                                                       name: str) -> None:
    """The columnar engine knows no regulation: rule sets changed by a sandbox scenario
    (rules repealed, adopted early, added) give the scalar engine's rows as well."""
    from chokepoint.batch.synthetic import write_book
    from chokepoint.sandbox.scenario import apply, shipped

    changed = apply(shipped(name), rules)
    src = tmp_path / "book.parquet"
    write_book(src, 1500, seed=13)
    one, two = tmp_path / "scalar.parquet", tmp_path / "columnar.parquet"
    run_batch(src, one, changed, today=TODAY)
    run_batch(src, two, changed, today=TODAY, engine="columnar")
    assert pq.read_table(two).to_pylist() == pq.read_table(one).to_pylist()


def test_a_column_map_renames_columns_for_the_columnar_engine_too(tmp_path: Path,
                                                                 rules: RuleSet) -> None:
    src = tmp_path / "erp.csv"
    src.write_text("Order No,Destination,Export Class,Customer\n"
                   "o1,CN,3A090.a,Buyer 9\no2,HK,EAR99,Buyer 9\no3,FR,3B001.a.4,Buyer 8\n")
    columns = tmp_path / "map.yaml"
    columns.write_text("Order No: id\nDestination: to_country\nExport Class: item_eccn\n"
                       "Customer: party_name\n")
    for engine in ("scalar", "columnar"):
        run_batch(src, tmp_path / f"{engine}.parquet", rules, today=TODAY, columns=columns,
                  engine=engine)
    rows = pq.read_table(tmp_path / "columnar.parquet").to_pylist()
    assert rows == pq.read_table(tmp_path / "scalar.parquet").to_pylist()
    assert [r["id"] for r in rows] == ["o1", "o2", "o3"]


def test_fact_reads_knows_every_predicate_of_the_rule_files_and_refuses_others() -> None:
    """The columnar engine relies on fact_reads being complete: every node kind in the
    shipped rules is known, and an unknown kind is an error, never an empty read set."""
    from dataclasses import dataclass

    count = 0
    for prov in RULES.provisions.values():
        for v in prov.versions:
            for pred in [v.predicate, *(cp.when for cp in v.review_policies)]:
                if pred is not None:
                    fact_reads(pred)
                    count += 1
    assert count > 100

    @dataclass(frozen=True)
    class Mystery:
        where: str

    with pytest.raises(TypeError, match="Mystery"):
        fact_reads(Mystery("item.eccn"))  # type: ignore[arg-type]


def test_the_catalogue_fills_only_the_keys_it_declares() -> None:
    """The columnar engine groups items on the keys the catalogue may fill (and the item
    rules read); the catalogue must not fill others."""
    from chokepoint.engine.catalogue import FILLED, apply_catalogue

    for day in (date(2023, 1, 1), date(2025, 6, 1)):
        snap = RULES.at(day)
        for model in MODELS:
            txn, _ = apply_catalogue({"item": {"model": model}}, snap)
            assert set(txn["item"]) <= {*FILLED, "model"}, model


def test_the_batch_command_runs_the_columnar_engine(tmp_path: Path, rules: RuleSet) -> None:
    import subprocess
    import sys

    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 2500, seed=21)
    out = tmp_path / "out.parquet"
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(src), str(out),
                           "--engine", "columnar", "--block", "1000", "--workers", "2"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "2500 rows: 2500 determined" in done.stderr
    run_batch(src, tmp_path / "scalar.parquet", rules)  # today, as the command
    assert pq.read_table(out).to_pylist() == pq.read_table(
        tmp_path / "scalar.parquet").to_pylist()
    refused = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(src),
                              str(tmp_path / "x.csv"), "--engine", "columnar", "--trace"],
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "--trace" in refused.stderr


def test_processes_are_bounded_by_memory_when_none_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from chokepoint.batch.run import WORKER_MEMORY, auto_workers

    pages = {"SC_PHYS_PAGES": WORKER_MEMORY * 2 // 4096 + 1, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(os, "sysconf", pages.__getitem__)
    assert auto_workers("columnar", 10_000_000) == 2  # (eight cores, memory for two)


def test_the_batch_command_takes_the_columnar_engine_where_it_can(
        tmp_path: Path, rules: RuleSet) -> None:
    """By default (--engine auto) a CSV or Parquet book goes to the columnar engine; a run
    it cannot take goes row by row, and the command says why."""
    from chokepoint.batch.run import pick_engine
    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 1200, seed=4)

    def batch(inp: Path, out: Path, *more: str) -> str:
        done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(inp),
                               str(out), *more], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "engine: columnar, 1 process\n" in batch(src, tmp_path / "auto.parquet")
    run_batch(src, tmp_path / "scalar.parquet", rules)  # today, as the command
    assert pq.read_table(tmp_path / "auto.parquet").to_pylist() == pq.read_table(
        tmp_path / "scalar.parquet").to_pylist()
    # an engine and a process count both given are not announced
    assert "engine:" not in batch(src, tmp_path / "local.csv", "--engine", "local",
                                  "--workers", "1")
    # an output format it cannot write is refused before anything is shown or written
    refused = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(src),
                              str(tmp_path / "out.xlsx")], capture_output=True, text=True,
                             check=False)
    assert refused.returncode == 2 and refused.stderr == (
        f"chokepoint: {tmp_path / 'out.xlsx'}: output must be .csv, .parquet or .jsonl "
        "(CSV and JSON Lines may be .gz or .bz2)\n")
    assert not list(tmp_path.glob("out.xlsx*"))
    # a run that starts again over an interrupted one's checkpoint says so
    (tmp_path / "again.parquet.checkpoint").write_text("{}")
    assert "this run starts again from row 1 (--resume would have continued it)" in batch(
        src, tmp_path / "again.parquet")
    assert not (tmp_path / "again.parquet.checkpoint").exists()
    traced = batch(src, tmp_path / "traced.jsonl", "--trace")
    assert ("engine: local, row by row, 1 process (the columnar engine: --trace needs"
            in traced)
    # a Parquet book with list columns, and JSON Lines, go row by row too
    lists = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"id": ["a"], "to_country": ["CN"],
                             "end_uses": pa.array([["ai_model_training"]])}), lists)
    assert pick_engine("auto", lists, False, rules) == (
        "scalar", "column 'end_uses' is of type list<element: string> (write lists and "
        "timestamps as text)")
    # a date column (the natural Parquet type for dates) is read as its YYYY-MM-DD text,
    # and a decimal column as its number, as the row-by-row engine reads them
    dated = tmp_path / "dated.parquet"
    pq.write_table(pa.table({
        "id": ["a", "b", "c"], "to_country": ["CN"] * 3, "from_country": ["US"] * 3,
        "item_made_in": ["TW"] * 3, "item_kind": ["chip"] * 3, "party_name": ["Foo"] * 3,
        "party_designations": ["none"] * 3,
        "chip_tpp": pa.array([Decimal("4800.00"), Decimal("100.50"), None],
                             pa.decimal128(10, 2)),
        "date": pa.array([date(2025, 6, 1), date(2024, 12, 1), None], pa.date32())}), dated)
    assert pick_engine("auto", dated, False, rules) == ("columnar", None)
    for engine in ("scalar", "columnar"):
        run_batch(dated, tmp_path / f"dated-{engine}.csv", rules, today=TODAY, engine=engine)
    assert (tmp_path / "dated-columnar.csv").read_text() == (
        tmp_path / "dated-scalar.csv").read_text()
    with (tmp_path / "dated-scalar.csv").open(newline="") as fh:
        dated_rows = list(csv.DictReader(fh))
    assert [r["as_of"] for r in dated_rows[:2]] == ["2025-06-01", "2024-12-01"]
    assert dated_rows[0]["US_outcome"] == "license_required"  # (TPP 4800 read as a number)
    jsonl = tmp_path / "book.jsonl"
    jsonl.write_text('{"id": "a", "to_country": "CN"}\n')
    assert pick_engine("auto", jsonl, False, rules)[0] == "scalar"
    assert pick_engine("auto", src, False, rules) == ("columnar", None)
    assert pick_engine("scalar", src, False, rules) == ("scalar", None)
    # processes when none is named: no more than the book has blocks for, nor cores
    from chokepoint.batch import run as run_module
    from chokepoint.batch.run import auto_workers

    cores = min(len(os.sched_getaffinity(0)), os.sysconf("SC_PHYS_PAGES")
                * os.sysconf("SC_PAGE_SIZE") // run_module.WORKER_MEMORY)
    assert auto_workers("columnar", 1200) == 1 == auto_workers("scalar", 1500)
    assert auto_workers("columnar", 10_000_000) == min(cores, 20)
    assert auto_workers("columnar", 10_000, block=5000) == min(cores, 2)
    assert auto_workers("scalar", 3_000_000) == cores
    # an empty CSV file has no rows for either engine (no fallback, no note)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    summary = run_batch(empty, tmp_path / "empty-auto.csv", rules, engine="auto")
    assert (summary.rows, summary.notes) == (0, [])
    run_batch(empty, tmp_path / "empty-local.csv", rules)
    assert (tmp_path / "empty-auto.csv").read_bytes() == (
        tmp_path / "empty-local.csv").read_bytes()


def test_kill_9_of_the_default_command_leaves_no_output_and_resume_matches(
        tmp_path: Path, rules: RuleSet) -> None:
    """The command as a user runs it (the columnar engine, two workers), killed with
    SIGKILL once a block is checkpointed: no OUT, and --resume gives a clean run's rows."""
    import os
    import signal
    import time

    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 30_000, seed=12)
    out = tmp_path / "out.parquet"
    command = [sys.executable, "-m", "chokepoint", "batch", str(src), str(out), "--date",
               "2025-06-01", "--block", "1000", "--workers", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "out.parquet.checkpoint"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the batch finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)  # (its pool workers end when their parent has gone)
    proc.wait()
    assert not out.exists(), "an interrupted run must not leave OUT"
    done = json.loads(checkpoint.read_text())["rows"]
    assert 0 < done < 30_000
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr
    run_batch(src, tmp_path / "clean.parquet", rules, override=date(2025, 6, 1),
              engine="columnar")
    assert pq.read_table(out).to_pylist() == pq.read_table(
        tmp_path / "clean.parquet").to_pylist()
    assert not checkpoint.exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_csv_the_columnar_engine_cannot_parse_goes_on_row_by_row(
        tmp_path: Path, rules: RuleSet, workers: int) -> None:
    """--engine auto: the blocks before the row Arrow cannot parse stand as the columnar
    engine wrote them; the rest goes row by row (a ragged row is rejected there): the
    rows and rejects of a row-by-row run."""
    from chokepoint.batch.synthetic import write_book

    whole = tmp_path / "book.csv"
    write_book(whole, 8000, seed=8)  # (2 MB: Arrow reads 1 MB ahead)
    lines = whole.read_text().splitlines(keepends=True)
    lines[6000] = lines[6000].rstrip("\n") + ",a cell too many\n"  # (row 6000)
    whole.write_text("".join(lines))
    clean = tmp_path / "clean.csv"
    run_batch(whole, clean, rules, today=TODAY)
    out = tmp_path / "out.csv"
    summary = run_batch(whole, out, rules, today=TODAY, engine="auto", block=1000,
                        workers=workers)
    assert len(summary.notes) == 1, summary.notes
    first = int(summary.notes[0].removeprefix("from row ").split()[0])
    assert first > 1 and (first - 1) % 1000 == 0  # (whole columnar blocks before it)
    assert "the rows went row by row" in summary.notes[0]
    assert out.read_bytes() == clean.read_bytes()
    assert (tmp_path / "out.csv.rejects.csv").read_bytes() == (
        tmp_path / "clean.csv.rejects.csv").read_bytes()
    assert summary.rejected == 1 and not (tmp_path / "out.csv.checkpoint").exists()


@pytest.mark.parametrize("keep", [False, True])
def test_freed_arrays_are_reused_once_the_allocator_is_told(keep: bool) -> None:
    """Row-length arrays made and dropped 150 times: without the allocator settings each
    one costs fresh pages (page faults); with them, freed memory is reused."""
    code = f"""
import resource, numpy as np
from chokepoint.batch.columnar.memory import keep_freed_memory
if {keep}:
    keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(50):
    a = np.ones(500_000 + i); b = np.ones(300_000 + i); del a; c = np.ones(700_000); del b, c
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    faults = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)
    if keep:
        assert faults < 15_000
    else:
        assert faults > 30_000  # the control: the difference is the allocator settings


def test_workers_share_the_default_block() -> None:
    from chokepoint.batch.columnar_run import BLOCK, block_size

    assert block_size(None, 1) == BLOCK
    assert block_size(None, 2) == BLOCK  # two processes: a whole block each
    assert block_size(None, 4) == BLOCK // 2  # more: about two blocks' memory in all
    assert block_size(None, 40) == BLOCK // 20
    assert block_size(None, 1000) == 10_000  # never tiny
    assert block_size(1000, 2) == 1000  # as asked


def test_blocks_span_row_groups_each_with_its_own_dictionary(tmp_path: Path,
                                                             rules: RuleSet) -> None:
    """Parquet text columns are read dictionary-encoded, one dictionary per row group: a
    block made of several row groups still gives the scalar rows."""
    from chokepoint.batch.columnar_run import blocks
    from chokepoint.batch.synthetic import write_book

    src, small = tmp_path / "book.parquet", tmp_path / "small_groups.parquet"
    write_book(src, 2200, seed=3)
    pq.write_table(pq.read_table(src), small, row_group_size=300)
    sizes = [t.num_rows for t in blocks(small, {}, 1000)]
    assert sizes == [1000, 1000, 200]
    first = next(blocks(small, {}, 1000))
    assert pa.types.is_dictionary(first.schema.field("party_name").type)
    assert first.schema.field("id").type == pa.string()  # all distinct: read as text
    scalar, columnar = tmp_path / "scalar.parquet", tmp_path / "columnar.parquet"
    run_batch(small, scalar, rules, today=TODAY)
    run_batch(small, columnar, rules, today=TODAY, engine="columnar", block=1000)
    assert pq.read_table(columnar).to_pylist() == pq.read_table(scalar).to_pylist()


def test_a_dictionary_column_gets_one_code_per_distinct_value() -> None:
    from chokepoint.batch.columnar.codes import encode

    first = pa.array(["x", None, "y", "x"]).dictionary_encode()
    second = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 0], pa.int32()),
                                            pa.array(["y", "y"]))  # a value twice
    column = encode(pa.chunked_array([first, second]), 8)
    cells = [column.values[c] for c in column.codes]
    assert cells == ["x", None, "y", "x", "y", "y", None, "y"]
    assert len(column.values) == 3  # x, y and the empty cell
    plain = encode(pa.array(["x", None, "y", "x", "y", "y", None, "y"]), 8)
    assert [plain.values[c] for c in plain.codes] == cells


def test_workers_read_their_own_blocks_of_a_parquet_book(tmp_path: Path,
                                                         rules: RuleSet) -> None:
    """With row groups no larger than a block, each worker reads its block's row groups
    itself; the blocks are those a single process reads, and so are the rows."""
    from chokepoint.batch.columnar_run import block_at, blocks
    from chokepoint.batch.synthetic import write_book

    src, small = tmp_path / "book.parquet", tmp_path / "small_groups.parquet"
    write_book(src, 2500, seed=9)
    pq.write_table(pq.read_table(src), small, row_group_size=300)
    for start, table in zip(range(0, 2500, 700), blocks(small, {}, 700), strict=True):
        assert block_at(small, {}, start, table.num_rows).to_pylist() == table.to_pylist()
    assert block_at(small, {}, 650, 10).column("id").to_pylist() == [
        f"SO-{n:08d}" for n in range(651, 661)]
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    run_batch(small, one, rules, today=TODAY, engine="columnar", block=700)
    run_batch(small, two, rules, today=TODAY, engine="columnar", workers=2, block=700)
    assert pq.read_table(one).to_pylist() == pq.read_table(two).to_pylist()


def test_a_run_whose_workers_read_their_blocks_resumes_to_the_rows_of_a_clean_run(
        tmp_path: Path, rules: RuleSet, interrupt: Any) -> None:
    from chokepoint.batch.synthetic import write_book

    src, small = tmp_path / "book.parquet", tmp_path / "small_groups.parquet"
    write_book(src, 3500, seed=5)
    pq.write_table(pq.read_table(src), small, row_group_size=250)
    clean, out = tmp_path / "clean.parquet", tmp_path / "out.parquet"
    run_batch(small, clean, rules, today=TODAY)
    interrupt(lambda progress: run_batch(small, out, rules, today=TODAY, engine="columnar",
                                         workers=2, progress=progress, block=1000), 2000)
    assert not out.exists()
    summary = run_batch(small, out, rules, today=TODAY, engine="columnar", workers=2,
                        resume=True, block=1000)
    assert summary.rows == 3500
    assert pq.read_table(out).to_pylist() == pq.read_table(clean).to_pylist()
    assert not (tmp_path / "out.parquet.parts").exists()  # workers' part files gone too


def test_csv_outputs_are_the_same_bytes_from_either_engine(tmp_path: Path,
                                                           rules: RuleSet) -> None:
    """The columnar engine writes CSV cells as csv.DictWriter does: quoted only when they
    hold a comma, a quote or a line break (ids here, and screening hits with commas)."""
    src = tmp_path / "book.csv"
    src.write_text(
        "id,date,to_country,item_kind,item_model,party_name\n"
        "plain-1,2025-06-02,CN,chip,H100 SXM,Buyer 1\n"
        '"with, comma",2025-06-02,CN,chip,H100 SXM,"Huawei Technologies Co., Ltd."\n'
        '"say ""hi""",2025-06-02,HK,other,,\n')
    plain = tmp_path / "plain.csv"
    plain.write_text("id,date,to_country,item_kind,item_model\n"
                     "p1,2025-06-02,CN,chip,H100 SXM\np2,2025-06-03,NL,other,\n")
    for book in (src, plain):
        for engine in ("scalar", "columnar"):
            run_batch(book, tmp_path / f"{book.stem}-{engine}.csv", rules, today=TODAY,
                      engine=engine)
        scalar = (tmp_path / f"{book.stem}-scalar.csv").read_bytes()
        assert (tmp_path / f"{book.stem}-columnar.csv").read_bytes() == scalar
    assert b'"with, comma"' in (tmp_path / "book-columnar.csv").read_bytes()


@pytest.mark.parametrize(("first", "then"), [("columnar", "scalar"), ("scalar", "columnar")])
def test_a_run_resumed_by_the_other_engine_gives_the_rows_of_a_clean_run(
        tmp_path: Path, rules: RuleSet, interrupt: Any, first: str, then: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint parts of one engine (text, or dictionary-encoded text) are taken up
    by the other: the output has the same rows, read back as the same text columns."""
    from chokepoint.batch import run
    from chokepoint.batch.synthetic import write_book

    monkeypatch.setattr(run, "PARQUET_PART_ROWS", 500)  # the scalar engine's checkpoints

    src = tmp_path / "book.parquet"
    write_book(src, 2500, seed=6)
    clean, out = tmp_path / "clean.parquet", tmp_path / "out.parquet"
    run_batch(src, clean, rules, today=TODAY)
    interrupt(lambda progress: run_batch(src, out, rules, today=TODAY, engine=first,
                                         progress=progress, block=1000), 2000)
    assert not out.exists()
    summary = run_batch(src, out, rules, today=TODAY, engine=then, resume=True, block=1000)
    assert summary.rows == 2500
    assert pq.read_table(out).to_pylist() == pq.read_table(clean).to_pylist()
    assert pq.read_table(out).schema == pq.read_table(clean).schema


def test_a_complete_list_clears_only_up_to_the_day_it_was_current(
        tmp_path: Path, rules: RuleSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CSL file downloaded months ago and imported today does not know the parties
    listed since: it clears an unlisted party only for orders up to the day the file was
    last written (or the day given with --current-on), in both engines."""
    from chokepoint.screening import service

    sample = ROOT.parent / "shared" / "data" / "csl_samples" / "csl_sample_2025.csv"
    if not sample.exists():
        pytest.skip("../shared/data not present")
    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path / "data"))
    old = tmp_path / "consolidated.csv"
    old.write_bytes(sample.read_bytes())
    downloaded = datetime(2025, 3, 1, 12).timestamp()
    os.utime(old, (downloaded, downloaded))
    service.import_list(old, today=date(2025, 9, 1))
    assert service.latest_complete_list() == date(2025, 3, 1)
    book = tmp_path / "book.csv"
    header = ("id,date,from_country,to_country,exporter_name,exporter_country,"
              "exporter_headquartered_in,item_kind,item_made_in,item_eccn,party_name,"
              "party_role,party_country,end_uses,us_person_support\n")
    order = ("{},US,CN,Example US Supplier,US,US,other,US,EAR99,Example Unlisted Trading Co,"
             "end_user,CN,none,false\n")
    book.write_text(header + order.format("early,2025-02-03") + order.format("late,2025-06-02"))

    def outcomes(engine: str) -> dict[str, tuple[str, str]]:
        out = tmp_path / f"{engine}.csv"
        run_batch(book, out, rules, today=TODAY, engine=engine)
        with out.open(newline="") as fh:
            return {r["id"]: (r["US_outcome"], r["missing_facts"]) for r in csv.DictReader(fh)}

    for engine in ("scalar", "columnar"):
        got = outcomes(engine)
        assert got["early"] == ("no_license_required", ""), engine
        assert got["late"][0] == "undetermined", engine
        assert "US:parties[0].designations" in got["late"][1].split(";"), engine
    done = subprocess.run([sys.executable, "-m", "chokepoint", "lists", "import", str(old),
                           "--current-on", "2025-07-01"], capture_output=True, text=True,
                          check=False, env={**os.environ})
    assert done.returncode == 0 and "current on 2025-07-01" in done.stderr
    service._LISTS_STATE.clear()  # (another process's import is seen within a second)
    assert service.latest_complete_list() == date(2025, 7, 1)
    for engine in ("scalar", "columnar"):
        assert outcomes(engine)["late"] == ("no_license_required", ""), engine


def test_an_imported_complete_list_clears_parties_in_both_engines(
        tmp_path: Path, rules: RuleSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a complete list imported (a full CSL), a party it does not name is cleared up
    to the import day - the columnar engine, which reads the import day once per state of
    the imported files (screening.service.latest_complete_list), gives the scalar rows."""
    from chokepoint.batch.synthetic import write_book
    from chokepoint.screening import service

    sample = ROOT.parent / "shared" / "data" / "csl_samples" / "csl_sample_2025.csv"
    if not sample.exists():
        pytest.skip("../shared/data not present")
    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path / "data"))
    src = tmp_path / "book.parquet"
    write_book(src, 1500, seed=17)
    before = tmp_path / "before.parquet"
    run_batch(src, before, rules, today=TODAY, engine="columnar")
    assert service.latest_complete_list() is None
    fresh = tmp_path / "consolidated.csv"  # (written now: current on the import day)
    fresh.write_bytes(sample.read_bytes())
    service.import_list(fresh, today=date(2025, 6, 30))
    assert service.latest_complete_list() == date(2025, 6, 30)
    one, two = tmp_path / "scalar.parquet", tmp_path / "columnar.parquet"
    run_batch(src, one, rules, today=TODAY)
    run_batch(src, two, rules, today=TODAY, engine="columnar")
    assert pq.read_table(two).to_pylist() == pq.read_table(one).to_pylist()
    changed = [(a["outcome"], b["outcome"]) for a, b in
               zip(pq.read_table(before).to_pylist(), pq.read_table(two).to_pylist(),
                   strict=True) if a["outcome"] != b["outcome"]]
    assert changed and all(a == "undetermined" for a, _ in changed)
