"""Screening many names on several cores: the index is built once and shared with forked
worker processes (never pickled); each returns its hits as plain dictionaries, in order."""

from __future__ import annotations

import copy
import gc
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from typing import Any

from chokepoint.screening.match import REVIEW, ScreeningIndex

_INDEX: ScreeningIndex | None = None
_THRESHOLD = REVIEW


def _work(chunk: list[tuple[str, str | None]]) -> list[list[dict[str, Any]]]:
    assert _INDEX is not None
    gc.disable()  # short-lived objects, none cyclic; the index itself is frozen (below)
    try:
        return [[h.as_dict() for h in hits] for hits in _INDEX.screen_many(chunk, _THRESHOLD)]
    finally:
        gc.enable()


def _chunks(queries: Sequence[tuple[str, str | None]], size: int
            ) -> Iterator[list[tuple[str, str | None]]]:
    for start in range(0, len(queries), size):
        yield list(queries[start:start + size])


def screen_many(index: ScreeningIndex, queries: Sequence[tuple[str, str | None]],
                threshold: float = REVIEW, workers: int | None = None,
                chunk: int = 256) -> list[list[dict[str, Any]]]:
    """The hits (``Hit.as_dict``) of every (name, country), in input order; a name repeated
    with the same country is screened once. ``workers`` defaults to the machine's cores;
    one worker (or a short list) stays in this process."""
    global _INDEX, _THRESHOLD
    workers = workers or os.cpu_count() or 1
    distinct = list(dict.fromkeys(queries))
    found: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    if workers <= 1 or len(distinct) < 2 * chunk:
        for part in _chunks(distinct, chunk):
            found.update(zip(part, ([h.as_dict() for h in hits]
                                    for hits in index.screen_many(part, threshold)),
                             strict=True))
    else:
        _INDEX, _THRESHOLD = index, threshold
        # The forked workers' collector would leave the index's pages unshared; this
        # process only gathers plain results (none cyclic). No collection first: a full one
        # over the index costs about 0.1 s, and the frozen objects are unfrozen below.
        collecting = gc.isenabled()
        gc.freeze()
        gc.disable()
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for start, done in zip(range(0, len(distinct), chunk),
                                       pool.imap(_work, _chunks(distinct, chunk)),
                                       strict=True):
                    found.update(zip(distinct[start:start + chunk], done, strict=True))
        finally:
            gc.unfreeze()
            if collecting:
                gc.enable()
            _INDEX = None
    # a repeated name gets its own copies (callers may change what they are given)
    seen: set[tuple[str, str | None]] = set()
    out: list[list[dict[str, Any]]] = []
    for q in queries:
        hits = found[q]
        out.append(hits if q not in seen else copy.deepcopy(hits))
        seen.add(q)
    return out
