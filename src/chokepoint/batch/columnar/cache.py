"""The columnar engine's answers kept on disk between runs, so that a run starts warm.

Within a run, each rule's answers are kept by stable codes from block to block (sites.py);
a new process starts with none and evaluates every combination of facts again (the
first 500,000 rows of a run cost about 2.5x a later block). Those answers depend on the
facts' values, the rule data and this code only, so they are saved to one file per rule
set and code - its name a hash of the rule set's ``rules_version``, the package's source
files and the versions of the libraries it reads with - and loaded by the next run with
the same ones. A file that cannot be read, or that was made for other rules or code, is
ignored (the run starts cold, as without it); files are written whole and renamed into
place, and when several processes offer theirs the one whose state has evaluated the most
answers stays. The screening indexes the run built go along, with the imported lists they
were built from (screening.service.kept_screeners), and each party's screening hits and
projection texts, keyed by the lists' state: a new process takes those still current
instead of building them again.

Where: ``CHOKEPOINT_CACHE_DIR``, else ``$XDG_CACHE_HOME/chokepoint`` (``~/.cache``);
``CHOKEPOINT_CACHE_DIR=off`` keeps nothing on disk. The files are pickles: keep the
directory as private as the rest of your home directory.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chokepoint.batch.columnar import book
from chokepoint.batch.columnar.evaluator import SITES_LIMIT
from chokepoint.batch.columnar.prepare import PARTIES
from chokepoint.batch.columnar.sites import Sites
from chokepoint.rules.ruleset import RuleSet
from chokepoint.screening import service

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parents[2]  # the chokepoint package
FILES_KEPT = 8  # the most recent files kept in the directory (one per rules and code)
MIN_NEW = 100  # saved again when this many answers were evaluated since loaded or saved
# (a miss costs a run about 0.25 ms, writing the file a few tenths of a second once)
SAVE_LIMIT = SITES_LIMIT // 4  # entries: larger states are not written (about 80 MB)
_FORMAT = 2  # (a header pickle, then the answers)


def cache_dir() -> Path | None:
    """The directory the files are kept in, or None when off."""
    setting = os.environ.get("CHOKEPOINT_CACHE_DIR")
    if setting is not None:
        return None if setting.strip().lower() in ("", "off", "0", "none") else Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chokepoint"


LIBRARIES = ("numpy", "pyarrow", "pydantic", "jsonschema", "jsonschema-rs", "scipy",
             "rapidfuzz", "unidecode", "pypinyin")
"""Libraries whose version goes into the fingerprint: the kept answers are pickled with
NumPy, the book's cells are read with pyarrow and validated with pydantic and the JSON
Schema validators, and the screening indexes kept along are built with the others."""

_CODE: list[str] = []


def code_fingerprint() -> str:
    """A hash of every source and schema file of the package, and of the Python and
    LIBRARIES versions: any change to the code makes another file."""
    if not _CODE:
        from importlib.metadata import PackageNotFoundError, version

        versions = []
        for name in LIBRARIES:
            try:
                versions.append(f"{name}={version(name)}")
            except PackageNotFoundError:
                versions.append(f"{name}=none")
        digest = hashlib.sha256(f"{_FORMAT}|{sys.version}|{'|'.join(versions)}".encode())
        for path in sorted(PACKAGE.rglob("*")):
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
        _CODE.append(digest.hexdigest())
    return _CODE[0]


def cache_file(rules: RuleSet) -> Path | None:
    """The file for this rule set and code, or None when off."""
    where = cache_dir()
    if where is None:
        return None
    key = hashlib.sha256(f"{rules.content_hash}|{code_fingerprint()}".encode()).hexdigest()
    return where / f"columnar-{key[:32]}.pickle"


def _state(rules: RuleSet) -> dict[str, Any]:
    return rules.memo("columnar-cache")


def load(rules: RuleSet, freeze: bool = False) -> int:
    """The rule set's answers from disk, if a file was kept for it and this code (and the
    rule set has none in memory yet): the number of entries loaded, 0 for none.
    ``freeze``: leave them out of the garbage collector's passes (:func:`_unpickled`)."""
    state = _state(rules)
    if "loaded" in state:
        return int(state["loaded"])
    state["loaded"] = state["evaluated"] = 0
    path = cache_file(rules)
    memo = rules.memo("columnar-sites")
    if path is None or "sites" in memo:
        return 0  # (off, or evaluated before in this process: keep that)
    try:
        with path.open("rb") as fh:
            header = pickle.load(fh)
            if (not isinstance(header, dict) or header.get("rules") != rules.content_hash
                    or header.get("code") != code_fingerprint()):
                return 0  # (a hash collision on the name: not ours)
            kept = _unpickled(fh, freeze)
        sites, pieces = kept["sites"], kept["pieces"]
        screeners, parties = kept.get("screeners", []), kept.get("parties", {})
        if (not isinstance(sites, Sites) or not isinstance(pieces, dict)
                or not isinstance(screeners, list) or not isinstance(parties, dict)):
            raise TypeError("not the columnar engine's answers")
    except FileNotFoundError:  # (nothing kept yet)
        return 0
    except Exception as exc:  # a broken or foreign file, an unreadable one: start cold
        log.warning("ignoring the columnar cache %s: %s", path, exc)
        return 0
    memo["sites"] = sites
    book.remember_pieces(pieces)
    service.adopt_screeners(screeners)  # (those built from the lists as imported now)
    # each party's hits and projections' texts, by the lists' state (named by what they
    # were built from, the same in every process) and the party's cells
    looks = rules.memo(PARTIES)
    for key, (hits, texts) in parties.items():
        looks.setdefault(key, [hits, texts, None])
    state["loaded"] = sites.entries
    state["evaluated"] = sites.evaluated
    return int(sites.entries)


