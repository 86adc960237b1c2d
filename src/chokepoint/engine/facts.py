"""Reading facts from a transaction by dotted path, keeping "unknown" distinct from "none"."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

MISSING: Any = object()


@lru_cache(maxsize=4096)
def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def get(scope: Any, path: str) -> Any:
    """The value at ``path`` below ``scope``, or :data:`MISSING` if absent or null."""
    if "." not in path:
        value = scope.get(path) if isinstance(scope, dict) else None
        return MISSING if value is None else value
    value = scope
    for part in _parts(path):
        if not isinstance(value, dict):
            return MISSING
        value = value.get(part)
        if value is None:
            return MISSING
    return value


def join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path
