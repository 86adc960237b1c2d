"""Batch runs: flat layout, formats, rejects, atomic output, kill -9 and resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chokepoint.batch.columns import read_column_map
from chokepoint.batch.errors import BatchError
from chokepoint.batch.flat import RowError, row_to_transaction
from chokepoint.batch.run import layout_warnings, resumed_day, run_batch, run_identity
from chokepoint.rules.ruleset import RuleSet

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("id,date,from_country,to_country,item_eccn,item_made_in,item_kind,chip_tpp,"
          "chip_die_area_mm2,chip_datacenter,us_controlled_share,us_incorporated_items,"
          "us_direct_product_of,us_plant_direct_product_of,"
          "us_contains_ic_made_by_plant_direct_product_of,party_name,party_country,"
          "party_headquartered_in,party_designations,party_at_advanced_node_facility,end_uses,"
          "us_person_support,exporter_name")
ROWS = [
    "po-1,2025-06-02,US,CN,,US,chip,6000,720,true,,,,,,Example Cloud,CN,CN,none,,none,false,Ex",
    "po-2,2025-06-02,KR,CN,3B001.a.4,KR,sme,,,,0,none,none,3E001,,Example Fab,CN,CN,none,false,"
    "ic_development_or_production_other,false,Ex",
    "po-3,2025-06-02,US,China,EAR99,US,other,,,,,,,,,X,CN,,,,none,false,Ex",
    "po-4,2025-06-02,US,CN,EAR99,US,other,many,,,,,,,,X,CN,,,,none,false,Ex",
    "po-5,2025-06-02,US,FR,EAR99,US,other,,,,,,,,,Example Paris,FR,FR,none,,none,false,Ex",
]


def book(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_flat_row_maps_to_the_contract() -> None:
    txn = row_to_transaction({"to_country": "CN", "item_eccn": "3B001.a.4",
                              "us_incorporated_items": "3A991:ic;3D992:software",
                              "us_plant_direct_product_of": "none", "party_name": "A",
                              "party_designations": "entity_list:5,1", "national_NL": "-",
                              "chip_datacenter": "true", "chip_tpp": "4800"})
    assert txn["item"]["us_content"]["incorporated_us_items"] == [
        {"eccn": "3A991", "kind": "ic"}, {"eccn": "3D992", "kind": "software"}]
    assert txn["item"]["us_technology"]["plant_direct_product_of"] == []
    assert txn["parties"][0]["designations"] == [{"list": "entity_list", "footnotes": [5, 1]}]
    assert txn["item"]["national_classifications"] == {"NL": None}
    assert txn["item"]["chip"] == {"datacenter": True, "tpp": 4800}
    with pytest.raises(RowError, match="chip_tpp"):
        row_to_transaction({"to_country": "CN", "chip_tpp": "lots"})


def test_csv_book_keeps_order_and_rejects_bad_rows(tmp_path: Path, rules: RuleSet) -> None:
    out = tmp_path / "out.csv"
    summary = run_batch(book(tmp_path / "in.csv", ROWS), out, rules)
    assert (summary.rows, summary.written, summary.rejected) == (5, 3, 2)
    rows = read_csv(out)
    assert [r["id"] for r in rows] == ["po-1", "po-2", "po-5"]
    assert rows[0]["US_outcome"] == "license_required" and "742.6(a)(6)" in rows[0]["US_rules"]
    assert rows[1]["US_rules"].startswith("734.9(k)") and rows[1]["NL_outcome"] == ""
    assert rows[2]["outcome"] == "no_license_required"
    assert all(r["rules_version"].startswith("sha256:") for r in rows)
    rejects = read_csv(tmp_path / "out.csv.rejects.csv")
    assert [(r["row"], r["field"]) for r in rejects] == [("3", "to_country"), ("4", "chip_tpp")]
    # each message names the row as the rejects file numbers it (a bad cell, or a cell
    # read but not valid by the contract)
    assert [r["message"].split(":")[0] for r in rejects] == ["row 3 (id 'po-3')",
                                                         "row 4 (id 'po-4')"]


def test_jsonl_in_parquet_out_with_trace_and_column_map(tmp_path: Path, rules: RuleSet) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "j1", "date": "2025-06-02", "from_country": "US",
                               "to_country": "CN", "item": {"made_in": "US", "eccn": "EAR99"},
                               "parties": [], "end_uses": []}) + "\n")
    out = tmp_path / "out.parquet"
    run_batch(src, out, rules, with_trace=True)
    table = pq.read_table(out).to_pylist()
    assert table[0]["id"] == "j1" and json.loads(table[0]["trace"])["id"] == "j1"
    with src.open("a") as fh:  # a line the contract refuses, and one that is not JSON
        fh.write(json.dumps({"id": "j2", "to_country": "CN"}) + "\n{oops\n")
    run_batch(src, tmp_path / "out.csv", rules)
    rejects = read_csv(tmp_path / "out.csv.rejects.csv")
    assert [(r["row"], r["id"], r["field"]) for r in rejects] == [
        ("2", "j2", "(the transaction itself)"), ("3", "", "(the line)")]
    assert rejects[0]["message"].startswith("row 2 (id 'j2'): ")
    with src.open("a") as fh:  # a line naming a key twice: ambiguous, not the last one
        fh.write('{"id": "j4", "to_country": "CN", "to_country": "NL"}\n')
    run_batch(src, tmp_path / "out.csv", rules)
    last = read_csv(tmp_path / "out.csv.rejects.csv")[-1]
    assert (last["row"], last["field"]) == ("4", "(the line)")
    assert last["message"] == "row 4: (the line): not JSON: duplicate key 'to_country'"
    erp = tmp_path / "erp.csv"
    erp.write_text("Order,Dest,ECCN,Origin\nA-1,CN,EAR99,US\n")
    cmap = tmp_path / "map.yaml"
    cmap.write_text("Order: id\nDest: to_country\nECCN: item_eccn\nOrigin: item_made_in\n")
    run_batch(erp, tmp_path / "erp_out.csv", rules, columns=cmap)
    (row,) = read_csv(tmp_path / "erp_out.csv")
    assert row["id"] == "A-1" and row["US_outcome"] == "undetermined"


def test_the_results_never_replace_the_book(tmp_path: Path, rules: RuleSet) -> None:
    src = book(tmp_path / "in.csv", ROWS)
    before = src.read_bytes()
    with pytest.raises(BatchError, match="would replace the book"):
        run_batch(src, tmp_path / "." / "in.csv", rules)
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "in.csv"]
    with pytest.raises(BatchError, match="no such directory"):
        run_batch(src, tmp_path / "missing" / "out.csv", rules)
    # the command refuses before it draws a progress bar: the refusal is all it prints
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(src), str(src)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"chokepoint: {src}: the results would replace the book; name another file")


def test_columns_the_run_will_not_read_are_named_and_a_bad_map_stops_it(
        tmp_path: Path, rules: RuleSet, map_refused: Any) -> None:
    erp = tmp_path / "erp.csv"
    erp.write_text("Order,Dest,ECCN,party_name,Colour\nA-1,CN,EAR99,X,red\n")
    cmap = tmp_path / "map.yaml"
    cmap.write_text("Order: id\nDest: to_country\nECCN: item_eccn\nOrigin: item_made_in\n")
    warnings = layout_warnings(erp, cmap)
    assert len(warnings) == 2
    assert "not read: 'Colour'" in warnings[0] and "'party_name'" not in warnings[0]
    assert warnings[1].endswith("mapped column(s) not in erp.csv: 'Origin'")
    assert len(layout_warnings(erp)) == 1 and "'Order', 'Dest', 'ECCN', 'Colour'" in (
        layout_warnings(erp)[0])
    # a spreadsheet's semicolon-separated export reads as one column: the warning says why
    semi = tmp_path / "semi.csv"
    semi.write_text("id;to_country;item_eccn\nA-1;CN;EAR99\n")
    (warning,) = layout_warnings(semi)
    assert warning.endswith("the header looks separated by semicolons: chokepoint reads CSV "
                            "separated by commas (save the book as comma-separated)")
    assert "separated by" not in layout_warnings(erp, cmap)[0]
    # a map to a column the layout does not have would leave that fact unknown on every
    # row: refused, naming the entry, before anything is written
    cmap.write_text("Dest: to_countries\n")
    map_refused(erp, cmap, "'Dest' is mapped to 'to_countries'",
                "not a column of the flat layout")
    # one of their columns mapped twice: which one was meant is not known
    cmap.write_text("Dest: to_country\nDest: from_country\n")
    with pytest.raises(BatchError, match="not a valid column map: duplicate key 'Dest'"):
        run_batch(erp, tmp_path / "out.csv", rules, columns=cmap)
    cmap.write_text("Dest: to_country\n")
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(erp),
                           str(tmp_path / "out.csv"), "--columns", str(cmap)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "warning: erp.csv: 3 column(s)" in done.stderr


def test_kill_9_leaves_no_output_and_resume_matches_a_clean_run(tmp_path: Path,
                                                               rules: RuleSet) -> None:
    rows = [r.replace("po-", f"r{i}-", 1) for i in range(900) for r in ROWS]
    src = book(tmp_path / "big.csv", rows)
    out = tmp_path / "out.csv"
    proc = subprocess.Popen([sys.executable, "-m", "chokepoint", "batch", str(src), str(out),
                             "--engine", "local"],  # (the row-by-row checkpoints)
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "out.csv.checkpoint"
    deadline = time.time() + 60
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the batch finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "an interrupted run must not leave a partial OUT"
    summary = run_batch(src, out, rules, resume=True)
    assert summary.rows == len(rows) and not checkpoint.exists()
    clean = tmp_path / "clean.csv"
    run_batch(src, clean, rules)
    assert out.read_text() == clean.read_text()
    assert (tmp_path / "out.csv.rejects.csv").read_text() == (
        tmp_path / "clean.csv.rejects.csv").read_text()


def test_workers_give_byte_identical_output_and_resume(tmp_path: Path,
                                                        rules: RuleSet) -> None:
    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 3000, seed=11)
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    s1 = run_batch(src, one, rules, today=date(2026, 1, 1))
    s2 = run_batch(src, two, rules, today=date(2026, 1, 1), workers=2)
    assert (s1.rows, s1.written, s1.rejected, s1.outcomes) == (
        s2.rows, s2.written, s2.rejected, s2.outcomes)
    assert one.read_bytes() == two.read_bytes()
    assert (tmp_path / "one.csv.rejects.csv").read_bytes() == (
        tmp_path / "two.csv.rejects.csv").read_bytes()
    # a resumed two-process run (from a checkpoint at row 1000) ends with the same rows
    src_csv = book(tmp_path / "b.csv", [r.replace("po-", f"q{i}-", 1)
                                        for i in range(500) for r in ROWS])
    clean, resumed = tmp_path / "clean.csv", tmp_path / "resumed.csv"
    run_batch(src_csv, clean, rules, workers=2)
    (tmp_path / "resumed.csv.partial").write_bytes(b"")
    partial_rows = clean.read_text().splitlines()[:1 + 600]  # header + rows 1..1000 kept
    body = "\n".join(partial_rows) + "\n"
    (tmp_path / "resumed.csv.partial").write_text(body)
    rej = (tmp_path / "clean.csv.rejects.csv").read_text().splitlines()
    kept = [r for r in rej[1:] if int(r.split(",")[0]) <= 1000]
    rej_body = "\n".join([rej[0], *kept]) + "\n"
    (tmp_path / "resumed.csv.rejects.csv.partial").write_text(rej_body)
    (tmp_path / "resumed.csv.checkpoint").write_text(json.dumps(
        {"rows": 1000, "bytes": len(body.encode()), "reject_bytes": len(rej_body.encode())}))
    run_batch(src_csv, resumed, rules, resume=True, workers=2)
    assert resumed.read_text() == clean.read_text()


def test_spark_local_mode_gives_identical_rows(tmp_path: Path, rules: RuleSet) -> None:
    pytest.importorskip("pyspark")
    from chokepoint.spark import run_spark_batch

    src = book(tmp_path / "in.csv", ROWS * 3)
    local, spark = tmp_path / "local.csv", tmp_path / "spark.csv"
    here = run_batch(src, local, rules)
    got = run_spark_batch(src, spark)
    assert (got.rows, got.written, got.rejected) == (15, 9, 6)
    assert (got.rejected_by, got.first_reject) == (here.rejected_by, here.first_reject)
    assert spark.read_text() == local.read_text()
    assert (tmp_path / "spark.csv.rejects.csv").read_text() == (
        tmp_path / "local.csv.rejects.csv").read_text()
    # an ERP export with its own column names, mapped as `batch --columns` maps them
    erp = tmp_path / "erp.csv"
    erp.write_text(src.read_text().replace("id,date,from_country,to_country,",
                                           "Order,Date,Origin,Dest,", 1))
    mapping = {"Order": "id", "Date": "date", "Origin": "from_country", "Dest": "to_country"}
    run_spark_batch(erp, tmp_path / "mapped.csv", mapping=mapping)
    assert (tmp_path / "mapped.csv").read_text() == local.read_text()
    # and with a value map and a date format: the ERP's "China" read as CN and its
    # "02.06.2025" as 2025-06-02, by Spark as by the local engine
    cmap = tmp_path / "values.yaml"
    cmap.write_text("".join(f"{k}: {v}\n" for k, v in mapping.items() if k not in ("Dest",
                                                                                 "Date"))
                    + "Dest:\n  column: to_country\n  values: {China: CN}\n"
                    + "Date:\n  column: date\n  format: '%d.%m.%Y'\n")
    erp.write_text(erp.read_text().replace(",2025-06-02,", ",02.06.2025,"))
    recoded = run_batch(erp, tmp_path / "recoded.csv", rules, columns=cmap)
    assert (recoded.written, recoded.rejected) == (12, 3)  # (po-3 now answered)
    with (tmp_path / "recoded.csv").open(newline="") as fh:
        assert {r["as_of"] for r in csv.DictReader(fh)} == {"2025-06-02"}
    run_spark_batch(erp, tmp_path / "spark-recoded.csv", mapping=read_column_map(cmap))
    for name in ("recoded.csv", "recoded.csv.rejects.csv"):
        assert (tmp_path / f"spark-{name}").read_bytes() == (tmp_path / name).read_bytes()


def test_spark_keeps_the_row_order_of_a_book_read_as_many_partitions(
        tmp_path: Path, rules: RuleSet) -> None:
    """A Parquet book of small row groups that Spark reads as several partitions (seven
    here, more than the cores) is evaluated where it was read, with no shuffle, and comes
    out in the book's order, as the local path writes it. (A book read as one partition
    is spread over the cores: the other Spark tests.)"""
    pytest.importorskip("pyspark")
    from chokepoint.batch.synthetic import write_book
    from chokepoint.spark import run_spark_batch

    whole = tmp_path / "whole.parquet"
    write_book(whole, 3_000, seed=5)
    src = tmp_path / "book.parquet"
    pq.write_table(pq.read_table(whole), src, row_group_size=250)
    local, spark = tmp_path / "local.csv", tmp_path / "spark.csv"
    run_batch(src, local, rules)
    conf = {"spark.sql.files.maxPartitionBytes": "20000",
            "spark.sql.files.openCostInBytes": "0"}
    told: list[tuple[str, int, int]] = []
    run_spark_batch(src, spark, conf=conf, progress=lambda *report: told.append(report))
    assert spark.read_bytes() == local.read_bytes()
    # the progress of each phase, as a bar shows it: reading and determining in Spark's
    # tasks (seven partitions at least), then the rows written in order, each to its end
    from chokepoint.spark import DETERMINING, READING, WRITING

    assert [label for label, _, _ in told if label in (READING, DETERMINING)] == sorted(
        (label for label, _, _ in told if label in (READING, DETERMINING)),
        key=[READING, DETERMINING].index)
    last = {label: (done, total) for label, done, total in told}
    assert last[DETERMINING][0] == last[DETERMINING][1] >= 7
    assert last[READING][0] == last[READING][1] > 0
    assert last[WRITING] == (3_000, 3_000)
    assert [done for label, done, _ in told if label == WRITING] == sorted(
        done for label, done, _ in told if label == WRITING)


def test_spark_reads_a_directory_of_parts_as_the_local_engines_do(
        tmp_path: Path, rules: RuleSet) -> None:
    """A Parquet dataset as Spark or an ERP writes it: a directory of part files. Spark
    reads the larger part first; the output is still in the order of the parts' names,
    the bytes the local engines write for the directory and for the parts joined."""
    pytest.importorskip("pyspark")
    from chokepoint.batch.synthetic import write_book
    from chokepoint.spark import run_spark_batch

    whole = tmp_path / "whole.parquet"
    write_book(whole, 3_000, seed=9)
    table = pq.read_table(whole)
    # (a column the flat layout lacks: the CLI warns of it, as for a file)
    table = table.append_column("erp_notes", pa.array(["x"] * table.num_rows))
    parts = tmp_path / "export.parquet"
    parts.mkdir()
    pq.write_table(table.slice(0, 200), parts / "part-0.parquet")
    # (names whose order Spark's file URIs would reverse: "part-1 a" < "part-1!", but
    # "part-1%20a" > "part-1!")
    pq.write_table(table.slice(200, 1000), parts / "part-1 a.parquet")
    pq.write_table(table.slice(1200), parts / "part-1!.parquet")
    run_batch(whole, tmp_path / "local.csv", rules)
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(parts),
                           str(tmp_path / "spark.csv"), "--engine", "spark"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3000 rows: 3000 determined, 0 rejected" in done.stderr  # (as every engine ends)
    assert "1 column(s) not in the flat layout, not read: 'erp_notes'" in done.stderr
    assert "facts the answers lack" in done.stderr
    assert "writing in row order" in done.stderr and "3000/3000" in done.stderr  # (its bar)
    assert "[Stage" not in done.stderr  # (Spark's own bar is off)
    assert (tmp_path / "spark.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    run_batch(parts, tmp_path / "parts.csv", rules)
    assert (tmp_path / "parts.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    with pytest.raises(ValueError, match="would be written among the book's parts"):
        run_spark_batch(parts, parts / "out.csv")


def test_spark_reads_compressed_csv_as_the_local_engines_do(tmp_path: Path,
                                                           rules: RuleSet) -> None:
    """A gzip CSV file, and a directory of parts compressed with gzip and bzip2 (as Spark
    writes with compression=...), give the local engines' bytes; Spark decompresses them
    with Hadoop's codecs, chosen by the same suffixes. OUT may be compressed too."""
    pytest.importorskip("pyspark")
    import bz2
    import gzip

    from chokepoint.spark import book_format, run_spark_batch

    assert book_format("s3a://bucket/orders.csv.gz") == "csv"
    src = book(tmp_path / "in.csv", ROWS * 3)
    packed = tmp_path / "in.csv.gz"
    packed.write_bytes(gzip.compress(src.read_bytes()))
    parts = tmp_path / "export.csv"
    parts.mkdir()
    for name, rows, pack in (("part-00000.csv.gz", ROWS[:2], gzip.compress),
                             ("part-00001.csv.bz2", ROWS[2:] + ROWS * 2, bz2.compress)):
        (parts / name).write_bytes(pack(book(tmp_path / "part.csv", rows).read_bytes()))
    (parts / "part-00002.csv.gz").write_bytes(gzip.compress(b""))  # (an empty partition)
    run_batch(src, tmp_path / "local.csv", rules)
    for name, inp in (("file", packed), ("parts", parts)):
        got = run_spark_batch(inp, tmp_path / f"{name}.csv")
        assert (got.rows, got.written, got.rejected) == (15, 9, 6), name
        assert (tmp_path / f"{name}.csv").read_bytes() == (
            tmp_path / "local.csv").read_bytes(), name
        assert (tmp_path / f"{name}.csv.rejects.csv").read_bytes() == (
            tmp_path / "local.csv.rejects.csv").read_bytes(), name
    run_spark_batch(packed, tmp_path / "out.csv.gz")  # (a compressed OUT, as locally)
    assert gzip.decompress((tmp_path / "out.csv.gz").read_bytes()) == (
        tmp_path / "local.csv").read_bytes()


