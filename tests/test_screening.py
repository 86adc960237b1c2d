"""Screening: loaders on every shared data file, matching phenomena, the engine hook."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from chokepoint.engine import determine
from chokepoint.rules.ruleset import RuleSet
from chokepoint.screening.lists import ListEntry, ListFormatError, load_list
from chokepoint.screening.match import MATCH, REVIEW, ScreeningIndex
from chokepoint.screening.service import Screener, screen_parties, snapshot_entries

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FIX = Path(__file__).parent / "fixtures" / "lists"
needs_shared = pytest.mark.skipif(not DATA.exists(), reason="../shared/data not present")


@needs_shared
@pytest.mark.parametrize(("path", "count", "aliases"), [
    ("csl_samples/csl_sample_2025.csv", 13, 15),
    ("csl_samples/csl_sample_2019.csv", 115, 161),
    ("ofac_sdn_2021/sdn.csv", 8976, 11910),
    ("bis_dpl_2022/dpl.txt", 581, 0),
])
def test_loaders_read_every_shared_file(path: str, count: int, aliases: int) -> None:
    entries = load_list(DATA / path)
    assert len(entries) == count
    assert sum(len(e.aliases) for e in entries) == aliases


@needs_shared
def test_sdn_addresses_countries_and_latin1() -> None:
    entries = {e.entry_id: e for e in load_list(DATA / "ofac_sdn_2021" / "sdn.csv")}
    bnc = entries["306"]
    assert bnc.name == "BANCO NACIONAL DE CUBA" and "NATIONAL BANK OF CUBA" in bnc.aliases
    assert any("Zurich" in a for a in bnc.addresses)
    assert entries["36"].country == "CU"


@needs_shared
def test_dpl_and_csl_fields() -> None:
    dpl = load_list(DATA / "bis_dpl_2022" / "dpl.txt")
    assert dpl[1].name == "AARON ABRAHAM VILLA" and dpl[1].list == "denied_persons"
    csl = load_list(DATA / "csl_samples" / "csl_sample_2019.csv")
    assert csl[0].list == "denied_persons" and csl[0].start_date == "2017-10-16"


def test_watch_list_and_malformed_files_name_the_line(tmp_path: Path) -> None:
    watch = load_list(FIX / "watch.csv")
    assert watch[0].aliases == ("GPB", "Gazprom Bank JSC") and watch[0].country == "RU"
    with pytest.raises(ListFormatError, match="line 1"):
        load_list(FIX / "bad_csl.csv")
    bad = tmp_path / "sdn.csv"
    bad.write_text('x1,"NAME",-0- ,"PROG",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n')
    with pytest.raises(ListFormatError, match="line 1: entity number"):
        load_list(bad)


def _index(rules: RuleSet) -> ScreeningIndex:
    extra = load_list(FIX / "watch.csv")
    filler = [ListEntry("watch_list", f"f{i}", f"{w} International Trading Co", (), "HK")
              for i, w in enumerate(["Alpha", "Beta", "Gamma", "Delta", "Sigma", "Omega"])]
    return ScreeningIndex(snapshot_entries(rules, date(2025, 6, 1)) + extra + filler)


def test_chinese_characters_find_smic_through_its_chinese_name(rules: RuleSet) -> None:
    (top, *_) = _index(rules).screen("中芯国际集成电路制造有限公司")
    assert top.entry.entry_id == "smic" and top.score >= MATCH
    assert top.matched_name == "中芯国际集成电路制造有限公司"


def test_a_subsidiary_with_a_place_name_is_review_not_match(rules: RuleSet) -> None:
    hits = {h.entry.entry_id: h for h in _index(rules).screen("中芯国际集成电路制造有限公司")}
    assert REVIEW <= hits["smic-beijing"].score < MATCH


def test_chinese_name_meets_english_form_through_translation(rules: RuleSet) -> None:
    (top, *_) = _index(rules).screen("长江存储科技有限责任公司")
    assert top.entry.entry_id == "ymtc" and top.score >= MATCH


def test_chinese_names_meet_english_only_entries_through_pinyin_words(rules: RuleSet) -> None:
    """A run of untranslated characters is one pinyin word, place names are written as in
    English: 华为 -> huawei, 深圳 -> shenzhen, 鹏新旭 -> pengxinxu."""
    from chokepoint.screening.normalise import normalise

    assert normalise("深圳市鹏新旭技术有限公司").tokens == ("shenzhen", "pengxinxu", "technology")
    assert normalise("华为技术有限公司").alternatives == ()
    assert ("wuhan", "xinxin", "semiconductor") in normalise("武汉新芯集成电路").alternatives
    english = ScreeningIndex([
        ListEntry("entity_list", "huawei", "Huawei Technologies Co., Ltd.", (), "CN"),
        ListEntry("entity_list", "pxw", "Shenzhen Pengxinxu Technology Co., Ltd.", (), "CN"),
        ListEntry("entity_list", "jhicc", "Fujian Jinhua Integrated Circuit Co., Ltd.", (),
                  "CN"),
        ListEntry("entity_list", "xmc", "Wuhan Xinxin Semiconductor Manufacturing Co., Ltd.",
                  (), "CN")])
    for query, want in (("华为技术有限公司", "huawei"), ("深圳市鹏新旭技术有限公司", "pxw"),
                        ("福建省晋华集成电路有限公司", "jhicc"),
                        # 集成电路 rendered as "semiconductor", as this company writes it
                        ("武汉新芯集成电路制造有限公司", "xmc")):
        (top, *_) = english.screen(query)
        assert top.entry.entry_id == want and top.score >= REVIEW, query


def test_a_typo_does_not_hide_the_entry_among_names_sharing_a_word() -> None:
    """Thirty 'HADI ...' names share the query's rare word; the typo'd 'SgHIPPING' still
    brings the right one into the candidates (symmetric-delete keys)."""
    crowd = [ListEntry("sdn", f"h{i}", f"HADI {w} TRADING", (), "IR")
             for i, w in enumerate(["ALPHA", "BETA", "GAMMA", "DELTA", "OMEGA", "SIGMA", "KAPPA",
                                    "ZETA", "THETA", "IOTA", "LAMBDA", "EPSILON", "RHO", "TAU",
                                    "PHI", "CHI", "PSI", "NU", "XI", "MU", "ETA", "PI", "OMICRON",
                                    "UPSILON", "ALEF", "BET", "GIMEL", "DALET", "HE", "VAV"])]
    target = ListEntry("sdn", "ship", "HADI SHIPPING COMPANY LIMITED", (), "IR")
    (top, *_) = ScreeningIndex([*crowd, target]).screen("HADI SgHIPPING COMPANY LIMITED")
    assert top.entry.entry_id == "ship" and top.score >= REVIEW


def test_joined_and_split_tokens(rules: RuleSet) -> None:
    (top, *_) = _index(rules).screen("Gazprom Bank")
    assert top.entry.name == "Gazprombank" and top.score >= MATCH
    assert any("joined/split" in e for e in top.evidence) or top.matched_name != "Gazprombank"


def test_generic_words_alone_never_match(rules: RuleSet) -> None:
    index = _index(rules)
    assert index.screen("CORP") == []
    assert all(h.score < REVIEW for h in index.screen("International Trading Company", None, 0))


def test_typos_reordering_legal_forms_and_abbreviations(rules: RuleSet) -> None:
    index = _index(rules)
    for query in ["Semiconductor Manufactoring International Corp",
                  "International Semiconductor Manufacturing Corporation",
                  "SEMICONDUCTOR MANUFACTURING INTL CO., LTD.",
                  "Semiconductor Manufacturing International"]:
        (top, *_) = index.screen(query)
        assert top.entry.entry_id == "smic", query
        assert top.score >= MATCH, (query, top.score)


def test_country_mismatch_lowers_never_raises(rules: RuleSet) -> None:
    index = _index(rules)
    same = index.screen("Yangtze Memory Technologies", "CN")[0].score
    other = index.screen("Yangtze Memory Technologies", "US")[0].score
    none = index.screen("Yangtze Memory Technologies")[0].score
    assert other < same and same == none


def test_hits_explain_which_alias_and_tokens(rules: RuleSet) -> None:
    (top, *_) = _index(rules).screen("SMIC")
    d = top.as_dict()
    assert d["matched_name"] == "SMIC" and d["name"].startswith("Semiconductor Manufacturing")
    assert d["matched_tokens"][0]["query"] == "smic" and d["footnotes"] == [5]


def test_engine_hook_sets_designation_on_match_and_asks_on_review(rules: RuleSet) -> None:
    on = date(2025, 6, 1)
    screener = Screener(snapshot_entries(rules, on))
    txn = {"to_country": "CN", "item": {"made_in": "US"}, "parties": [
        {"role": "end_user", "name": "Semiconductor Manufacturing International Corp."},
        {"role": "purchaser", "name": "中芯国际集成电路制造（宁波）公司"},
        {"role": "other", "name": "Example Unlisted Trading (invented)"}]}
    out, hits, review = screen_parties(txn, screener, on)
    assert out["parties"][0]["designations"] == [{"list": "entity_list", "footnotes": [5]}]
    assert out["parties"][1].get("designations") is None and 1 in review
    # without a complete list in force, no hit does not clear a party
    assert out["parties"][2].get("designations") is None
    cleared, _, _ = screen_parties(txn, Screener(snapshot_entries(rules, on),
                                                 complete_until=on), on)
    assert cleared["parties"][2]["designations"] == []
    assert hits and hits[0]["party_index"] == 0


def test_check_screens_parties_and_reports_hits(tmp_path: Path) -> None:
    txn = tmp_path / "t.yaml"
    txn.write_text("date: '2025-06-02'\nfrom_country: US\nto_country: CN\n"
                   "item: {made_in: US, eccn: EAR99}\nend_uses: []\nus_person_support: false\n"
                   "parties: [{role: end_user, name: 'SEMICONDUCTOR MANUFACTURING INTL CORP'}]\n")
    env = {"CHOKEPOINT_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "chokepoint", "check", str(txn),
                             "--format", "json"], capture_output=True, text=True, env=env,
                            check=False)
    assert result.returncode == 0, result.stderr
    (d,) = json.loads(result.stdout)
    assert d["screening"][0]["entry_id"] == "smic"
    assert d["jurisdictions"]["US"]["outcome"] == "license_required"


@needs_shared
def test_screen_cli_against_given_list_and_import(tmp_path: Path) -> None:
    env = {"CHOKEPOINT_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "chokepoint", *a],  # noqa: E731
                                    capture_output=True, text=True, env=env, check=False)
    out = run("screen", "Banco Nacional de Cuba", "--list",
              str(DATA / "ofac_sdn_2021" / "sdn.csv"), "--format", "json")
    hits = json.loads(out.stdout)
    assert hits[0]["entry_id"] == "306" and hits[0]["score"] == 1.0
    names = tmp_path / "names.csv"
    names.write_text("id,name\nq1,Banco Nacional de Cuba\nq2,Example Nobody\n")
    csv_out = run("screen", "--file", str(names), "--list",
                  str(DATA / "ofac_sdn_2021" / "sdn.csv"), "--format", "csv").stdout
    assert csv_out.splitlines()[1].startswith("q1,Banco Nacional de Cuba,sdn,306")
    imported = run("lists", "import", str(DATA / "csl_samples" / "csl_sample_2025.csv"))
    assert imported.returncode == 0 and "complete list" in imported.stderr
    assert (tmp_path / "lists").exists()


def test_one_screener_per_set_of_entries_in_force(rules: RuleSet) -> None:
    from chokepoint.screening.service import screener_for

    # an order book spread over many days builds an index per distinct snapshot, not per day
    assert screener_for(rules, date(2023, 6, 1)) is screener_for(rules, date(2023, 6, 2))
    before, after = date(2022, 10, 8), date(2025, 6, 1)
    assert len(snapshot_entries(rules, before)) < len(snapshot_entries(rules, after))
    assert screener_for(rules, before) is not screener_for(rules, after)
    # the index built for a day only holds the entries in force that day
    names = {e.name for e in snapshot_entries(rules, after)} - {
        e.name for e in snapshot_entries(rules, before)}
    late = sorted(names)[0]
    assert not any(h.score >= MATCH for h in screener_for(rules, before).screen(late))
    assert any(h.score >= MATCH for h in screener_for(rules, after).screen(late))


def _queries(entries: list[ListEntry], n: int, seed: int) -> list[tuple[str, str | None]]:
    """Distinct names near listed ones (a letter dropped, words reordered or run together,
    a Chinese name), some with a country, some unrelated."""
    import random

    rng = random.Random(seed)
    names: dict[tuple[str, str | None], None] = {}
    while len(names) < n:
        e = rng.choice(entries)
        words = rng.choice(e.names()).split()
        kind = rng.randrange(5)
        if kind == 0 and words:
            w = rng.randrange(len(words))
            cut = rng.randrange(len(words[w]) or 1)
            words[w] = words[w][:cut] + words[w][cut + 1:]
        elif kind == 1:
            rng.shuffle(words)
        elif kind == 2 and len(words) >= 2:
            words[:2] = [words[0] + words[1]]
        elif kind == 3:
            words = [rng.choice(["Zephyr", "Marlow", "Quill"]), "Trading", "Co"]
        country = rng.choice([None, None, "CN", "RU", e.country])
        names[(" ".join(words) or "x", country)] = None
    return list(names)


@needs_shared
def test_screening_in_bulk_equals_one_by_one(rules: RuleSet) -> None:
    """The bulk path (sparse product, pairwise similarities, score bounds) gives exactly
    the hits of one query at a time, at both thresholds."""
    entries = load_list(DATA / "ofac_sdn_2021" / "sdn.csv")
    index = ScreeningIndex(entries[:3000] + snapshot_entries(rules, date(2025, 6, 1)))
    queries = _queries(index.entries, 600, 3) + [
        ("中芯国际集成电路制造有限公司", None), ("Gazprom Bank", None), ("CORP", None)]
    for threshold in (REVIEW, 0.4):
        one = [[h.as_dict() for h in index.screen(n, c, threshold)] for n, c in queries]
        bulk = [[h.as_dict() for h in hits] for hits in index.screen_many(queries, threshold)]
        assert bulk == one
        assert sum(map(len, one)) > len(queries) // 2  # the comparison is not empty


def test_screen_many_on_two_processes_equals_one_by_one(rules: RuleSet) -> None:
    from chokepoint.screening.parallel import screen_many

    index = _index(rules)
    distinct = _queries(index.entries, 700, 5)
    names = distinct + distinct[:100]  # a repeated name is screened once, answered twice
    one = [[h.as_dict() for h in index.screen(n, c)] for n, c in names]
    got = screen_many(index, names, workers=2, chunk=50)
    assert got == one
    assert got[-1] == got[99] and (got[-1] is not got[99] or not got[-1])


@pytest.mark.parametrize("fault", ["raises", "dies"])
def test_screen_many_reports_a_failed_child_process(rules: RuleSet, fault: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A forked screening process that fails or dies is an error, never a list with
    hits missing."""
    import os
    import signal

    from chokepoint.screening.parallel import screen_many

    index = _index(rules)
    parent = os.getpid()
    real = ScreeningIndex.screen_many

    def faulty(self: ScreeningIndex, queries: Any, threshold: float = REVIEW) -> Any:
        if os.getpid() != parent:  # only in the forked child
            if fault == "dies":
                os.kill(os.getpid(), signal.SIGKILL)
            raise ValueError("broken in the child")
        return real(self, queries, threshold)

    monkeypatch.setattr(ScreeningIndex, "screen_many", faulty)
    names = _queries(index.entries, 300, 9)
    message = "broken in the child" if fault == "raises" else "ended without its hits"
    with pytest.raises(RuntimeError, match=message):
        screen_many(index, names, workers=2, chunk=50)


