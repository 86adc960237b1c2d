"""Answers kept on disk between runs (batch.columnar.cache): a run that starts from them
writes the bytes of one that starts cold; a file that is not for these rules and this
code, or is broken, is ignored."""

from __future__ import annotations

import logging
import pickle
from datetime import date
from pathlib import Path

import pytest

from chokepoint.batch.columnar import cache
from chokepoint.batch.run import run_batch
from chokepoint.batch.synthetic import write_book
from chokepoint.rules.loader import load_rules
from chokepoint.rules.ruleset import RuleSet

TODAY = date(2026, 11, 26)


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", str(where))
    return where


def _books(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    write_book(first, 3000, seed=21)
    write_book(second, 3000, seed=22)
    return first, second


def _run(book: Path, out: Path, rules: RuleSet, workers: int = 1) -> bytes:
    run_batch(book, out, rules, today=TODAY, engine="columnar", workers=workers, block=1000)
    return out.read_bytes()


def test_a_run_started_from_kept_answers_writes_the_bytes_of_a_cold_one(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _books(tmp_path)
    # a run with fresh rules (as a new process has) keeps its answers on disk
    _run(first, tmp_path / "a.parquet", load_rules())
    files = list(cache_dir.glob("columnar-*.pickle"))
    assert len(files) == 1 and files == [cache.cache_file(load_rules())]
    assert not list(cache_dir.glob(".columnar-*"))  # (written whole, renamed into place)
    # the next one, with fresh rules again, starts from them on another book...
    warm_rules = load_rules()
    assert cache.load(warm_rules) > 0
    warm = _run(second, tmp_path / "warm.parquet", warm_rules)
    # ... and writes what a run that keeps nothing writes
    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", "off")
    cold = _run(second, tmp_path / "cold.parquet", load_rules())
    assert warm == cold
    assert len(list(cache_dir.glob("columnar-*.pickle"))) == 1


def test_workers_start_from_the_kept_answers_and_one_of_them_saves(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _books(tmp_path)
    _run(first, tmp_path / "a.parquet", load_rules(), workers=2)
    path = cache.cache_file(load_rules())
    assert path is not None and path.exists()  # (a worker's answers: the parent has few)
    rules = load_rules()
    warm = _run(second, tmp_path / "warm.parquet", rules, workers=2)
    assert rules.memo("columnar-cache")["loaded"] > 0  # (loaded before the fork)
    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", "off")
    assert warm == _run(second, tmp_path / "cold.parquet", load_rules(), workers=2)


def test_nothing_is_kept_when_the_cache_is_off(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    first, _ = _books(tmp_path)
    _run(first, tmp_path / "a.parquet", load_rules())
    assert cache.cache_file(load_rules()) is None
    assert not (tmp_path / "xdg").exists()
    monkeypatch.delenv("CHOKEPOINT_CACHE_DIR")
    assert cache.cache_dir() == tmp_path / "xdg" / "chokepoint"


def _kept(cache_dir: Path, tmp_path: Path
          ) -> tuple[Path, dict[str, object], dict[str, object]]:
    first, _ = _books(tmp_path)
    _run(first, tmp_path / "a.parquet", load_rules())
    path = cache.cache_file(load_rules())
    assert path is not None
    with path.open("rb") as fh:
        return path, pickle.load(fh), pickle.load(fh)


def test_a_file_made_for_other_rules_or_code_is_not_used(tmp_path: Path,
                                                         cache_dir: Path) -> None:
    path, header, kept = _kept(cache_dir, tmp_path)
    for field in ("rules", "code"):
        path.write_bytes(pickle.dumps({**header, field: "else"}) + pickle.dumps(kept))
        assert cache.load(load_rules()) == 0
    path.write_bytes(pickle.dumps(header) + pickle.dumps({**kept, "sites": {"not": 1}}))
    assert cache.load(load_rules()) == 0
    path.write_bytes(pickle.dumps(header) + pickle.dumps(kept))
    assert cache.load(load_rules()) == header["entries"] > 0
    # a rule set that differs in any file has another file name
    other = load_rules()
    object.__setattr__(other, "content_hash", other.content_hash + "x")
    assert cache.cache_file(other) != path


def test_a_broken_file_is_ignored_and_the_run_gives_the_same_bytes(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    path, _, _ = _kept(cache_dir, tmp_path)
    _, second = _books(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut short
    with caplog.at_level(logging.WARNING):
        rules = load_rules()
        assert cache.load(rules) == 0
        warm = _run(second, tmp_path / "w.parquet", rules)
    assert "ignoring the columnar cache" in caplog.text
    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", "off")
    assert warm == _run(second, tmp_path / "c.parquet", load_rules())


def test_a_rule_set_that_has_answers_in_memory_keeps_them(tmp_path: Path,
                                                          cache_dir: Path) -> None:
    first, second = _books(tmp_path)
    _run(first, tmp_path / "a.parquet", load_rules())
    rules = load_rules()
    _run(second, tmp_path / "b.parquet", rules)  # (loaded at the start of this run)
    assert cache.load(rules) > 0  # the same count again: nothing read twice
    sites = rules.memo("columnar-sites")["sites"]
    cache.load(rules)
    assert rules.memo("columnar-sites")["sites"] is sites


def test_only_the_most_recent_files_are_kept(tmp_path: Path, cache_dir: Path) -> None:
    cache_dir.mkdir()
    old = []
    for i in range(cache.FILES_KEPT + 2):
        p = cache_dir / f"columnar-old{i}.pickle"
        p.write_bytes(b"x")
        old.append(p)
    first, _ = _books(tmp_path)
    _run(first, tmp_path / "a.parquet", load_rules())
    left = list(cache_dir.glob("columnar-*.pickle"))
    assert len(left) == cache.FILES_KEPT and cache.cache_file(load_rules()) in left


def test_a_cache_that_cannot_be_written_does_not_stop_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", str(blocked))
    first, _ = _books(tmp_path)
    with caplog.at_level(logging.WARNING):
        written = _run(first, tmp_path / "a.parquet", load_rules())
    assert "could not write the columnar cache" in caplog.text
    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", "off")
    assert written == _run(first, tmp_path / "b.parquet", load_rules())


def test_an_unreadable_cache_directory_is_ignored(tmp_path: Path, cache_dir: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path, _, _ = _kept(cache_dir, tmp_path)
    path.unlink()
    path.mkdir()  # (something there that cannot be read as a file)
    with caplog.at_level(logging.WARNING):
        assert cache.load(load_rules()) == 0
    assert "ignoring the columnar cache" in caplog.text


def test_of_two_savers_the_file_with_more_answers_stays(tmp_path: Path,
                                                        cache_dir: Path) -> None:
    first, second = _books(tmp_path)
    small, large = load_rules(), load_rules()
    cache.load(small), cache.load(large)  # (nothing kept yet: both start cold)
    run_batch(first, tmp_path / "s.parquet", small, today=TODAY, engine="columnar",
              block=1000)  # (saves)
    path = cache.cache_file(small)
    assert path is not None
    kept_small = cache.evaluated_in(path)
    for book in (first, second):
        run_batch(book, tmp_path / "l.parquet", large, today=TODAY, engine="columnar",
                  block=1000)
    assert cache.evaluated_in(path) > kept_small  # (the larger replaced it)
    kept_large = cache.evaluated_in(path)
    assert cache.entries_in(path) > 0
    # a smaller state offered later does not replace the larger one
    sites = small.memo("columnar-sites")["sites"]
    assert sites.evaluated < kept_large
    small.memo("columnar-cache")["evaluated"] = 0
    assert not cache.save(small)
    assert cache.evaluated_in(path) == kept_large


def test_the_last_few_answers_of_a_book_are_kept_too(tmp_path: Path, cache_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A run is saved when it evaluated MIN_NEW answers more than it loaded, however few
    next to the whole and whether or not they added entries (a cell filled in a table adds
    none): earlier, growth under 2 % of the entries was never saved, and every later run
    paid for those misses again. A run that evaluated nothing writes nothing."""
    monkeypatch.setattr(cache, "MIN_NEW", 1)
    first, second = _books(tmp_path)
    _run(first, tmp_path / "a.parquet", load_rules())
    path = cache.cache_file(load_rules())
    assert path is not None
    assert cache.evaluated_in(path) > 0
    # The same book in a new process: how a rule is split into sites follows how many
    # values its facts have taken so far, so the first run's early blocks were evaluated
    # in sites its later blocks (and every later run) no longer use; those answers are
    # evaluated once more, and kept ...
    second_run = load_rules()
    cache.load(second_run)
    _run(first, tmp_path / "b.parquet", second_run)
    before = cache.evaluated_in(path)
    assert before == second_run.memo("columnar-sites")["sites"].evaluated
    # ... so that a third evaluates nothing, and writes nothing
    rules = load_rules()
    cache.load(rules)
    _run(first, tmp_path / "b.parquet", rules)
    sites = rules.memo("columnar-sites")["sites"]
    assert sites.evaluated == before and cache.evaluated_in(path) == before
    # one answer more than the file holds (and not one entry more) is worth a save
    entries = sites.entries
    sites.evaluated += 1
    assert sites.entries == entries
    assert cache.save(rules)
    assert cache.evaluated_in(path) == before + 1 and cache.entries_in(path) == entries
    assert not cache.save(rules)  # (nothing new since)
    # another book's answers go in on top of the ones loaded
    more = load_rules()
    cache.load(more)
    _run(second, tmp_path / "c.parquet", more)
    assert cache.evaluated_in(path) == more.memo("columnar-sites")["sites"].evaluated > (
        before + 1)


def test_the_code_fingerprint_follows_the_sources_and_the_libraries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    before = cache.code_fingerprint()
    monkeypatch.setattr(cache, "_CODE", [])
    assert cache.code_fingerprint() == before  # (computed again: the same)
    real = importlib.metadata.version
    monkeypatch.setattr(cache, "_CODE", [])
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "0.0" if name == "pyarrow" else real(name))
    assert cache.code_fingerprint() != before
    monkeypatch.setattr(importlib.metadata, "version", real)
    monkeypatch.setattr(cache, "_CODE", [])
    monkeypatch.setattr(cache, "PACKAGE", cache.PACKAGE / "batch")  # (other sources)
    assert cache.code_fingerprint() != before


def _new_process_screeners(monkeypatch: pytest.MonkeyPatch) -> None:
    """The screening indexes as a new process has them: none."""
    from chokepoint.screening import service

    for name in ("_SCREENERS", "_ENTRY_SETS", "_IN_FORCE"):
        monkeypatch.setattr(service, name, {})


def test_screening_indexes_are_kept_along_and_used_by_the_next_run(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new process takes the screening indexes (and their results) a run kept instead
    of building them again, and writes the same bytes as a run that builds them."""
    from chokepoint.screening import match, service

    first, second = _books(tmp_path)
    _new_process_screeners(monkeypatch)
    _run(first, tmp_path / "a.parquet", load_rules())
    _new_process_screeners(monkeypatch)
    rules = load_rules()
    assert cache.load(rules) > 0
    adopted = list(service._SCREENERS.values())
    assert adopted and all(s._cache for s in adopted)  # (with what they screened)

    def no_index(*args: object, **kwargs: object) -> None:
        raise AssertionError("an index was built again")

    monkeypatch.setattr(match.ScreeningIndex, "__init__", no_index)
    warm = _run(first, tmp_path / "warm.parquet", rules)
    monkeypatch.undo()
    monkeypatch.setenv("CHOKEPOINT_CACHE_DIR", "off")
    _new_process_screeners(monkeypatch)
    assert warm == _run(first, tmp_path / "cold.parquet", load_rules())


def test_kept_indexes_of_lists_imported_since_are_not_used(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index kept before a list was imported lacks its entries: the next run builds a
    new one (and screens against the imported list)."""
    from chokepoint.screening import service

    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path / "data"))
    first, _ = _books(tmp_path)
    _new_process_screeners(monkeypatch)
    _run(first, tmp_path / "a.parquet", load_rules())
    service.import_list(Path(__file__).parent / "fixtures" / "lists" / "watch.csv")
    _new_process_screeners(monkeypatch)
    assert cache.load(load_rules()) > 0
    assert not service._SCREENERS  # (none taken: the imported lists differ)
    screener = service.screener_for(load_rules(), date(2025, 6, 1))
    assert any(h.score >= 0.9 for h in screener.screen("Example Trading Corp"))


def test_a_run_leaves_nothing_frozen(tmp_path: Path, cache_dir: Path) -> None:
    """The kept answers are loaded out of the garbage collector's way (gc.freeze) for the
    run only: after it, with one process or two, the collector sees everything again."""
    import gc

    first, _ = _books(tmp_path)
    _run(first, tmp_path / "a.parquet", load_rules())
    for workers in (1, 2):
        rules = load_rules()
        _run(first, tmp_path / f"w{workers}.parquet", rules, workers=workers)
        assert rules.memo("columnar-cache")["loaded"] > 0
        assert gc.get_freeze_count() == 0