def test_spark_reads_partition_values_as_text(tmp_path: Path, rules: RuleSet) -> None:
    """A dataset partitioned by a fact (``us_plant_direct_product_of=3E001/``): Spark took
    the value for a number, 30, so the Korean tool made with 3E001 technology was answered
    on a fact it was not given. The values are now read as text, and the rows are the
    local engines' for the dataset, and for the book its partitions make (in the order of
    their paths; an empty value is Hive's null partition, an unknown cell)."""
    pytest.importorskip("pyspark")
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from chokepoint.spark import run_spark_batch

    key = "us_plant_direct_product_of"
    src = book(tmp_path / "in.csv", ROWS * 3)
    table = pacsv.read_csv(src, convert_options=pacsv.ConvertOptions(
        column_types=dict.fromkeys(HEADER.split(","), pa.string()),
        strings_can_be_null=False))
    ordered = []
    for kind, write in (("parquet", pq.write_table), ("csv", pacsv.write_csv)):
        parts = tmp_path / f"export.{kind}"
        for value, directory in (("3E001", "3E001"), ("", "__HIVE_DEFAULT_PARTITION__")):
            rows = table.filter(pc.equal(table.column(key), value))
            (parts / f"{key}={directory}").mkdir(parents=True)
            write(rows.drop_columns([key]), parts / f"{key}={directory}" / f"part-0.{kind}")
            ordered.append(rows)
    assert sum(t.num_rows for t in ordered[:2]) == 15
    pacsv.write_csv(pa.concat_tables(ordered[:2]), tmp_path / "joined.csv")
    run_batch(tmp_path / "joined.csv", tmp_path / "local.csv", rules)
    for kind in ("parquet", "csv"):
        parts = tmp_path / f"export.{kind}"
        got = run_spark_batch(parts, tmp_path / f"spark-{kind}.csv")
        assert (got.rows, got.written, got.rejected) == (15, 9, 6)
        assert (tmp_path / f"spark-{kind}.csv").read_bytes() == (
            tmp_path / "local.csv").read_bytes(), kind
        assert (tmp_path / f"spark-{kind}.csv.rejects.csv").read_bytes() == (
            tmp_path / "local.csv.rejects.csv").read_bytes(), kind
        for engine in ("scalar", "columnar"):  # (the local engines read the dataset alike)
            run_batch(parts, tmp_path / f"{kind}-{engine}.csv", rules, engine=engine)
            assert (tmp_path / f"{kind}-{engine}.csv").read_bytes() == (
                tmp_path / "local.csv").read_bytes(), (kind, engine)


