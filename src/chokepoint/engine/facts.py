"""Reading facts from a transaction by dotted path, keeping "unknown" distinct from "none"."""

from __future__ import annotations

from typing import Any

MISSING: Any = object()


def get(scope: Any, path: str) -> Any:
    """The value at ``path`` below ``scope``, or :data:`MISSING` if absent or null."""
    value = scope
    for part in path.split("."):
        if not isinstance(value, dict):
            return MISSING
        value = value.get(part)
        if value is None:
            return MISSING
    return value


def join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path