def save(rules: RuleSet) -> bool:
    """Write the rule set's answers to disk when at least MIN_NEW answers were evaluated
    since they were loaded or last saved (and they are not too large); whether a file was
    written. (Counted in answers evaluated, not in entries: filling a cell of a table
    adds knowledge and no entry, and a threshold relative to the whole kept the last few
    hundred misses of a book out for ever - each costing every later run its time.)"""
    path = cache_file(rules)
    state = _state(rules)
    sites = rules.memo("columnar-sites").get("sites")
    if path is None or sites is None:
        return False
    entries, evaluated = sites.entries, sites.evaluated
    if (entries > SAVE_LIMIT or not entries
            or evaluated - state.get("evaluated", 0) < MIN_NEW):
        return False
    header = {"rules": rules.content_hash, "code": code_fingerprint(), "entries": entries,
              "evaluated": evaluated}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=".columnar-",
                                         suffix=".tmp", delete=False) as fh:
            try:
                pickle.dump(header, fh, protocol=pickle.HIGHEST_PROTOCOL)
                parties = {key: (found[0], found[1])
                           for key, found in rules.memo(PARTIES).items()}
                pickle.dump({"sites": sites, "pieces": book.kept_pieces(),
                             "screeners": service.kept_screeners(), "parties": parties},
                            fh, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:
                os.unlink(fh.name)
                raise
        # several processes may save at once (the workers of a run, two runs): the file
        # that has learnt the most stays (each continues the state it was loaded from)
        with _locked(path):
            if evaluated <= _header(path).get("evaluated", 0):
                os.unlink(fh.name)
                return False
            os.replace(fh.name, path)
    except Exception as exc:  # (a read-only or full disk, say: the run goes on without)
        log.warning("could not write the columnar cache %s: %s", path, exc)
        return False
    state["evaluated"] = evaluated
    _prune(path.parent)
    return True


def _unpickled(fh: Any, freeze: bool) -> Any:
    """The answers, read with the garbage collector paused: they are some 600,000 objects,
    and the collections their allocation set off took most of the load. With ``freeze``
    they (and all the process holds) are then left out of its collections (``gc.freeze``),
    or the next ones would go through them all again (0.37 -> 0.10 s in all, for the
    answers of a 10^6-row book); objects left out are still freed when no longer referred
    to, but not if they end up in a cycle: for a process that runs a batch and ends, or
    forks its workers, and unfreezes after (columnar_run)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return pickle.load(fh)
    finally:
        if freeze:
            gc.freeze()
        if collecting:
            gc.enable()


def _header(path: Path) -> dict[str, int]:
    """A kept file's header (entries, answers evaluated), empty when there is none to
    read."""
    try:
        with path.open("rb") as fh:
            header = pickle.load(fh)
        return {k: int(header[k]) for k in ("entries", "evaluated")}
    except Exception:
        return {}


def entries_in(path: Path) -> int:
    """How many entries a kept file holds (from its header), 0 when there is none."""
    return _header(path).get("entries", 0)


def evaluated_in(path: Path) -> int:
    """How many answers the state a kept file holds has evaluated (from its header)."""
    return _header(path).get("evaluated", 0)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``'s lock file, where the system has ``flock``."""
    try:
        import fcntl
    except ImportError:  # (not POSIX: renames stay atomic, the last one wins)
        yield
        return
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _prune(where: Path) -> None:
    """Only the most recent files kept (older rules and code versions go), and no file
    left half-written by a process killed while writing it (an hour old)."""
    try:
        files = sorted(where.glob("columnar-*.pickle"), key=lambda p: p.stat().st_mtime,
                       reverse=True)
        for old in files[FILES_KEPT:]:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".lock").unlink(missing_ok=True)
        for tmp in where.glob(".columnar-*.tmp"):
            if time.time() - tmp.stat().st_mtime > 3600:
                tmp.unlink(missing_ok=True)
    except OSError:
        pass