def test_spark_refuses_csv_parts_whose_columns_are_in_another_order(
        tmp_path: Path) -> None:
    """Spark reads every CSV part by the column positions of one part's header, so a part
    with from_country and to_country the other way round was read with the two swapped
    (a shipment from China to the US answered as one to China), with only a warning in
    Spark's log. A directory chokepoint reads itself is refused before Spark starts,
    naming the part; one it leaves to Spark (here a part named .txt, which Spark reads as
    CSV too) fails in Spark, which now checks each part's header; the command says so
    with Spark's message, not its stack traces."""
    pytest.importorskip("pyspark")
    swapped = HEADER.replace("from_country,to_country", "to_country,from_country")
    moved = [",".join(r.split(",")[:2] + [r.split(",")[3], r.split(",")[2]]
                      + r.split(",")[4:]) for r in ROWS]
    parts = tmp_path / "export.csv"
    parts.mkdir()
    book(parts / "part-0.csv", ROWS)
    (parts / "part-1.csv").write_text(swapped + "\n" + "\n".join(moved) + "\n")
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(parts),
                           str(tmp_path / "out.csv"), "--engine", "spark"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{parts / 'part-1.csv'}: its columns are [" in done.stderr
    assert "unlike part-0.csv" in done.stderr
    (parts / "part-1.csv").rename(parts / "part-1.txt")
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(parts),
                           str(tmp_path / "out.csv"), "--engine", "spark"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    # Spark's own message, not the JVM's stack traces
    assert "Spark stopped the run" in done.stderr and "Traceback" not in done.stderr
    assert "CSV header does not conform to the schema" in done.stderr
    assert "Expected: to_country but found: from_country" in done.stderr
    assert "\tat org.apache" not in done.stderr.split("Spark stopped the run")[1]
    assert not (tmp_path / "out.csv").exists()


def _parts(tmp_path: Path, runs: list[list[list[int]]]) -> list[Path]:
    """Result part files, each a list of runs of row numbers, in row groups of 2 rows."""
    parts = []
    tmp_path.mkdir(exist_ok=True)
    for k, part_runs in enumerate(runs):
        rows = [n for run in part_runs for n in run]
        path = tmp_path / f"part-{k:05d}.parquet"
        pq.write_table(pa.table({"row": pa.array(rows, pa.int64()),
                                 "id": [f"po-{n}" for n in rows]}), path, row_group_size=2)
        parts.append(path)
    return parts


def test_spark_results_are_copied_in_row_order_whatever_the_partitions_hold(
        tmp_path: Path) -> None:
    """The driver copies the executors' parts by runs of consecutive rows: a part may hold
    a later file's rows before an earlier one's, and runs cross row groups."""
    from chokepoint.spark import in_row_order

    parts = _parts(tmp_path, [[[6, 7, 8], [1, 2]], [[3, 4, 5], [9]], [[]], [[10, 11]]])
    got = pa.concat_tables(in_row_order(parts, 11))
    assert got.column("row").to_pylist() == list(range(1, 12))
    assert got.column("id").to_pylist() == [f"po-{n}" for n in range(1, 12)]
    for bad, rows in (([[[1, 2]], [[4]]], 3), ([[[1, 2]], [[2, 3]]], 3),
                      ([[[1, 2, 3]]], 4), ([[[1, 2, 3]]], 2)):
        with pytest.raises(RuntimeError, match="once each"):
            list(in_row_order(_parts(tmp_path / f"bad{rows}{len(bad)}", bad), rows))


def test_csv_rows_of_more_or_fewer_cells_than_the_header_are_rejected_by_every_engine(
        tmp_path: Path, rules: RuleSet) -> None:
    """A comma out of place (an unquoted "Foo, Inc.") moves every later cell under another
    column: such a row is rejected whole, never read with its cells shifted. A quoted cell
    with a comma or a line break is one cell. The row-by-row engine names the row; auto
    does the same (the columnar engine cannot parse the file, the rest goes row by row);
    Spark keeps the row whole and rejects it the same way."""
    pytest.importorskip("pyspark")
    from chokepoint.spark import run_spark_batch

    shifted = ROWS[0].replace("Example Cloud", "Example Cloud, Inc.").replace("po-1", "po-6")
    short = ",".join(ROWS[4].replace("po-5", "po-7").split(",")[:-3])
    quoted = ROWS[4].replace("Example Paris", '"Example\nParis, SA"').replace("po-5", "po-8")
    with_header_column = tmp_path / "own.csv"  # (a book's own column of that name is no mark)
    src = book(tmp_path / "in.csv", [ROWS[0], shifted, ROWS[1], short, quoted])
    with_header_column.write_text(HEADER + ",__ragged__\n" + ROWS[4] + ",3 9\n")
    run_batch(src, tmp_path / "local.csv", rules)
    rejects = read_csv(tmp_path / "local.csv.rejects.csv")
    assert [(r["row"], r["id"], r["field"]) for r in rejects] == [
        ("2", "po-6", "(the row)"), ("4", "po-7", "(the row)")]
    assert rejects[0]["message"].startswith("row 2 (id 'po-6'): (the row): 24 cells where "
                                            "the header names 23; a comma or quote out of "
                                            "place")
    assert "20 cells where the header names 23" in rejects[1]["message"]
    assert [r["id"] for r in read_csv(tmp_path / "local.csv")] == ["po-1", "po-2", "po-8"]
    summary = run_batch(src, tmp_path / "auto.csv", rules, engine="auto")
    assert summary.notes and "cannot read this CSV" in summary.notes[0]
    run_spark_batch(src, tmp_path / "spark.csv")
    for other in ("auto", "spark"):
        assert (tmp_path / f"{other}.csv").read_text() == (
            tmp_path / "local.csv").read_text(), other
        assert (tmp_path / f"{other}.csv.rejects.csv").read_text() == (
            tmp_path / "local.csv.rejects.csv").read_text(), other
    with pytest.raises(BatchError, match="--engine local or auto"):
        run_batch(src, tmp_path / "columnar.csv", rules, engine="columnar")
    assert run_batch(with_header_column, tmp_path / "own_out.csv", rules).rejected == 0
    run_spark_batch(with_header_column, tmp_path / "own_spark.csv")
    assert (tmp_path / "own_spark.csv").read_text() == (tmp_path / "own_out.csv").read_text()


def test_a_book_naming_a_column_twice_is_refused_by_every_engine(tmp_path: Path,
                                                                  rules: RuleSet) -> None:
    """Two to_country columns (or two ERP columns mapped to it): the row-by-row engine
    took the last without a word and the columnar engine stopped with a traceback. Which
    one holds the fact is not known, so the book is refused before a row is read."""
    pytest.importorskip("pyspark")
    from chokepoint.spark import run_spark_batch

    twice = tmp_path / "twice.csv"
    twice.write_text("id,to_country,item_made_in,item_eccn,to_country\nx1,CN,US,EAR99,NL\n")
    for engine in ("scalar", "columnar", "auto"):
        with pytest.raises(BatchError, match="the column 'to_country' appears 2 times"):
            run_batch(twice, tmp_path / "out.csv", rules, engine=engine)
    with pytest.raises(BatchError, match="appears 2 times"):
        run_spark_batch(twice, tmp_path / "spark.csv")
    erp = tmp_path / "erp.csv"
    erp.write_text("Order,Dest,Country,item_made_in\nx1,CN,NL,US\n")
    cmap = tmp_path / "map.yaml"
    cmap.write_text("Order: id\nDest: to_country\nCountry: to_country\n")
    with pytest.raises(BatchError, match="columns 'Dest', 'Country' both map to 'to_country'"):
        run_batch(erp, tmp_path / "out.csv", rules, columns=cmap)
    assert not list(tmp_path.glob("out.csv*"))
    for args in (["batch", str(twice), str(tmp_path / "out.csv")],
                 ["diff", "--from", "2024-12-01", "--to", "2024-12-02", str(twice)]):
        done = subprocess.run([sys.executable, "-m", "chokepoint", *args],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 2 and "appears 2 times" in done.stderr, args
    # The cluster job's read (no local file to look at first): Spark itself would name
    # the columns to_country1 and to_country4, and every row would lack its destination.
    from pyspark.sql import SparkSession

    from chokepoint.spark import read_book

    parts = tmp_path / "export"
    parts.mkdir()
    (parts / "a.csv").write_bytes(("\ufeff" + twice.read_text()).encode())
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false"
                                                           ).getOrCreate()
    try:
        with pytest.raises(BatchError, match="the column 'to_country' appears 2 times"):
            read_book(spark, str(parts), fmt="csv")
        with pytest.raises(BatchError, match="'Dest', 'Country' both map to 'to_country'"):
            read_book(spark, str(erp), {"Dest": "to_country", "Country": "to_country"})
        assert read_book(spark, str(erp), {"Dest": "to_country"}).count() == 1
    finally:
        spark.stop()


def _gbk_book(tmp_path: Path, more: list[str] | None = None) -> Path:
    """A CSV book saved in GBK, as Chinese ERP exports often are: SMIC by its Chinese name
    (screened: on the Entity List), then rows in plain ASCII (``more``, or po-5)."""
    names = HEADER.split(",")
    cells = ROWS[1].split(",")
    cells[names.index("party_name")] = "中芯国际集成电路制造有限公司"
    cells[names.index("party_designations")] = ""  # (unknown: screened)
    src = tmp_path / "gbk.csv"
    src.write_bytes("\n".join([HEADER, ",".join(cells), *(more or [ROWS[4]]), ""]
                              ).encode("gbk"))
    return src


def test_csv_books_in_another_encoding_are_read_in_it_or_refused(
        tmp_path: Path, rules: RuleSet) -> None:
    """--encoding reads a GBK book in every engine, with the same rows; without it the
    book is refused (not UTF-8), never read with its names garbled."""
    pytest.importorskip("pyspark")
    from chokepoint.batch.impact import book_impact
    from chokepoint.spark import run_spark_batch

    src = _gbk_book(tmp_path)
    for engine in ("scalar", "columnar", "auto"):
        with pytest.raises(BatchError, match="not UTF-8 text .*--encoding"):
            run_batch(src, tmp_path / f"refused-{engine}.csv", rules, engine=engine)
        run_batch(src, tmp_path / f"{engine}.csv", rules, engine=engine, encoding="gbk")
    rows = read_csv(tmp_path / "scalar.csv")
    assert rows[0]["US_outcome"] == "license_required" and "744.11" in rows[0]["US_rules"]
    assert "中芯国际" in rows[0]["screening_hits"]
    run_spark_batch(src, tmp_path / "spark.csv", encoding="gbk")
    for other in ("columnar", "auto", "spark"):
        assert (tmp_path / f"{other}.csv").read_text() == (
            tmp_path / "scalar.csv").read_text(), other
    assert book_impact(src, rules, date(2024, 12, 1), date(2024, 12, 2),
                       encoding="gbk") is not None
    with pytest.raises(BatchError, match="not an encoding Python knows"):
        run_batch(src, tmp_path / "x.csv", rules, encoding="no-such-thing")
    parquet = tmp_path / "book.parquet"
    pq.write_table(pa.table({"id": ["a"]}), parquet)
    with pytest.raises(BatchError, match="for CSV books"):
        run_batch(parquet, tmp_path / "y.csv", rules, encoding="gbk")
    # a book whose bad bytes come well after the header (read in chunks): refused too
    late = tmp_path / "late.csv"
    late.write_bytes((HEADER + "\n" + "\n".join(ROWS * 600) + "\n").encode()
                      + ROWS[4].replace("Example Paris", "中芯").encode("gbk") + b"\n")
    for engine in ("scalar", "columnar", "auto"):
        with pytest.raises(BatchError, match="not UTF-8 text"):
            run_batch(late, tmp_path / f"late-{engine}.csv", rules, engine=engine)
    lines = tmp_path / "book.jsonl"
    lines.write_bytes('{"id": "a", "to_country": "CN"}\n{"id": "中芯"}\n'.encode("gbk"))
    with pytest.raises(BatchError, match="JSON Lines are UTF-8"):
        run_batch(lines, tmp_path / "z.csv", rules)


def test_spark_reads_books_named_by_uri_or_by_format() -> None:
    from chokepoint.spark import book_format

    assert book_format("s3a://bucket/books/orders.parquet/") == "parquet"
    assert book_format(Path("/data/Orders.CSV")) == "csv"
    assert book_format("hdfs://nn:8020/erp/export", "csv") == "csv"
    with pytest.raises(ValueError, match="name the format"):
        book_format("hdfs://nn:8020/erp/export")
    with pytest.raises(ValueError, match="json"):
        book_format("orders.parquet", "json")


def test_the_cluster_job_answers_a_directory_of_parts_as_the_local_path(
        tmp_path: Path, rules: RuleSet) -> None:
    """examples/spark_job.py run by spark-submit, as on a cluster: a directory of CSV parts
    (named without a suffix, so --format says what it holds) gives, row for row, the local
    path's answers and rejects for the parts one after another in the order of their
    names - Spark reads the larger part first."""
    pytest.importorskip("pyspark")
    rows = [f"{r.replace(',', f'-{k},', 1)}" for k in range(3) for r in ROWS]  # ids apart
    parts = tmp_path / "export"
    parts.mkdir()
    book(parts / "a.csv", rows[:5])
    book(parts / "b.csv", rows[5:])
    whole = book(tmp_path / "whole.csv", rows)
    run_batch(whole, tmp_path / "local.csv", rules)
    got = _spark_job(tmp_path, [str(parts), "--format", "csv"])
    assert [r["row"] for r in got] == list(range(1, len(rows) + 1))
    answered, rejected = _answered_and_rejected(got)
    assert answered == read_csv(tmp_path / "local.csv")
    assert rejected == read_csv(tmp_path / "local.csv.rejects.csv")
    assert len(answered) == 9 and len(rejected) == 6


CSL_HEADER = ("_id,source,entity_number,type,programs,name,title,addresses,"
              "federal_register_notice,start_date,end_date,standard_order,license_requirement,"
              "license_policy,call_sign,vessel_type,gross_tonnage,gross_registered_tonnage,"
              "vessel_flag,vessel_owner,remarks,source_list_url,alt_names,citizenships,"
              "dates_of_birth,nationalities,places_of_birth,source_information_url,ids")


def test_the_cluster_job_screens_against_the_driver_s_lists_and_rejects_garbled_cells(
        tmp_path: Path, rules: RuleSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """What nothing checks before Spark on a cluster:
    - A complete list imported on the driver's machine clears a party it does not name.
      The executors' machines hold other lists (here: none, in a data directory of their
      own); they screen against the driver's, so the job gives the local path's rows.
    - A GBK book read as UTF-8 comes with its Chinese name replaced by U+FFFD: that row is
      rejected, not screened with a garbled name, which the complete list would clear."""
    pytest.importorskip("pyspark")
    from chokepoint.screening import service

    csl = tmp_path / "csl.csv"
    csl.write_text(CSL_HEADER + "\n" + '"1","Entity List (EL) - Bureau of Industry and '
                   'Security","","","","Unrelated Trading Co","","Moscow, RU"' + ',""' * 21
                   + "\n")
    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path / "driver"))
    service.import_list(csl, today=date(2025, 6, 30))
    screened = [r.replace(",none,", ",,", 1) for r in ROWS]  # (designations left unknown)
    src = _gbk_book(tmp_path, screened)
    # the local path, on the rows as Spark decodes them: the name's bytes replaced
    garbled = src.read_bytes().decode("utf-8", errors="replace")
    local_book = tmp_path / "as-decoded.csv"
    local_book.write_text(garbled, encoding="utf-8")
    run_batch(local_book, tmp_path / "local.csv", rules)
    local = read_csv(tmp_path / "local.csv")
    # (the control: the party of po-5 is cleared by the driver's list alone)
    assert [r["outcome"] for r in local if r["id"] == "po-5"] == ["no_license_required"]
    got = _spark_job(tmp_path, [str(src)], executor_data=tmp_path / "executors")
    answered, rejected = _answered_and_rejected(got)
    assert answered == local
    assert rejected == read_csv(tmp_path / "local.csv.rejects.csv")
    assert (rejected[0]["row"], rejected[0]["field"]) == ("1", "party_name")
    assert "U+FFFD" in rejected[0]["message"]


