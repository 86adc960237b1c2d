"""API keys: shown once, stored hashed, compared in constant time, with roles."""

from __future__ import annotations

import hashlib
import hmac
import secrets

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


def check_key(engine: Engine, presented: str) -> tuple[str, str] | None:
    """(key prefix, role) for a valid key, else None."""
    try:
        tag, prefix, secret = presented.split("_", 2)
    except ValueError:
        return None
    if tag != "ck":
        return None
    with Session(engine) as s:
        key = s.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    candidate = key.secret_hash if key is not None and not key.revoked else _hash("x")
    ok = hmac.compare_digest(candidate, _hash(secret))
    return (prefix, key.role) if ok and key is not None and not key.revoked else None
