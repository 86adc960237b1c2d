"""Screening in use: the lists available (bundled snapshot + imported files), and screening
the parties of a transaction before the engine decides.

A party given with ``designations: null`` is screened. A hit in the match band sets its
designation (the trace names the hit); a hit in the review band leaves it unknown and the
determination asks "is <party> the listed <entry>?"; no hit makes the party known-unlisted
only when a complete list (an imported Consolidated Screening List) was in force on the
as-of date - the bundled snapshot alone is too small to clear anyone.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from chokepoint.rules.ruleset import RuleSet
from chokepoint.screening.lists import ListEntry, load_list
from chokepoint.screening.match import MATCH, REVIEW, Hit, ScreeningIndex

COMPLETE_FORMATS = ("csl_csv", "csl_json")
SNAPSHOT = "chokepoint curated Entity List snapshot"  # the source of the rule data's entries


def data_dir() -> Path:
    base = os.environ.get("CHOKEPOINT_DATA_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "chokepoint"


def snapshot_entries(rules: RuleSet, on: date) -> list[ListEntry]:
    """The curated Entity List snapshot (rule data) as list entries in force ``on``."""
    out = []
    for entries in rules.entities.values():
        for e in entries:
            version = e.version_on(on)
            if version is None:
                continue
            out.append(ListEntry(list="entity_list", entry_id=e.id, name=e.name,
                                 aliases=tuple(e.aliases), country=e.country,
                                 addresses=tuple(e.addresses),
                                 footnotes=tuple(version.footnotes),
                                 start_date=version.from_.isoformat(),
                                 source=SNAPSHOT))
    return out


def _format_of(path: Path) -> str:
    if path.suffix.lower() == ".json":
        return "csl_json"
    if path.name.lower() == "sdn.csv":
        return "ofac_sdn"
    head = path.read_bytes()[:40].decode("latin-1")
    if head.startswith('"Name"\t'):
        return "bis_dpl"
    if head.startswith(("_id,source", "source,entity_number")):
        return "csl_csv"
    return "watch_list"


def import_list(path: Path, today: date | None = None, current_on: date | None = None
                ) -> dict[str, Any]:
    """Store an official list file in the data directory; returns what was stored.

    ``current_on``: the day the file was known current (downloaded or published); by
    default the day the file was last written (a download writes it), and never after
    ``today``. A complete list clears a party only for orders up to that day: a file
    downloaded months ago and imported today does not clear a party listed since."""
    entries = load_list(path)
    fmt = _format_of(path)
    imported = today or date.today()
    written = date.fromtimestamp(path.stat().st_mtime)
    record = {
        "source_file": path.name,
        "format": fmt,
        "imported_on": imported.isoformat(),
        "current_on": min(current_on or written, imported).isoformat(),
        "complete": fmt in COMPLETE_FORMATS,
        "entries": [asdict(e) for e in entries],
    }
    target = data_dir() / "lists"
    target.mkdir(parents=True, exist_ok=True)
    out = target / f"{fmt}-{path.stem}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False))
    tmp.replace(out)  # nothing half-written on a crash
    _LISTS_STATE.clear()  # (this process's screeners see it at once)
    return {k: v for k, v in record.items() if k != "entries"} | {"entries": len(entries),
                                                                  "stored_at": str(out)}


def _stored_footnotes(entry: dict[str, Any]) -> tuple[int, ...] | None:
    """An imported entry's footnotes as stored. An Entity List entry stored with none was
    imported before a list row without footnote marks was read as "not shown" (lists.py):
    it is read so now, as if imported again."""
    notes = entry["footnotes"]
    if notes is None or (not notes and entry["list"] == "entity_list"):
        return None
    return tuple(notes)


def imported_lists() -> list[dict[str, Any]]:
    folder = data_dir() / "lists"
    if not folder.exists():
        return []
    records = []
    for f in sorted(folder.glob("*.json")):
        record = json.loads(f.read_text())
        record["entries"] = [ListEntry(**{**e, "aliases": tuple(e["aliases"]),
                                          "addresses": tuple(e["addresses"]),
                                          "footnotes": _stored_footnotes(e)})
                             for e in record["entries"]]
        records.append(record)
    return records


def imported_files() -> dict[str, bytes]:
    """The imported list files as they are stored (name: bytes), to ship to other machines
    (Spark's executors: :func:`use_imported_files`)."""
    folder = data_dir() / "lists"
    if not folder.is_dir():
        return {}
    return {f.name: f.read_bytes() for f in sorted(folder.glob("*.json"))}


def use_imported_files(files: dict[str, bytes]) -> Path:
    """Screen, in this process, against these imported list files and no others (another
    machine's, from :func:`imported_files`): they are written once per content to a
    folder of their own, which becomes this process's data directory. A machine's own
    lists, older or newer, would otherwise clear or flag parties differently."""
    import shutil
    import tempfile

    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    base = Path(tempfile.gettempdir()) / f"chokepoint-lists-{digest.hexdigest()[:24]}"
    if not (base / "lists").is_dir():
        made = Path(tempfile.mkdtemp(prefix=base.name + ".", dir=base.parent))
        (made / "lists").mkdir()
        for name, body in files.items():
            (made / "lists" / Path(name).name).write_bytes(body)
        try:
            made.rename(base)  # (whole or not at all: another process may read it)
        except OSError:  # another process of this machine wrote it first
            shutil.rmtree(made, ignore_errors=True)
    os.environ["CHOKEPOINT_DATA_DIR"] = str(base)
    _LISTS_STATE.clear()  # (seen at once, not after LISTS_CHECKED_EVERY)
    return base


class Screener:
    """An index over the lists to screen against, and whether it can clear a party."""

    def __init__(self, entries: list[ListEntry], complete_until: date | None = None) -> None:
        self.index = ScreeningIndex(entries)
        self.complete_until = complete_until
        self._cache: dict[tuple[str, str | None, float], list[Hit]] = {}
        # what it was built from, as text that names it in every process (screener_for)
        self.source: str | None = None

    @classmethod
    def for_date(cls, rules: RuleSet, on: date,
                 list_files: list[Path] | None = None) -> Screener:
        if list_files:
            entries = [e for f in list_files for e in load_list(f)]
            return cls(entries, None)
        entries = snapshot_entries(rules, on)
        records = imported_lists()
        for record in records:
            entries.extend(record["entries"])
        return cls(entries, _complete_until(records))

    def can_clear(self, on: date) -> bool:
        return self.complete_until is not None and on <= self.complete_until

    def prime(self, queries: list[tuple[str, str | None]], threshold: float = REVIEW) -> None:
        """Screen many (name, country) at once (the bulk path: the same hits as one at a
        time, faster), so that ``screen`` finds them in the cache."""
        todo = [q for q in dict.fromkeys(queries) if (*q, threshold) not in self._cache]
        if len(self._cache) + len(todo) > 100_000:
            self._cache.clear()
        for q, hits in zip(todo, self.index.screen_many(todo, threshold), strict=True):
            self._cache[(*q, threshold)] = hits

    def screen(self, name: str, country: str | None = None,
               threshold: float = REVIEW) -> list[Hit]:
        """Hits for a name (cached: an order book repeats its customers)."""
        key = (name, country, threshold)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            hit = self._cache[key] = self.index.screen(name, country, threshold)
        return hit


def screen_parties(txn: dict[str, Any], screener: Screener, on: date
                   ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[int, str]]:
    """The transaction with screened designations, the hits, and review questions by party."""
    parties = txn.get("parties")
    if not parties:
        return txn, [], {}
    out = {**txn, "parties": [dict(p) for p in parties]}
    hits_out: list[dict[str, Any]] = []
    review: dict[int, str] = {}
    for i, party in enumerate(out["parties"]):
        if party.get("designations") is not None:
            continue
        hits = screener.screen(party["name"], party.get("country"))
        for h in hits[:3]:
            hits_out.append({"party_index": i, "party": party["name"], **h.as_dict()})
        matched = [h for h in hits if h.score >= MATCH]
        designations = _designations(matched)
        # a review-band hit that would add a list, or Entity List footnotes, to those
        # matched: the designations stay unknown (a match on the SDN list must not hide a
        # possible Entity List entry, nor one entry without footnotes another with them)
        doubt = next((h for h in hits if h.score < MATCH
                      and _adds_to(designations, h.entry)), None)
        if matched and doubt is None:
            party["designations"] = designations
            snapshot = [h.entry.entry_id for h in matched
                        if h.entry.list == "entity_list" and h.entry.source == SNAPSHOT]
            if snapshot:
                party["screened_entry_id"] = snapshot[0]
        elif doubt is not None:
            lists = ", ".join(sorted(d["list"] for d in designations))
            said = f"{party['name']} matches '{matched[0].entry.name}' ({lists}). " \
                if matched else ""
            review[i] = (f"{said}Is {party['name']} the listed '{doubt.entry.name}' "
                         f"({doubt.entry.list}, matched '{doubt.matched_name}' at "
                         f"{doubt.score:.2f})? Answer with all its designations, or [] if "
                         "none.")
        elif screener.can_clear(on):
            party["designations"] = []
    return out, hits_out, review


def _designations(matched: list[Hit]) -> list[dict[str, Any]]:
    """A party's designations from its hits in the match band: every list it matched, not
    only the best hit's (a party on the SDN list and the Entity List is on both). The Entity
    List's footnotes are those of every entry matched; unknown if one does not show them."""
    out: dict[str, dict[str, Any]] = {}
    unshown = False
    for h in matched:
        designation = out.setdefault(h.entry.list, {"list": h.entry.list})
        if h.entry.list == "entity_list":
            notes = h.entry.footnotes
            unshown = unshown or notes is None
            designation["footnotes"] = sorted({*designation.get("footnotes", ()),
                                               *(notes or ())})
    if unshown:
        del out["entity_list"]["footnotes"]  # (absent: unknown - the engine asks)
    return list(out.values())


def _adds_to(designations: list[dict[str, Any]], entry: ListEntry) -> bool:
    """Whether being this entry would add to the designations: another list, or Entity List
    footnotes they do not hold (unknown footnotes are asked about in any case)."""
    same = next((d for d in designations if d["list"] == entry.list), None)
    if same is None:
        return True
    if entry.list != "entity_list" or "footnotes" not in same:
        return False
    return entry.footnotes is None or not set(entry.footnotes) <= set(same["footnotes"])


_SCREENERS: dict[tuple[Any, ...], Screener] = {}
_IN_FORCE: dict[tuple[str, date], int] = {}
_ENTRY_SETS: dict[tuple[Any, ...], int] = {}  # each distinct set of entries in force: a number
LISTS_CHECKED_EVERY = 1.0  # seconds: how stale this process's view of imported lists may be
_LISTS_STATE: list[tuple[float, tuple[Any, ...]]] = []  # (when looked at, what was seen)


def imported_state() -> tuple[Any, ...]:
    """The imported list files as (name, size, modification time): a new import, by this
    process or another (``chokepoint lists import`` while a server runs), changes it.
    Looked at again at most every LISTS_CHECKED_EVERY seconds (this is asked per party;
    the data directory is taken from the environment then)."""
    now = time.monotonic()
    if _LISTS_STATE and now - _LISTS_STATE[0][0] < LISTS_CHECKED_EVERY:
        return _LISTS_STATE[0][1]
    folder = data_dir() / "lists"
    try:
        with os.scandir(folder) as found:
            state = (str(folder), *sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                                          for e in found if e.name.endswith(".json")))
    except FileNotFoundError:
        state = (str(folder),)
    _LISTS_STATE[:] = [(now, state)]
    return state


