"""Screening many names on several cores: the index is built once and shared with forked
worker processes (never pickled); each returns its hits as plain dictionaries, in order."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from typing import Any

from chokepoint.screening.match import REVIEW, ScreeningIndex

_INDEX: ScreeningIndex | None = None
_THRESHOLD = REVIEW


def _work(chunk: list[tuple[str, str | None]]) -> list[list[dict[str, Any]]]:
    assert _INDEX is not None
    return [[h.as_dict() for h in _INDEX.screen(name, country, _THRESHOLD)]
            for name, country in chunk]


def _chunks(queries: Sequence[tuple[str, str | None]], size: int
            ) -> Iterator[list[tuple[str, str | None]]]:
    for start in range(0, len(queries), size):
        yield list(queries[start:start + size])


def screen_many(index: ScreeningIndex, queries: Sequence[tuple[str, str | None]],
                threshold: float = REVIEW, workers: int | None = None,
                chunk: int = 256) -> list[list[dict[str, Any]]]:
    """The hits (``Hit.as_dict``) of every (name, country), in input order. ``workers``
    defaults to the machine's cores; one worker (or a short list) stays in this process."""
    global _INDEX, _THRESHOLD
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(queries) < 2 * chunk:
        return [[h.as_dict() for h in index.screen(n, c, threshold)] for n, c in queries]
    _INDEX, _THRESHOLD = index, threshold
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            out: list[list[dict[str, Any]]] = []
            for part in pool.imap(_work, _chunks(queries, chunk)):
                out.extend(part)
            return out
    finally:
        _INDEX = None
