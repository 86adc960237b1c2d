"""Screening many names on several cores: the index is built once and shared with forked
child processes (never pickled). The calling process and each child take chunks of names
in turn (a shared counter) until none is left; a child sends the hits of each chunk back
as plain dictionaries, and the calling process reads them between its own chunks, so
that little is left to pass on when the last chunk is done. Long lists go in rounds of
``ROUND`` names.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import gc
import multiprocessing
import os
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from chokepoint.screening.match import REVIEW, ScreeningIndex

Query = tuple[str, str | None]
Hits = list[dict[str, Any]]
ROUND = 1 << 16  # names per round of forked children
_SET_PIPE_SIZE = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PIPE_BYTES = 1 << 20  # Linux's default upper limit (/proc/sys/fs/pipe-max-size)


def _screen(index: ScreeningIndex, queries: Sequence[Query], threshold: float,
            chunk: int) -> list[Hits]:
    out: list[Hits] = []
    for start in range(0, len(queries), chunk):
        out += ([h.as_dict() for h in hits]
                for hits in index.screen_many(queries[start:start + chunk], threshold))
    return out


def _claimed(index: ScreeningIndex, queries: Sequence[Query], threshold: float, chunk: int,
             counter: Any, each: Callable[[int, list[Hits]], None]) -> None:
    """Chunks claimed in turn (the next one not yet taken, until none is left), each
    screened and its hits given to ``each``."""
    while True:
        with counter.get_lock():
            k = counter.value
            counter.value = k + 1
        if k * chunk >= len(queries):
            return
        each(k, _screen(index, queries[k * chunk:(k + 1) * chunk], threshold, chunk))


def _child(send: Connection, index: ScreeningIndex, queries: Sequence[Query],
           threshold: float, chunk: int, counter: Any) -> None:
    gc.disable()  # short-lived objects, none cyclic; the index itself is frozen (below)
    try:
        _claimed(index, queries, threshold, chunk, counter,
                 lambda k, hits: send.send(("hits", (k, hits))))
        send.send(("done", None))
    except BaseException:  # reported to the parent, which raises it
        send.send(("error", traceback.format_exc()))
    finally:
        send.close()


def _widen(connection: Connection) -> None:
    """A larger pipe buffer (Linux), so a child seldom waits for this process to read."""
    # on another system, or with a lower limit, the default buffer works, a little slower
    with contextlib.suppress(OSError):
        fcntl.fcntl(connection.fileno(), _SET_PIPE_SIZE, _PIPE_BYTES)


def _round(index: ScreeningIndex, queries: list[Query], threshold: float, workers: int,
           chunk: int) -> list[Hits]:
    """One round: every process (this one included) takes chunks until none is left; the
    children's hits are read between this process's own chunks. The hits in input order."""
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    children: list[tuple[Any, Connection]] = []
    pending: list[tuple[Any, Connection]] = []
    out: list[Hits] = [[] for _ in queries]

    def store(k: int, hits: list[Hits]) -> None:
        out[k * chunk:k * chunk + len(hits)] = hits

    def read(wait: bool) -> None:
        for child, receive in list(pending):
            while wait or receive.poll():
                try:
                    kind, payload = receive.recv()
                except EOFError:
                    raise RuntimeError(f"screening process {child.pid} ended without its "
                                       f"hits (exit code {child.exitcode})") from None
                if kind == "error":
                    raise RuntimeError(f"screening process {child.pid} failed:\n{payload}")
                if kind == "done":
                    pending.remove((child, receive))
                    break
                store(*payload)

    def own(k: int, hits: list[Hits]) -> None:
        store(k, hits)
        read(wait=False)

    try:
        for _ in range(1, workers):
            receive, send = context.Pipe(duplex=False)
            _widen(send)
            child = context.Process(target=_child, daemon=True,
                                    args=(send, index, queries, threshold, chunk, counter))
            child.start()
            send.close()
            children.append((child, receive))
        pending += children
        _claimed(index, queries, threshold, chunk, counter, own)
        read(wait=True)
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
            # what this call made (its hits, cache entries) joins the oldest generation
            # too, as the index does: left young, it would all be traversed by the next
            # collection (about 0.09 s for 20,000 names), though none of it is cyclic
            gc.freeze()
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