_COMPLETE: dict[tuple[Any, ...], date | None] = {}


def _complete_until(records: list[dict[str, Any]]) -> date | None:
    """The last day the complete lists among imported ``records`` clear parties: the day
    the newest was known current (records imported before that was kept: their import
    day), None when none is complete."""
    return max((date.fromisoformat(r.get("current_on") or r["imported_on"])
                for r in records if r["complete"]), default=None)


def latest_complete_list() -> date | None:
    """The day the latest complete list imported was known current (a full CSL: a party it
    does not name may be cleared up to then), None when there is none; the files are read
    once per state of the imported files (:func:`imported_state`), not on every call."""
    state = imported_state()
    if state not in _COMPLETE:
        if len(_COMPLETE) > 64:
            _COMPLETE.clear()
        _COMPLETE[state] = _complete_until(imported_lists())
    return _COMPLETE[state]


def screener_for(rules: RuleSet, on: date) -> Screener:
    """One screener per distinct set of snapshot entries in force (they change on a few
    dates only), not per day: an order book spread over years builds a handful of indexes.
    A list imported since (:func:`imported_state`) makes a new one: a long-running process
    never screens against - or clears a party by - lists older than those on disk."""
    in_force = _IN_FORCE.get((rules.content_hash, on))
    if in_force is None:
        if len(_IN_FORCE) > 100_000 or len(_ENTRY_SETS) > 10_000:
            _IN_FORCE.clear()  # (all three: a number is never given to two sets)
            _ENTRY_SETS.clear()
            _SCREENERS.clear()
        entries = (rules.content_hash, *(
            (e.entry_id, e.start_date, e.footnotes) for e in snapshot_entries(rules, on)))
        # (a small number stands for the entries in force: hashed per call, a long tuple
        # would cost more than the rest of this function)
        in_force = _IN_FORCE[(rules.content_hash, on)] = _ENTRY_SETS.setdefault(
            entries, len(_ENTRY_SETS))
    key = (in_force, imported_state())
    screener = _SCREENERS.get(key)
    if screener is None:
        if len(_SCREENERS) > 64:
            _SCREENERS.clear()
        screener = _SCREENERS[key] = Screener.for_date(rules, on)
        entries = next(e for e, n in _ENTRY_SETS.items() if n == in_force)
        screener.source = hashlib.sha256(repr((entries, key[1])).encode()).hexdigest()[:32]
    return screener


