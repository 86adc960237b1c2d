"""The append-only audit log: every record carries the hash of the one before it.

``verify`` recomputes every hash in id order: an altered record breaks its own hash, a
removed or reordered one breaks the chain (or the id sequence, or the chain head).
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chokepoint import __version__
from chokepoint.service.db import AuditRecord, ChainHead, now

_FIELDS = sorted(("created_at", "kind", "user", "request", "response", "rules_version",
                  "engine_version"))


def _json_value(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)``, computed by orjson for strings (the same
    escapes, byte for byte: tested), by json otherwise or when orjson refuses the text."""
    if isinstance(value, str):
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError:
            pass
    return json.dumps(value, ensure_ascii=False)


def _digest(prev_hash: str, rec: dict[str, Any]) -> str:
    # the text of json.dumps({...}, sort_keys=True, ensure_ascii=False), the chain's format
    body = "{" + ", ".join(f'"{k}": {_json_value(rec[k])}' for k in _FIELDS) + "}"
    return hashlib.sha256((prev_hash + "\n" + body).encode()).hexdigest()


def canonical(value: Any) -> str:
    """The JSON text stored (and hashed) for a request or response: keys sorted, compact.
    orjson writes it; what orjson refuses (integers beyond 64 bits, lone surrogates) is
    written by json in the same shape."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
                            ).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def make_record(kind: str, user: str, request: Any, response: Any,
                rules_version: str) -> dict[str, Any]:
    """A record; ``request``/``response`` may be given already as canonical JSON text."""
    return {"created_at": now().isoformat(), "kind": kind, "user": user,
            "request": request if isinstance(request, str) else canonical(request),
            "response": response if isinstance(response, str) else canonical(response),
            "rules_version": rules_version, "engine_version": __version__}


def append_many(engine: Engine, records: list[dict[str, Any]]) -> list[int]:
    """Store records in one transaction, each chained to the one before; their ids."""
    # The chain head row is locked (PostgreSQL: SELECT ... FOR UPDATE; SQLite: every
    # transaction begins IMMEDIATE), so concurrent appends queue instead of forking the chain.
    ids: list[int] = []
    with Session(engine) as s, s.begin():
        head = s.execute(select(ChainHead).where(ChainHead.id == 1).with_for_update()
                         ).scalar_one()
        last_id, last_hash = head.last_id, head.last_hash
        rows = []
        for rec in records:
            rec_hash = _digest(last_hash, rec)
            last_id += 1
            rows.append({**rec, "id": last_id, "prev_hash": last_hash, "hash": rec_hash,
                         "created_at": datetime.fromisoformat(rec["created_at"])})
            last_hash = rec_hash
            ids.append(last_id)
        s.execute(insert(AuditRecord), rows)  # one executemany, no ORM unit of work
        head.last_id, head.last_hash = last_id, last_hash
    return ids


def append(engine: Engine, kind: str, user: str, request: Any, response: Any,
           rules_version: str) -> int:
    """Store one record, chained to the previous one; returns its id (after commit)."""
    return append_many(engine, [make_record(kind, user, request, response, rules_version)])[0]


class GroupWriter:
    """Commits the records of concurrent requests together (one transaction, one fsync) and
    acknowledges each only after its transaction has committed."""

    def __init__(self, engine: Engine | None = None, max_batch: int = 256,
                 append: Callable[[list[dict[str, Any]]], list[int]] | None = None) -> None:
        """Records go to ``engine``, or to ``append`` (e.g. the shared writer process of
        ``audit_writer``), which stores a batch and returns its ids."""
        if append is None:
            if engine is None:
                raise ValueError("GroupWriter needs an engine or an append function")
            bound = engine

            def append(records: list[dict[str, Any]]) -> list[int]:
                return append_many(bound, records)
        self._append = append
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[dict[str, Any], Future[int]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, record: dict[str, Any]) -> Future[int]:
        fut: Future[int] = Future()
        self._queue.put((record, fut))
        return fut

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                ids = self._append([r for r, _ in batch])
            except Exception as exc:  # the requests fail; nothing is acknowledged
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            for (_, fut), new_id in zip(batch, ids, strict=True):
                fut.set_result(new_id)


def _as_dict(r: AuditRecord) -> dict[str, Any]:
    return {"created_at": r.created_at.isoformat() if r.created_at.tzinfo else
            r.created_at.replace(tzinfo=now().tzinfo).isoformat(),
            "kind": r.kind, "user": r.user, "request": r.request, "response": r.response,
            "rules_version": r.rules_version, "engine_version": r.engine_version}


def verify(engine: Engine) -> tuple[bool, list[str], int]:
    """(intact, problems, records checked)."""
    problems: list[str] = []
    prev_hash, expected_id, count = "", 1, 0
    with Session(engine) as s:
        for r in s.execute(select(AuditRecord).order_by(AuditRecord.id)).scalars():
            count += 1
            if r.id != expected_id:
                problems.append(f"record {expected_id} is missing (next is {r.id})")
            if r.prev_hash != prev_hash:
                problems.append(f"record {r.id}: does not follow the record before it "
                                "(removed or reordered records)")
            if _digest(r.prev_hash, _as_dict(r)) != r.hash:
                problems.append(f"record {r.id}: its content was altered")
            prev_hash, expected_id = r.hash, r.id + 1
        head = s.execute(select(ChainHead).where(ChainHead.id == 1)).scalar_one_or_none()
        if head is None or head.last_hash != prev_hash or head.last_id != expected_id - 1:
            problems.append("the chain head does not match the last record (records removed "
                            "from the end?)")
    return not problems, problems, count


def record(engine: Engine, record_id: int) -> dict[str, Any] | None:
    with Session(engine) as s:
        r = s.get(AuditRecord, record_id)
        if r is None:
            return None
        return {"id": r.id, **_as_dict(r), "request": json.loads(r.request),
                "response": json.loads(r.response), "hash": r.hash, "prev_hash": r.prev_hash}


def listing(engine: Engine, limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
    with Session(engine) as s:
        rows = s.execute(select(AuditRecord).where(AuditRecord.id > after)
                         .order_by(AuditRecord.id).limit(limit)).scalars()
        return [{"id": r.id, "created_at": r.created_at.isoformat(), "kind": r.kind,
                 "user": r.user, "rules_version": r.rules_version, "hash": r.hash}
                for r in rows]