def _spark_job(tmp_path: Path, args: list[str], executor_data: Path | None = None
               ) -> list[dict[str, Any]]:
    """examples/spark_job.py through spark-submit in local mode: the result rows by row
    (``executor_data``: the executors' own data directory, as another machine's)."""
    out = tmp_path / "results"
    conf = ["--conf", "spark.ui.enabled=false"]
    if executor_data is not None:
        executor_data.mkdir()
        conf += ["--conf", f"spark.executorEnv.CHOKEPOINT_DATA_DIR={executor_data}"]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]", *conf,
         str(ROOT / "examples" / "spark_job.py"), args[0], str(out), *args[1:]],
        env={**os.environ, "PYSPARK_PYTHON": sys.executable}, capture_output=True,
        text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return sorted(pq.read_table(out).to_pylist(), key=lambda r: r["row"])


def _answered_and_rejected(got: list[dict[str, Any]]
                           ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The job's rows as the local path's output and rejects files read back."""
    answered = [{k: str(v) if k == "row" else v for k, v in r.items()
                 if not k.startswith("reject_")} for r in got if not r["reject_message"]]
    rejected = [{"row": str(r["row"]), "id": r["id"], "field": r["reject_field"],
                 "message": r["reject_message"]} for r in got if r["reject_message"]]
    return answered, rejected


def test_spark_matches_the_local_path_on_a_fixed_10000_row_book(tmp_path: Path,
                                                                rules: RuleSet) -> None:
    """A seeded synthetic book (chips, tools, parts; listed, unlisted and unscreened buyers;
    unknown facts; dates 2023-2026): Spark gives the local path's rows, byte for byte."""
    pytest.importorskip("pyspark")
    from chokepoint.batch.synthetic import write_book
    from chokepoint.spark import run_spark_batch

    src = tmp_path / "book.parquet"
    write_book(src, 10_000, seed=11)
    local, spark = tmp_path / "local.csv", tmp_path / "spark.csv"
    summary = run_batch(src, local, rules)
    got = run_spark_batch(src, spark)
    assert (got.written, got.rejected) == (summary.written, summary.rejected) == (10_000, 0)
    assert spark.read_bytes() == local.read_bytes()
    # counted as the local engines count (the closing lines of `chokepoint batch`)
    assert (got.rows, got.outcomes, got.missing, got.past_review, got.notes) == (
        summary.rows, summary.outcomes, summary.missing, summary.past_review, summary.notes)
    assert got.missing
    outcomes = summary.outcomes or {}
    # the book exercises every outcome, so identity is not trivially about one answer
    assert set(outcomes) == {"license_required", "no_license_required", "not_subject",
                             "undetermined"}, outcomes


def _interrupted_parquet_run(tmp_path: Path, rules: RuleSet, monkeypatch: pytest.MonkeyPatch,
                             interrupt: Any, rows: int, seed: int, at: int
                             ) -> tuple[Path, Path, Path, list[Path]]:
    """A synthetic Parquet book, its uninterrupted output, and a run of it stopped at row
    ``at`` (parts of 500 rows): (book, clean output, interrupted output, its parts)."""
    from chokepoint.batch import run as batch_run
    from chokepoint.batch.synthetic import write_book

    monkeypatch.setattr(batch_run, "PARQUET_PART_ROWS", 500)
    src = tmp_path / "book.parquet"
    write_book(src, rows, seed=seed)
    clean, out = tmp_path / "clean.parquet", tmp_path / "out.parquet"
    run_batch(src, clean, rules, today=date(2026, 1, 1))
    interrupt(lambda progress: run_batch(src, out, rules, today=date(2026, 1, 1),
                                         progress=progress), at)
    return src, clean, out, sorted((tmp_path / "out.parquet.parts").glob("part-*.arrow"))


def test_an_interrupted_parquet_run_resumes_to_the_same_rows(tmp_path: Path,
                                                             rules: RuleSet,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             interrupt: Any) -> None:
    """Parquet output is checkpointed a part file at a time; a run stopped after some parts
    resumes and ends with exactly the rows of an uninterrupted run."""
    src, clean, out, parts = _interrupted_parquet_run(tmp_path, rules, monkeypatch,
                                                      interrupt, 4000, 3, 2600)
    assert not out.exists() and (tmp_path / "out.parquet.checkpoint").exists()
    assert parts, "parts written before the interruption"
    summary = run_batch(src, out, rules, today=date(2026, 1, 1), resume=True)
    assert summary.rows == 4000 and not (tmp_path / "out.parquet.parts").exists()
    assert pq.read_table(out).to_pylist() == pq.read_table(clean).to_pylist()


def test_a_resume_with_other_settings_or_another_book_is_refused(
        tmp_path: Path, rules: RuleSet, monkeypatch: pytest.MonkeyPatch,
        interrupt: Any) -> None:
    """Rows answered with one --date (or book, column map, rules, lists) must not be
    continued with another: the output would be neither run's. The day taken as "today"
    (for rows without a date) is the interrupted run's."""
    src, clean, out, _ = _interrupted_parquet_run(tmp_path, rules, monkeypatch, interrupt,
                                                  2000, 4, 1600)
    run_file = tmp_path / "out.parquet.checkpoint.run"
    assert json.loads(run_file.read_text())["today"] == "2026-01-01"
    with pytest.raises(BatchError, match="cannot resume: --date differ"):
        run_batch(src, out, rules, override=date(2025, 1, 1), resume=True)
    cmap = tmp_path / "map.yaml"
    cmap.write_text("Dest: to_country\n")
    with pytest.raises(BatchError, match="cannot resume: --columns differ"):
        run_batch(src, out, rules, columns=cmap, resume=True)
    stat = src.stat()
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(BatchError, match=r"cannot resume: the book \(its size"):
        run_batch(src, out, rules, resume=True)
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # the same run, resumed on another day: the interrupted run's day is kept
    identity = run_identity(src, None, {}, False, rules)
    assert resumed_day(run_file, identity, date(2026, 6, 1)) == date(2026, 1, 1)
    summary = run_batch(src, out, rules, today=date(2026, 6, 1), resume=True)
    assert summary.rows == 2000 and not run_file.exists()
    assert pq.read_table(out).to_pylist() == pq.read_table(clean).to_pylist()


def test_a_checkpoint_with_parquet_parts_from_an_earlier_version_resumes(
        tmp_path: Path, rules: RuleSet, monkeypatch: pytest.MonkeyPatch,
        interrupt: Any) -> None:
    """Runs interrupted before the parts became Arrow files left them as Parquet: a resume
    reads those as they are."""
    src, clean, out, parts = _interrupted_parquet_run(tmp_path, rules, monkeypatch,
                                                      interrupt, 2000, 4, 1600)
    assert parts
    for part in parts:  # as the earlier version wrote them
        with pa.ipc.open_file(part) as reader:
            pq.write_table(reader.read_all(), part.with_suffix(".parquet"))
        part.unlink()
    summary = run_batch(src, out, rules, today=date(2026, 1, 1), resume=True)
    assert summary.rows == 2000 and not (tmp_path / "out.parquet.parts").exists()
    assert pq.read_table(out).to_pylist() == pq.read_table(clean).to_pylist()


def test_a_writer_without_checkpoints_writes_no_part_files(tmp_path: Path,
                                                           rules: RuleSet) -> None:
    """Spark's writer (no --resume): the Parquet output's rows, and no checkpoint copy."""
    from chokepoint.batch.run import OUT_COLUMNS, ResultWriter

    src = book(tmp_path / "in.csv", ROWS)
    done = tmp_path / "done.parquet"
    run_batch(src, done, rules)
    rows = pq.read_table(done)
    out = tmp_path / "out.parquet"
    writer = ResultWriter(out, list(OUT_COLUMNS), append=False, checkpoints=False)
    assert not writer.takes_parts
    writer.write_table(rows.slice(0, 2))
    writer.write_table(rows.slice(2))
    assert not list(writer.parts_dir.iterdir())
    writer.close()
    writer.partial.replace(out)
    assert pq.read_table(out).equals(rows)
    assert not writer.parts_dir.exists()


def test_parquet_list_cells_read_as_the_text_layout(tmp_path: Path, rules: RuleSet) -> None:
    """A Parquet book may hold list-valued facts as lists: an empty list is "known: none"
    (as `none` in text), a null cell unknown - in the local engine and in Spark."""
    text = tmp_path / "text.parquet"
    rows = [dict(zip(HEADER.split(","), r.split(","), strict=True)) for r in ROWS]
    pq.write_table(pa.Table.from_pylist(rows), text)

    def as_list(cell: str) -> list[str] | None:
        return None if cell == "" else [] if cell == "none" else cell.split(";")

    lists = tmp_path / "lists.parquet"
    listed = ("end_uses", "party_designations", "us_direct_product_of",
              "us_plant_direct_product_of")
    pq.write_table(pa.Table.from_pylist([
        {k: as_list(v) if k in listed else v for k, v in r.items()} for r in rows],
        schema=pa.schema([(c, pa.list_(pa.string()) if c in listed else pa.string())
                          for c in HEADER.split(",")])), lists)
    assert any(r["party_designations"] == "none" for r in rows)  # (both kinds are there)
    assert any(r["us_direct_product_of"] == "" for r in rows)
    run_batch(text, tmp_path / "text.csv", rules)
    run_batch(lists, tmp_path / "lists.csv", rules)
    assert (tmp_path / "lists.csv").read_text() == (tmp_path / "text.csv").read_text()
    pytest.importorskip("pyspark")
    from chokepoint.spark import run_spark_batch

    run_spark_batch(lists, tmp_path / "spark.csv")
    assert (tmp_path / "spark.csv").read_text() == (tmp_path / "text.csv").read_text()


@given(st.lists(st.lists(st.text(alphabet='ab,"\n\r 中', max_size=6), min_size=2,
                         max_size=2), max_size=8),
       st.booleans())
@settings(max_examples=200, deadline=None)
def test_the_progress_bar_counts_csv_rows_as_the_reader_reads_them(
        tmp_path_factory: pytest.TempPathFactory, cells: list[list[str]],
        blank_lines: bool) -> None:
    """Cells with quotes, commas and line breaks (a line break inside a quoted cell is
    not a row), and blank lines between rows: the count is the rows csv reads."""
    from chokepoint.batch.run import count_rows

    path = tmp_path_factory.mktemp("count") / "book.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "party_name"])
        for row in cells:
            writer.writerow(row)
            if blank_lines:
                fh.write("\r\n")
    with path.open(newline="", encoding="utf-8") as fh:
        assert count_rows(path) == len(list(csv.DictReader(fh)))


def test_the_closing_lines_name_the_column_each_missing_fact_is_given_in() -> None:
    from chokepoint.batch.lacking import column_for, report, tally

    counts: dict[str, int] = {}
    tally(counts, "US:parties[1].designations;NL:parties[1].designations;US:date", 3)
    tally(counts, "US:item.us_content.incorporated_us_items[0].kind;JP:rules:jp.x:3B001")
    tally(counts, "")
    assert counts == {"parties[1].designations": 3, "date": 3, "rules:jp.x:3B001": 1,
                      "item.us_content.incorporated_us_items[0].kind": 1}
    assert [column_for(f) for f in counts] == [
        "party2_designations", "date", "us_incorporated_items", None]
    assert column_for("assertions:back_end_only") == "assertions (back_end_only)"
    assert column_for("item.national_classifications.NL") == "national_NL"
    lines = report(counts, top=3)
    assert lines[0] == "  3 rows  date"
    assert lines[1] == "  3 rows  party2_designations  (parties[1].designations)"
    assert lines[2].startswith("  1 row   us_incorporated_items  (item.us_content.")
    assert lines[3] == "  ... and 1 more fact"
    assert "left open by the rule data" in report(counts)[3]


def test_batch_ends_with_the_columns_that_would_answer_undetermined_rows(
        tmp_path: Path) -> None:
    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 500, seed=3)
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(src),
                           str(tmp_path / "out.csv")], capture_output=True, text=True,
                          check=True)
    tail = done.stderr[done.stderr.index("facts the answers lack"):].splitlines()
    assert "party_designations  (parties[0].designations)" in done.stderr
    assert len(tail) == 12 and tail[-1].startswith("  ... and ")