@needs_shared
def test_ascii_names_are_normalised_in_short_as_in_full() -> None:
    from chokepoint.screening.normalise import _normalise_any, normalise

    names = [e.name for e in load_list(DATA / "ofac_sdn_2021" / "sdn.csv")[:4000]]
    names += ["Foo Co., Ltd. (formerly Bar Trading)", "X Corp; and any successor",
              "ACME (FORMERLY Widget) GmbH", "  ", "", "Intl Tech Grp"]
    assert sum(n.isascii() for n in names) > 3500
    for name in names:
        assert normalise.__wrapped__(name) == _normalise_any(name), name


def test_pairs_skipped_before_comparison_are_below_the_floor() -> None:
    """``could_reach_floor`` is a necessary condition: every pair of tokens whose
    similarity reaches TOKEN_FLOOR passes it (typos, prefixes, abbreviations, reordered
    letters, digits, other scripts' letters), so skipping the others loses nothing."""
    import random

    import numpy as np

    from chokepoint.screening.bulk import char_counts, could_reach_floor
    from chokepoint.screening.match import TOKEN_FLOOR, token_similarity

    rng = random.Random(11)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789éü"
    words = [w for e in load_list(FIX / "watch.csv") for w in e.name.lower().split()]
    words += ["tech", "technology", "intl", "international", "huawei", "zhongxin", "ab"]
    pairs = []
    for _ in range(20_000):
        a = rng.choice(words) if rng.random() < 0.5 else "".join(
            rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        b = list(a)
        for _ in range(rng.randint(0, 3)):  # edits: change, drop, add, swap, cut
            kind = rng.choice("cdasp")
            i = rng.randrange(len(b) + 1)
            if kind == "c" and i < len(b):
                b[i] = rng.choice(alphabet)
            elif kind == "d" and len(b) > 1 and i < len(b):
                del b[i]
            elif kind == "a":
                b.insert(i, rng.choice(alphabet))
            elif kind == "s" and i + 1 < len(b):
                b[i], b[i + 1] = b[i + 1], b[i]
            elif kind == "p" and len(b) > 2:
                b = b[:max(1, i)]
        pairs.append((a, "".join(b)))
    pairs += [(rng.choice(words), rng.choice(words)) for _ in range(5_000)]  # unrelated
    a_tok, b_tok = [a for a, _ in pairs], [b for _, b in pairs]
    common = np.minimum(char_counts(a_tok), char_counts(b_tok)).sum(axis=1)
    passes = could_reach_floor(common, np.array([len(t) for t in a_tok]),
                               np.array([len(t) for t in b_tok]))
    reach = np.array([token_similarity(a, b) >= TOKEN_FLOOR for a, b in pairs])
    assert reach.sum() > 2000 and (~reach).sum() > 2000  # both kinds are well represented
    assert not (reach & ~passes).any(), [p for p, r, ok in zip(pairs, reach, passes,
                                                               strict=True) if r and not ok]
    assert (~reach & ~passes).sum() > 1000  # and it does skip pairs


def test_a_primed_screener_answers_as_one_screened_at_a_time(rules: RuleSet) -> None:
    """``Screener.prime`` screens in bulk ahead of ``screen`` (as a batch does for its
    distinct parties): the same hits as a fresh screener's, from its cache."""
    entries = snapshot_entries(rules, date(2025, 6, 1))
    names = _queries(entries, 300, 13)
    primed, fresh = Screener(entries), Screener(entries)
    primed.prime(names)
    for name, country in names:
        got = primed.screen(name, country)
        assert got is primed.screen(name, country)  # from the cache
        assert [h.as_dict() for h in got] == [h.as_dict() for h in fresh.screen(name, country)]


def test_pairwise_similarities_follow_the_token_similarity_definition() -> None:
    import random

    import numpy as np

    from chokepoint.screening.bulk import pair_similarities
    from chokepoint.screening.match import token_similarity

    rng = random.Random(5)
    words = ["huawei", "huawie", "smic", "smics", "technology", "tech", "ab", "abc",
             "zhongxin", "international", "internatonal", "xinxin", "a"]
    a = [rng.choice(words) for _ in range(500)]
    b = [rng.choice(words) for _ in range(500)]
    got = pair_similarities(a, b, np.array([len(t) for t in a]), np.array([len(t) for t in b]))
    for x, y, g in zip(a, b, got.tolist(), strict=True):
        assert g == pytest.approx(token_similarity(x, y), abs=1e-12)


def test_bulk_similarities_follow_the_token_similarity_definition() -> None:
    import random

    from chokepoint.screening.match import token_similarity

    rng = random.Random(4)
    words = ["huawei", "huawie", "smic", "smics", "technology", "tech", "gazprom", "bank",
             "ab", "abc", "zhongxin", "international", "internatonal", "xinxin"]
    for _ in range(200):
        q = tuple(rng.sample(words, 3))
        names = [tuple(rng.sample(words, rng.randint(1, 4))) for _ in range(5)]
        for name, got in zip(names, ScreeningIndex._similarities(q, names), strict=True):
            assert got is not None
            bests, firsts = got
            for i, qt in enumerate(q):
                sims = [token_similarity(qt, nt) for nt in name]
                # the matrix calls may round the last bit differently from the scalar ones,
                # so among tokens tied to that bit either may be taken as the best
                assert bests[i] == pytest.approx(max(sims), abs=1e-12)
                assert sims[firsts[i]] == pytest.approx(max(sims), abs=1e-12)


def test_a_list_imported_by_another_process_is_screened_against(
        rules: RuleSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-running process (a server) screens against a list imported after it started,
    by another process, once LISTS_CHECKED_EVERY has passed - not the screener it built
    before the import."""
    from chokepoint.screening import service

    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(service, "LISTS_CHECKED_EVERY", 3600.0)
    on = date(2025, 6, 1)
    before = service.screener_for(rules, on)
    assert not any(h.score >= MATCH for h in before.screen("Example Trading Corp"))
    env = {"CHOKEPOINT_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "chokepoint", "lists", "import",
                           str(FIX / "watch.csv")], capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    # within the interval, the view of the lists is the one last looked at...
    assert service.screener_for(rules, on) is before
    # ... after it, the new file is seen and a new index built with its entries
    monkeypatch.setattr(service, "LISTS_CHECKED_EVERY", 0.0)
    after = service.screener_for(rules, on)
    assert after is not before
    assert any(h.score >= MATCH for h in after.screen("Example Trading Corp"))
    assert service.screener_for(rules, on) is after  # (and kept while nothing changes)


def test_a_list_imported_in_this_process_is_seen_at_once(
        rules: RuleSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chokepoint.screening import service

    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(service, "LISTS_CHECKED_EVERY", 3600.0)
    on = date(2025, 6, 1)
    before = service.screener_for(rules, on)
    service.import_list(FIX / "watch.csv")
    after = service.screener_for(rules, on)
    assert after is not before
    assert any(h.score >= MATCH for h in after.screen("Example Trading Corp"))


def test_lists_shipped_to_another_machine_are_the_only_ones_screened_against(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spark's executors screen against the lists imported on the driver's machine
    (imported_files -> use_imported_files), not their own machines' lists."""
    import os
    import tempfile

    from chokepoint.screening import service

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path / "driver"))
    service.import_list(FIX / "watch.csv")
    shipped = service.imported_files()
    assert list(shipped) == ["watch_list-watch.json"]
    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path / "executor"))  # none of its own
    service._LISTS_STATE.clear()
    assert service.imported_files() == {} and not service.imported_lists()
    base = service.use_imported_files(shipped)
    assert os.environ["CHOKEPOINT_DATA_DIR"] == str(base)
    assert service.imported_files() == shipped
    assert len(service.imported_lists()[0]["entries"]) == len(load_list(FIX / "watch.csv"))
    assert service.use_imported_files(shipped) == base  # written once per content
    assert service.use_imported_files({}) != base and service.imported_lists() == []
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == sorted(
        [base.name, service.use_imported_files({}).name])  # (nothing half-made left)


