"""API keys: shown once, stored hashed, compared in constant time, with roles."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chokepoint.service.db import ApiKey, now

ROLES = ("viewer", "analyst", "auditor", "admin")
# what each role may do, beyond viewing rules
GRANTS = {
    "viewer": {"rules"},
    "analyst": {"rules", "determine", "screen", "diff", "sandbox"},
    "auditor": {"rules", "audit"},
    "admin": {"rules", "determine", "screen", "diff", "sandbox", "audit", "keys"},
}


def _hash(secret: str) -> str:
    # API keys carry 256 bits of randomness: a plain SHA-256 is not brute-forceable.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(engine: Engine, role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with Session(engine) as s, s.begin():
        s.add(ApiKey(prefix=prefix, secret_hash=_hash(secret), role=role, created_at=now()))
    return f"ck_{prefix}_{secret}"


def _split(presented: str) -> tuple[str, str] | None:
    try:
        tag, prefix, secret = presented.split("_", 2)
    except ValueError:
        return None
    return (prefix, secret) if tag == "ck" else None


def _lookup(engine: Engine, prefix: str) -> tuple[str, str] | None:
    """(secret hash, role) of a live key, else None."""
    with Session(engine) as s:
        key = s.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    return (key.secret_hash, key.role) if key is not None and not key.revoked else None


def _verify(found: tuple[str, str] | None, prefix: str, secret: str) -> tuple[str, str] | None:
    candidate = found[0] if found is not None else _hash("x")
    ok = hmac.compare_digest(candidate, _hash(secret))  # constant time, found or not
    return (prefix, found[1]) if ok and found is not None else None


def check_key(engine: Engine, presented: str) -> tuple[str, str] | None:
    """(key prefix, role) for a valid key, else None."""
    parts = _split(presented)
    if parts is None:
        return None
    return _verify(_lookup(engine, parts[0]), *parts)


class KeyCache:
    """``check_key`` with each key's record kept for ``ttl`` seconds, so that a request does
    not open a database transaction just to authenticate (on SQLite that transaction
    queued behind the audit writer). A key created or revoked in the database takes effect
    within ``ttl`` seconds; unknown prefixes are cached too, in a bounded table."""

    def __init__(self, engine: Engine, ttl: float = 5.0, size: int = 10_000) -> None:
        self.engine, self.ttl, self.size = engine, ttl, size
        self._known: dict[str, tuple[float, tuple[str, str] | None]] = {}
        self._lock = threading.Lock()

    def check(self, presented: str) -> tuple[str, str] | None:
        parts = _split(presented)
        if parts is None:
            return None
        prefix, secret = parts
        now_ = time.monotonic()
        with self._lock:
            cached = self._known.get(prefix)
        if cached is None or now_ - cached[0] > self.ttl:
            found = _lookup(self.engine, prefix)
            with self._lock:
                if len(self._known) >= self.size:
                    self._known.clear()
                self._known[prefix] = (now_, found)
        else:
            found = cached[1]
        return _verify(found, prefix, secret)