def test_the_run_ends_with_the_rejected_rows_by_the_column_that_stopped_them(
        tmp_path: Path, rules: RuleSet) -> None:
    """A book whose export writes a fact in its own words (po-3's "China") has every such
    row rejected: the closing lines count them by column, with the first one's message,
    so that the user sees what to map. Both local engines count alike (Spark's count is
    compared in test_spark_local_mode_gives_identical_rows)."""
    src = book(tmp_path / "in.csv", ROWS * 3)
    for engine in ("scalar", "columnar"):
        summary = run_batch(src, tmp_path / f"{engine}.csv", rules, engine=engine)
        assert summary.rejected_by == {"to_country": 3, "chip_tpp": 3}, engine
        assert summary.first_reject["chip_tpp"].startswith("row 4 (id 'po-4'): chip_tpp: ")
        assert summary.first_reject["to_country"].startswith(
            "row 3 (id 'po-3'): to_country: 'China'")
    done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(src),
                           str(tmp_path / "out.csv")], capture_output=True, text=True,
                          check=True)
    tail = done.stderr[done.stderr.index("rows rejected, by the column"):].splitlines()
    assert tail[1] == f"  3 rows  to_country  first: {summary.first_reject['to_country']}"
    assert tail[2].startswith("  3 rows  chip_tpp  first: row 4 (id 'po-4')")