def test_a_names_file_in_another_encoding_is_read_in_it_or_refused(tmp_path: Path) -> None:
    """A GBK file of Chinese names: refused without --encoding (a name read as the wrong
    bytes would match nothing), screened with it."""
    names = tmp_path / "names.csv"
    names.write_bytes("id,name\nq1,中芯国际集成电路制造有限公司\n".encode("gbk"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "chokepoint", "screen",  # noqa: E731
                                     "--file", str(names), "--workers", "1", *a],
                                    capture_output=True, text=True, check=False)
    refused = run()
    assert refused.returncode == 2 and "not UTF-8 text" in refused.stderr
    assert "--encoding" in refused.stderr and "Traceback" not in refused.stderr
    found = run("--encoding", "gbk", "--format", "csv")
    assert found.returncode == 0, found.stderr
    smic = "q1,中芯国际集成电路制造有限公司,entity_list,smic,"
    assert found.stdout.splitlines()[1].startswith(smic)


@needs_shared
def test_an_entity_list_row_without_footnote_marks_leaves_its_footnotes_unknown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Consolidated Screening List row need not show an entry's footnotes (CETC 13's row
    writes footnote 3 as a plain digit after '734.9(g),'), so a row without a mark read as
    'no footnotes' would drop the foreign direct product rules. It is read as unknown; the
    other lists carry no footnotes. An entry stored by an earlier import with none is read
    the same way."""
    from chokepoint.screening import service

    entries = load_list(DATA / "csl_samples" / "csl_sample_2025.csv")
    (cetc,) = [e for e in entries if e.list == "entity_list"]
    assert cetc.footnotes is None and "734.9(g),3" in cetc.extra["license_requirement"]
    assert all(e.footnotes == () for e in entries if e.list != "entity_list")
    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path))
    service.import_list(DATA / "csl_samples" / "csl_sample_2025.csv")
    (stored,) = (tmp_path / "lists").glob("*.json")
    record = json.loads(stored.read_text())
    assert [e["footnotes"] for e in record["entries"] if e["list"] == "entity_list"] == [None]
    for e in record["entries"]:
        if e["list"] == "entity_list":
            e["footnotes"] = []  # (as an import before this reading stored it)
    stored.write_text(json.dumps(record))
    (read,) = [e for r in service.imported_lists() for e in r["entries"]
               if e.list == "entity_list"]
    assert read.footnotes is None


def test_a_party_matched_on_several_lists_is_designated_on_each(rules: RuleSet) -> None:
    """Every list in the match band designates the party, not the best hit's alone; the
    Entity List's footnotes are those of every entry matched, unknown (left out) where one
    list does not show them. Before, a party on the SDN list and the Entity List was given
    the SDN designation only, and one matched first to a list row without footnotes was
    given none: a Taiwanese 3B993 tool for Fujian Jinhua (footnote 5) was then 'not
    subject' to the EAR."""
    on = date(2025, 10, 20)
    name = "Fujian Jinhua Integrated Circuit Company, Ltd."
    sdn = ListEntry(list="sdn", entry_id="sdn-x", name=name, source="test")
    unshown = ListEntry(list="entity_list", entry_id="csl-x", name=name, footnotes=None,
                        source="test")
    shown = ListEntry(list="entity_list", entry_id="csl-y", name=name, footnotes=(5,),
                      source="test")
    txn: dict[str, Any] = {
        "from_country": "TW", "to_country": "CN", "us_person_support": False,
        "exporter": {"name": "Example Taiwan Toolmaker (invented)", "country": "TW",
                     "headquartered_in": "TW", "is_us_person": False},
        "item": {"eccn": "3B993.o", "made_in": "TW",
                 "us_content": {"controlled_share": 0.0, "incorporated_us_items": []},
                 "us_technology": {"direct_product_of": [], "plant_direct_product_of": [],
                                   "contains_ic_made_by_plant_direct_product_of": ["3E001"]}},
        "parties": [{"role": "end_user", "name": name, "country": "CN",
                     "at_advanced_node_facility": False}],
        "end_uses": ["ic_development_or_production_other"]}

    def designated(entries: list[ListEntry]) -> tuple[list[dict[str, Any]], str]:
        out, _, _ = screen_parties(txn, Screener(entries, complete_until=on), on)
        us = determine(out, rules, on)["jurisdictions"]["US"]
        return out["parties"][0]["designations"], us["outcome"]

    assert designated([sdn, shown]) == ([{"list": "sdn"},
                                         {"list": "entity_list", "footnotes": [5]}],
                                        "license_required")
    # one list does not show the footnotes: unknown, asked; the snapshot's entry, matched
    # too, gives them
    assert designated([shown, unshown]) == ([{"list": "entity_list"}], "undetermined")
    found, outcome = designated([unshown, *snapshot_entries(rules, on)])
    assert found == [{"list": "entity_list"}] and outcome == "license_required"


