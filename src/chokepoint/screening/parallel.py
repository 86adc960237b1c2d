"""Screening many names on several cores: the index is built once and shared with forked
child processes (never pickled). The calling process and each child take chunks of names
in turn (a shared counter) until none is left; a child sends the hits of its chunks back
as plain dictionaries, in one message, when no chunk is left. Long lists go in rounds of
``ROUND`` names, so a child never holds more than a round of hits.
"""

from __future__ import annotations

import copy
import gc
import multiprocessing
import os
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from chokepoint.screening.match import REVIEW, ScreeningIndex

Query = tuple[str, str | None]
Hits = list[dict[str, Any]]
ROUND = 1 << 16  # names per round of forked children


def _screen(index: ScreeningIndex, queries: Sequence[Query], threshold: float,
            chunk: int) -> list[Hits]:
    out: list[Hits] = []
    for start in range(0, len(queries), chunk):
        out += ([h.as_dict() for h in hits]
                for hits in index.screen_many(queries[start:start + chunk], threshold))
    return out


def _claimed(index: ScreeningIndex, queries: Sequence[Query], threshold: float, chunk: int,
             counter: Any) -> list[tuple[int, list[Hits]]]:
    """The chunks this process claims (the next one not yet taken, until none is left),
    each with its hits."""
    done: list[tuple[int, list[Hits]]] = []
    while True:
        with counter.get_lock():
            k = counter.value
            counter.value = k + 1
        if k * chunk >= len(queries):
            return done
        done.append((k, _screen(index, queries[k * chunk:(k + 1) * chunk], threshold, chunk)))


def _child(send: Connection, index: ScreeningIndex, queries: Sequence[Query],
           threshold: float, chunk: int, counter: Any) -> None:
    gc.disable()  # short-lived objects, none cyclic; the index itself is frozen (below)
    try:
        send.send(("hits", _claimed(index, queries, threshold, chunk, counter)))
    except BaseException:  # reported to the parent, which raises it
        send.send(("error", traceback.format_exc()))
    finally:
        send.close()


def _round(index: ScreeningIndex, queries: list[Query], threshold: float, workers: int,
           chunk: int) -> list[Hits]:
    """One round: every process (this one included) takes chunks until none is left; the
    hits in input order."""
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    children: list[tuple[Any, Connection]] = []
    try:
        for _ in range(1, workers):
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_child, daemon=True,
                                    args=(send, index, queries, threshold, chunk, counter))
            child.start()
            send.close()
            children.append((child, receive))
        out: list[Hits] = [[] for _ in queries]
        parts = _claimed(index, queries, threshold, chunk, counter)
        for child, receive in children:
            try:
                kind, payload = receive.recv()
            except EOFError:
                raise RuntimeError(f"screening process {child.pid} ended without its hits "
                                   f"(exit code {child.exitcode})") from None
            if kind == "error":
                raise RuntimeError(f"screening process {child.pid} failed:\n{payload}")
            parts += payload
        for k, hits in parts:
            out[k * chunk:k * chunk + len(hits)] = hits
        return out
    finally:
        for child, receive in children:
            receive.close()
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
                child.join()


def screen_many(index: ScreeningIndex, queries: Sequence[Query],
                threshold: float = REVIEW, workers: int | None = None,
                chunk: int = 256) -> list[Hits]:
    """The hits (``Hit.as_dict``) of every (name, country), in input order; a name repeated
    with the same country is screened once. ``workers`` (processes, this one included)
    defaults to the machine's cores; one worker, or a short list, stays in this process."""
    workers = workers or os.cpu_count() or 1
    distinct = list(dict.fromkeys(queries))
    found: dict[Query, Hits] = {}
    if workers <= 1 or len(distinct) < 2 * chunk:
        found.update(zip(distinct, _screen(index, distinct, threshold, chunk), strict=True))
    else:
        # The children's collector would leave the index's pages unshared, and this
        # process only gathers plain results (none cyclic). No collection first: a full
        # one over the index costs about 0.1 s, and the frozen objects are unfrozen below.
        collecting = gc.isenabled()
        gc.freeze()
        gc.disable()
        try:
            for start in range(0, len(distinct), ROUND):
                part = distinct[start:start + ROUND]
                found.update(zip(part, _round(index, part, threshold, workers, chunk),
                                 strict=True))
        finally:
            gc.unfreeze()
            if collecting:
                gc.enable()
    # a repeated name gets its own copies (callers may change what they are given)
    seen: set[Query] = set()
    out: list[Hits] = []
    for q in queries:
        hits = found[q]
        out.append(hits if q not in seen else copy.deepcopy(hits))
        seen.add(q)
    return out
