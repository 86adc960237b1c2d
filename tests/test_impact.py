"""Rule-change impact on a flat book via the columnar engine equals the row-by-row report."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chokepoint.batch.impact import book_impact
from chokepoint.batch.run import parse_row, read_rows
from chokepoint.diff import order_impact
from chokepoint.rules.ruleset import RuleSet


@pytest.mark.parametrize("d1,d2", [(date(2024, 12, 1), date(2024, 12, 2)),
                                   (date(2023, 10, 16), date(2025, 1, 16))])
def test_book_impact_equals_the_row_by_row_report(tmp_path: Path, rules: RuleSet,
                                                  d1: date, d2: date) -> None:
    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 2500, seed=4)
    fast = book_impact(src, rules, d1, d2)
    transactions = [parse_row(raw, n) for n, raw in read_rows(src, {})]
    slow = order_impact(transactions, rules, d1, d2)
    assert fast == slow
    assert slow["changed_rows"], "the dates must move some orders for this to mean anything"
    if d2 == date(2024, 12, 2):  # (orders moved by an exclusion that took effect that day)
        assert any(r["caused_by"] == ["744.23(a)(2)(iv)"]
                   and "744.23(a)(2)(i)" in r["regimes"]["US"]["rules_removed"]
                   for r in slow["changed_rows"])
        # and orders moved by their party's new Entity List entry, named by it
        assert any(c.startswith("US:") for c in slow["by_cause"])


def test_a_book_with_a_bad_row_is_reported_by_the_diff_command(tmp_path: Path) -> None:
    src = tmp_path / "book.csv"
    src.write_text("id,to_country,item_eccn,chip_tpp\na,CN,3A090.a,\nb,CN,3A090.a,lots\n")
    out = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from", "2024-12-01",
                          "--to", "2024-12-02", str(src)], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 2 and "row 2" in out.stderr and "chip_tpp" in out.stderr
    out = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from", "2024-12-01",
                          "--to", "2024-12-02", str(src), "--out",
                          str(tmp_path / "moved.parquet")], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 2 and "row 2" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.csv"]  # nothing written


def test_book_impact_from_answers_kept_by_an_earlier_run_is_the_same_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chokepoint.batch.columnar import cache
    from chokepoint.batch.synthetic import write_book
    from chokepoint.rules.loader import load_rules

    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", str(tmp_path / "cache"))
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    write_book(first, 2000, seed=5)
    write_book(second, 2000, seed=6)
    d1, d2 = date(2024, 12, 1), date(2024, 12, 2)
    book_impact(first, load_rules(), d1, d2)  # keeps its answers on disk
    warm = load_rules()
    report = book_impact(second, warm, d1, d2)
    assert warm.memo("columnar-cache")["loaded"] > 0
    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", "off")
    assert report == book_impact(second, load_rules(), d1, d2)
    assert cache.cache_file(warm) is None


@pytest.mark.parametrize("on", [date(2024, 12, 1), date(2025, 6, 1)])
def test_what_decides_each_row_reads_the_same_from_the_flat_cells(
        tmp_path: Path, rules: RuleSet, on: date) -> None:
    """The impact report compares regimes by their outcome, deciding rules and review
    policies; the columnar cells must give exactly what the full determination does,
    including a licence requirement without a review policy (which the policy cell alone
    cannot show)."""
    from chokepoint.batch.columnar import CELLS, evaluate_table
    from chokepoint.batch.columnar_run import blocks
    from chokepoint.batch.impact import deciding_of
    from chokepoint.batch.synthetic import write_book
    from chokepoint.diff import deciding
    from chokepoint.screening.service import determine_screened

    src = tmp_path / "book.parquet"
    write_book(src, 3000, seed=8)
    regimes = tuple(sorted(rules.regimes))
    columns = ["row", *(f"{c}_{cell}" for c in regimes for cell in CELLS)]
    (table,) = list(blocks(src, {}, 10_000))
    flat, left = evaluate_table(table, rules, on, on, 1, regimes, columns)
    assert not len(left)
    policies: set[str] = set()
    for cells, (n, raw) in zip(flat.to_pylist(), read_rows(src, {}), strict=True):
        assert cells["row"] == n
        expected = deciding(determine_screened(parse_row(raw, n), rules, on))
        assert deciding_of(cells, regimes) == expected, n
        policies |= {p for _, _, ps in expected.values() for p in ps}
    assert "" in policies and len(policies) > 1  # (both kinds of requirement were met)


def test_diff_writes_the_moved_orders_as_a_table(tmp_path: Path, rules: RuleSet) -> None:
    from chokepoint.batch.synthetic import write_book
    from chokepoint.diff import changed_row_columns

    src = tmp_path / "book.parquet"
    write_book(src, 2500, seed=4)
    d1, d2 = date(2024, 12, 1), date(2024, 12, 2)
    report = order_impact([parse_row(raw, n) for n, raw in read_rows(src, {})], rules, d1, d2)
    moved = tmp_path / "moved.csv"
    args = [sys.executable, "-m", "chokepoint", "diff", "--from", str(d1), "--to", str(d2),
            str(src), "--out", str(moved)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    with moved.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == changed_row_columns(sorted(rules.regimes))
    assert [int(r["row"]) for r in table] == [r["row"] for r in report["changed_rows"]]
    for cells, entry in zip(table, report["changed_rows"], strict=True):
        assert cells["caused_by"].split(";") == entry["caused_by"]
        for code in rules.regimes:
            ch = entry["regimes"].get(code)
            assert cells[f"{code}_outcome_to"] == (ch["outcome"]["to"] if ch else "")
            assert cells[f"{code}_rules_added"] == (";".join(ch["rules_added"]) if ch else "")
    assert any("(none)" in r["US_review_policy_from"] for r in table)
    # stdout tells how many orders each change moves, not which
    assert f"Orders that change: {len(table)} (one row each in {moved})" in done.stdout
    first = next(iter(report["by_cause"].items()))
    assert f"  caused by {first[0]}: {len(first[1])} order(s)" in done.stdout
    summary = json.loads(subprocess.run(
        [*args[:-1], str(tmp_path / "moved.parquet"), "--format", "json"],
        capture_output=True, text=True, check=True).stdout)
    assert summary["changed_row_count"] == len(table) and "changed_rows" not in summary
    assert summary["by_cause_count"] == {k: len(v) for k, v in report["by_cause"].items()}
    assert pq.read_table(tmp_path / "moved.parquet").num_rows == len(table)
    none = tmp_path / "none.csv"  # no rule changes between the dates: the columns only
    subprocess.run([*args[:4], "--from", str(d2), "--to", str(d2), str(src), "--out",
                    str(none)], capture_output=True, text=True, check=True)
    assert none.read_text().splitlines() == [",".join(changed_row_columns(
        sorted(rules.regimes)))]
    refused = subprocess.run([*args[:-1], str(tmp_path / "moved.txt")], capture_output=True,
                             text=True, check=False)
    assert refused.returncode == 2 and "--out takes ORDERS" in refused.stderr
    refused = subprocess.run([*args[:-1], str(src)], capture_output=True, text=True,
                             check=False)
    assert refused.returncode == 2 and "would replace the book" in refused.stderr


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_of_moved_orders_that_fails_midway_leaves_nothing(
        tmp_path: Path, suffix: str) -> None:
    from chokepoint.batch import impact

    entry = {"row": 1, "id": "a", "outcome": {"from": "x", "to": "y"}, "regimes": {},
             "caused_by": ["r"]}
    made = []

    def tables() -> Iterator[pa.Table]:
        made.append(1)
        yield impact.changed_rows_table([entry], ["US"])
        made.append(2)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        impact.write_changed_rows(tables(), tmp_path / f"m{suffix}", ["US"])
    assert made == [1, 2] and not list(tmp_path.iterdir())


def test_diff_reads_a_book_with_its_own_column_names(tmp_path: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from chokepoint.batch.synthetic import write_book

    src = tmp_path / "book.parquet"
    write_book(src, 600, seed=4)
    table = pq.read_table(src)
    theirs = {"to_country": "Dest", "party_name": "Customer", "item_model": "Part"}
    erp = tmp_path / "erp.csv"
    table = table.rename_columns([theirs.get(c, c) for c in table.column_names])
    # (and China in the ERP's words, read back by a value map)
    dest = table.column("Dest")
    table = table.set_column(table.column_names.index("Dest"), "Dest",
                             pc.if_else(pc.equal(dest, "CN"), "China", dest))
    pacsv.write_csv(table, erp)
    cmap = tmp_path / "map.yaml"
    cmap.write_text("".join(f"{v}: {k}\n" for k, v in theirs.items() if v != "Dest")
                    + "Dest:\n  column: to_country\n  values: {China: CN}\n")

    def diff(*args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from",
                               "2024-12-01", "--to", "2024-12-02", *args, "--format", "json"],
                              capture_output=True, text=True, check=True)
        return dict(json.loads(done.stdout))

    mapped, plain = diff(str(erp), "--columns", str(cmap)), diff(str(src))
    assert mapped["changed_rows"] and mapped == plain
    refused = subprocess.run([sys.executable, "-m", "chokepoint", "diff", "--from",
                              "2024-12-01", "--to", "2024-12-02", "--columns", str(cmap)],
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "name the book" in refused.stderr


def test_diff_suggests_a_table_when_many_orders_move(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MOVED_SHOWN moved orders, the text report (a line or two per order) is
    followed by a note on stderr naming --out; with --out, or below it, there is none."""
    from typer.testing import CliRunner

    from chokepoint.batch.synthetic import write_book
    from chokepoint.cli import main

    src = tmp_path / "book.parquet"
    write_book(src, 400, seed=4)
    args = ["diff", "--from", "2024-12-01", "--to", "2024-12-02", str(src)]
    runner = CliRunner()
    quiet = runner.invoke(main.app, args)
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr
    monkeypatch.setattr(main, "MOVED_SHOWN", 5)
    many = runner.invoke(main.app, args)
    moved = int(many.stdout.split("Orders that change: ")[1].split()[0])
    assert moved > 5 and f"note: {moved:,} orders moved; --out moved.csv" in many.stderr
    table = runner.invoke(main.app, [*args, "--out", str(tmp_path / "moved.csv")])
    assert table.exit_code == 0 and "note:" not in table.stderr