def test_rows_answered_past_the_rule_files_review_say_so_in_every_engine(
        tmp_path: Path, rules: RuleSet) -> None:
    """An open order dated after the rule files' review horizons is answered by rules that
    may have been amended since: its trace warns, and a batch run (whose rows carry no
    trace) says how many rows that is - the same in every engine, Spark's included."""
    from datetime import timedelta

    pytest.importorskip("pyspark")
    from chokepoint.spark import run_spark_batch

    until = rules.reviewed_until()
    assert until is not None
    later = (until + timedelta(days=1)).isoformat()
    rows = [ROWS[0], ROWS[0].replace("po-1,2025-06-02", f"po-9,{later}"),
            ROWS[4].replace("po-5,2025-06-02", f"po-10,{until.isoformat()}")]
    src = book(tmp_path / "in.csv", rows)
    for engine in ("scalar", "columnar", "spark"):
        summary = (run_spark_batch(src, tmp_path / "spark.csv") if engine == "spark" else
                   run_batch(src, tmp_path / f"{engine}.csv", rules, engine=engine,
                             today=date(2026, 1, 1)))
        assert summary.past_review == 1, engine
        assert [n for n in summary.notes if "review horizon" in n] == [
            f"1 row is answered as of a day after {until.isoformat()}, when rule files pass "
            "their review horizon: amendments published since they were reviewed may be "
            "missing (a row's --trace names the files)"], engine
    traced = run_batch(src, tmp_path / "traced.jsonl", rules, with_trace=True,
                       today=date(2026, 1, 1))
    assert traced.past_review == 1
    warned = [json.loads(line)["id"] for line in (tmp_path / "traced.jsonl").open()
              if "review horizon" in line]
    assert warned == ["po-9"]