SCREENINGS_KEPT = 20_000  # screening results a kept screener takes along (kept_screeners)


def kept_screeners() -> list[tuple[tuple[Any, ...], tuple[Any, ...], Screener]]:
    """The screeners :func:`screener_for` built in this process, each with the entries and
    the imported lists it was built from, to be kept between runs (the batch engine's
    cache: building an index costs a new process 0.1-0.2 s, loading it a few ms). Each
    takes along up to SCREENINGS_KEPT of the results it has screened."""
    numbered = {n: entries for entries, n in _ENTRY_SETS.items()}
    kept = []
    for (n, state), screener in _SCREENERS.items():
        if n in numbered:
            copy = Screener.__new__(Screener)
            copy.__dict__.update(screener.__dict__)
            copy._cache = dict(itertools.islice(screener._cache.items(), SCREENINGS_KEPT))
            kept.append((numbered[n], state, copy))
    return kept


def adopt_screeners(kept: list[tuple[tuple[Any, ...], tuple[Any, ...], Screener]]) -> int:
    """Screeners from :func:`kept_screeners` (of another process) used by
    :func:`screener_for` in this one - those built from the imported lists as they are
    now; how many were taken."""
    now = imported_state()
    taken = 0
    for entries, state, screener in kept:
        if state != now or not isinstance(screener, Screener):
            continue
        n = _ENTRY_SETS.setdefault(entries, len(_ENTRY_SETS))
        _SCREENERS.setdefault((n, state), screener)
        taken += 1
    return taken


def determine_screened(txn: dict[str, Any], rules: RuleSet, on: date) -> dict[str, Any]:
    """Screen the parties whose designations are unknown, then determine (adapter glue)."""
    from chokepoint.engine import determine

    if not any(p.get("designations") is None for p in txn.get("parties") or []):
        return determine(txn, rules, on)
    screener = screener_for(rules, on)
    screened, hits, review = screen_parties(txn, screener, on)
    d = determine(screened, rules, on)
    d["screening"] = hits
    for j in d["jurisdictions"].values():
        for m in j["missing_facts"]:
            for i, question in review.items():
                if m["field"] == f"parties[{i}].designations":
                    m["question"] = question
    return d
