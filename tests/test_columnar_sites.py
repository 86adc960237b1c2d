"""Answers kept from block to block (batch.columnar.sites): the same answers as a rule set
that has seen nothing, whatever the blocks before held."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chokepoint.batch.columnar import evaluate_table
from chokepoint.batch.columnar.sites import Site, Sites, pack
from chokepoint.batch.run import OUT_COLUMNS, REGIMES
from chokepoint.batch.synthetic import write_book
from chokepoint.rules.loader import load_rules

TODAY = date(2026, 11, 26)


def test_packed_keys_tell_every_combination_apart() -> None:
    a = np.array([0, 1, 2, 3, 0, 3], dtype=np.int64)
    b = np.array([0, 0, 1, 1, 4, 4], dtype=np.int64)
    site = Site(0)
    widths = site.start([4, 5])
    assert widths == (2, 3)
    key = pack([a, b], widths)
    assert len(set(key.tolist())) == 6 and key.max() < 1 << 5
    assert pack([a, np.zeros(6, dtype=np.int64)], (2, 0)).tolist() == a.tolist()


def test_a_site_finds_what_it_remembered_and_forgets_when_an_input_outgrows_its_bits(
        ) -> None:
    site = Site(0)
    widths = site.start([1 << 20, 1 << 20])  # too wide for a cell per combination
    assert widths is not None and not site.direct
    keys = pack([np.array([5, 6, 7]), np.array([1, 2, 3])], widths)
    assert site.look_up(keys).tolist() == [-1, -1, -1]
    site.remember(keys[[2, 0]], np.array([10, 11]))
    assert site.look_up(keys).tolist() == [11, -1, 10]
    # one input now has more values than its bits hold: its codes are packed anew, so
    # what was kept under the old packing is dropped rather than misread
    wider = site.start([1 << 21, 1 << 20])
    assert wider != widths
    assert site.look_up(pack([np.array([5]), np.array([1])], wider)).tolist() == [-1]


def test_narrow_sites_keep_a_cell_per_combination() -> None:
    site = Site(0)
    widths = site.start([3, 2])
    assert widths is not None and site.direct
    cells = pack([np.array([2, 0, 2, 1]), np.array([1, 0, 1, 1])], widths)
    assert site.read(cells).tolist() == [-1] * 4
    fresh, rows = site.first_rows(cells, np.arange(4))
    assert len(fresh) == 3 and sorted(cells[rows].tolist()) == sorted(fresh.tolist())
    site.fill(fresh, np.arange(3) + 7)
    found = site.read(cells)
    assert found[0] == found[2] and len(set(found.tolist())) == 3 and found.min() == 7


def test_facts_keep_their_codes_from_block_to_block() -> None:
    sites = Sites()
    first, size, keys = sites.fact("f", np.array([0, 1, 0]), ["CN", "US"])
    second, size2, _ = sites.fact("f", np.array([1, 0, 2]), ["NL", "CN", "US"])
    assert (first.tolist(), size) == ([0, 1, 0], 2)
    assert (second.tolist(), size2) == ([0, 2, 1], 3)  # CN, NL, US: 0, 2, 1 as before
    assert keys == ["CN", "US", "NL"]


def _blocks(tmp_path: Path) -> list[pa.Table]:
    """Three blocks of a synthetic book: the second's rows narrowed to a few countries and
    one customer, so that the third brings values the rule set's codes must grow for,
    with rows that fail validation in every block."""
    path = tmp_path / "book.parquet"
    write_book(path, 9000, seed=21)
    table = pq.read_table(path)
    one, two, three = table.slice(0, 3000), table.slice(3000, 3000), table.slice(6000, 3000)
    narrow = two.to_pylist()
    for n, row in enumerate(narrow):
        row["to_country"] = "CN" if n % 2 else "HK"
        row["party_name"] = "Only Customer Ltd"
    two = pa.Table.from_pylist(narrow, schema=table.schema)
    broken = three.to_pylist()
    for n in range(0, len(broken), 97):
        broken[n]["date"] = "2025-13-40"  # not a date: that row goes to the scalar path
    return [two, one, pa.Table.from_pylist(broken, schema=table.schema)]


def test_a_warm_rule_set_answers_each_block_as_a_fresh_one_does(tmp_path: Path) -> None:
    warm = load_rules()
    for n, block in enumerate(_blocks(tmp_path)):
        kept, left = evaluate_table(block, warm, None, TODAY, 1, REGIMES, OUT_COLUMNS)
        fresh, fresh_left = evaluate_table(block, load_rules(), None, TODAY, 1, REGIMES,
                                           OUT_COLUMNS)
        assert kept.to_pylist() == fresh.to_pylist(), f"block {n}"
        assert left.tolist() == fresh_left.tolist()
    assert len(left) > 0  # the broken rows of the last block were left to the scalar path


def test_sites_that_outgrow_their_bound_start_again_between_blocks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chokepoint.batch.columnar import evaluator

    warm = load_rules()
    blocks = _blocks(tmp_path)
    evaluate_table(blocks[1], warm, None, TODAY, 1, REGIMES, OUT_COLUMNS)
    before = evaluator.sites_of(warm)
    assert before.entries > 0
    monkeypatch.setattr(evaluator, "SITES_LIMIT", 0)
    kept, _ = evaluate_table(blocks[2], warm, None, TODAY, 1, REGIMES, OUT_COLUMNS)
    now = warm.memo("columnar-sites")["sites"]
    assert now is not before and now.entries > 0  # dropped before the block, not during
    fresh, _ = evaluate_table(blocks[2], load_rules(), None, TODAY, 1, REGIMES, OUT_COLUMNS)
    assert kept.to_pylist() == fresh.to_pylist()


def test_code_types_are_the_narrowest_that_hold_the_codes_and_none() -> None:
    from chokepoint.batch.columnar.codes import code_type, fitted

    assert [code_type(n) for n in (0, 127, 128, 32767, 32768, 10**6)] == [
        np.int8, np.int8, np.int16, np.int16, np.int32, np.int32]
    small = np.array([3, -1], dtype=np.int8)
    assert fitted(small, 100) is small  # (fits: the same array, no copy)
    assert fitted(small, 200).dtype == np.int16 and fitted(small, 200).tolist() == [3, -1]


@pytest.mark.parametrize("direct", [True, False])
def test_a_site_widens_its_tables_as_its_answers_grow(direct: bool) -> None:
    """A site starts with int8 answer codes and widens them when a later block brings the
    128th or the 32,768th answer: no code is ever wrapped round."""
    site = Site(0)
    sizes = [64, 1 << 10] if direct else [1 << 20, 1 << 20]
    widths = site.start(sizes)
    assert widths is not None and site.direct == direct
    rng = np.random.default_rng(5)
    a = rng.permutation(sizes[0])[:60]
    b = rng.permutation(1 << 10)[:60]
    keys = pack([a, b], widths)
    for batch, first in enumerate((0, 100, 40_000)):  # answer codes, block by block
        sel = slice(batch * 20, batch * 20 + 20)
        answers = np.arange(first, first + 20, dtype=np.int32)
        for value in range(site.values.size, first + 20):
            site.values.code(value)  # (the site's values, as the evaluator interns them)
        if direct:
            site.fill(keys[sel], answers)
        else:
            site.remember(keys[sel], answers)
    found = site.read(keys) if direct else site.look_up(keys)
    assert found.tolist() == [*range(0, 20), *range(100, 120), *range(40_000, 40_020)]
    assert found.dtype == np.int32


def test_inputs_too_wide_to_pack_are_kept_by_their_codes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sites whose inputs take more bits together than a packed key holds keep their
    answers by the tuple of the inputs' codes: a warm rule set answers each block as a
    fresh one does, and a block seen before is answered without evaluating anything."""
    from chokepoint.batch.columnar import evaluator, sites

    monkeypatch.setattr(sites, "MAX_BITS", 12)  # (most sites too wide, on a small book)
    warm = load_rules()
    blocks = _blocks(tmp_path)
    for n, block in enumerate(blocks):
        kept, _ = evaluate_table(block, warm, None, TODAY, 1, REGIMES, OUT_COLUMNS)
        fresh, _ = evaluate_table(block, load_rules(), None, TODAY, 1, REGIMES,
                                  OUT_COLUMNS)
        assert kept.to_pylist() == fresh.to_pylist(), f"block {n}"
    kept_sites = evaluator.sites_of(warm)
    assert sum(len(s.by_tuple) for s in kept_sites._sites.values()) > 0
    evaluated = kept_sites.evaluated
    # (the last block again: how rules are split into sites follows how many values the
    # facts have taken so far, so an earlier block may meet sites made since)
    again, _ = evaluate_table(blocks[-1], warm, None, TODAY, 1, REGIMES, OUT_COLUMNS)
    assert kept_sites.evaluated == evaluated
    assert again.to_pylist() == fresh.to_pylist()