def test_a_possible_entry_that_would_add_to_a_match_keeps_the_designations_unknown(
        rules: RuleSet) -> None:
    """A party matched on one list, with a review-band hit on another list (or on an Entity
    List entry with footnotes the matched entries lack), is asked about: its designations
    stay unknown, and the question names both. Before, the match alone designated it, and
    the possible Entity List entry (footnote 5) was dropped without a word."""
    on = date(2025, 10, 20)
    name = "中芯国际集成电路制造有限公司"
    sdn = ListEntry(list="sdn", entry_id="sdn-x", name=name, source="test")
    # without SMIC's own entry, the name matches SMIC Shenzhen (no footnotes) and may be
    # SMIC Beijing (footnote 5)
    others = [e for e in snapshot_entries(rules, on) if e.entry_id != "smic"]
    txn = {"parties": [{"role": "end_user", "name": name}]}
    for entries in ([sdn, *others], others):
        out, hits, review = screen_parties(txn, Screener(entries, complete_until=on), on)
        assert out["parties"][0].get("designations") is None
        assert "smic-beijing" in {h["entry_id"] for h in hits if h["band"] == "review"}
        assert "Semiconductor Manufacturing International (Beijing)" in review[0]
        assert review[0].startswith(f"{name} matches ")
    # with SMIC's entry (footnote 5) matched, the review-band entries add nothing
    out, _, review = screen_parties(
        txn, Screener([sdn, *snapshot_entries(rules, on)], complete_until=on), on)
    assert out["parties"][0]["designations"] == [{"list": "sdn"},
                                                 {"list": "entity_list", "footnotes": [5]}]
    assert review == {}
