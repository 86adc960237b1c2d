"""Matching Export Control Classification Numbers against CCL paragraph patterns.

An ECCN names a paragraph path, e.g. ``3B001.f.1.b``. A pattern matches every ECCN at or
below its paragraph (``3B001.f.1`` matches ``3B001.f.1.b``); ``3B*`` matches a whole
product group. When the item is classified *less* specifically than the pattern
(``3B001`` against ``3B001.f.1``) membership is unknown: the sub-paragraph decides.
"""

from __future__ import annotations

from functools import lru_cache

from chokepoint.engine.logic import TV
from chokepoint.rules.predicate import EccnSet

NOT_LISTED = "EAR99"


@lru_cache(maxsize=8192)
def parse(eccn: str) -> tuple[str, tuple[str, ...]]:
    text = eccn.strip()
    if text.upper() == NOT_LISTED:
        return (NOT_LISTED, ())
    head, *subs = text.split(".")
    return (head.upper(), tuple(s.strip().lower() for s in subs if s.strip()))


@lru_cache(maxsize=65536)
def match(eccn: str, pattern: str) -> TV:
    """Does ``eccn`` fall under ``pattern``? None when the ECCN is not specific enough."""
    head, subs = parse(eccn)
    if pattern.endswith("*"):
        return head != NOT_LISTED and head.startswith(pattern[:-1].upper())
    p_head, p_subs = parse(pattern)
    if head != p_head:
        return False
    if subs[: len(p_subs)] == p_subs:
        return True
    if p_subs[: len(subs)] == subs:
        return None
    return False


def any_match(eccn: str, patterns: tuple[str, ...]) -> TV:
    result: TV = False
    for p in patterns:
        m = match(eccn, p)
        if m is True:
            return True
        if m is None:
            result = None
    return result


def in_set(eccn: str, eccns: EccnSet) -> TV:
    """Kleene membership: included and not excluded; open sets leave the rest unknown."""
    return membership(eccn, eccns)[0]


_MEMBERSHIP: dict[tuple[int, str], tuple[EccnSet, tuple[TV, str]]] = {}


def membership(eccn: str, eccns: EccnSet) -> tuple[TV, str]:
    """Cached :func:`_membership` (sets are immutable; keyed by identity)."""
    key = (id(eccns), eccn)
    hit = _MEMBERSHIP.get(key)
    if hit is not None and hit[0] is eccns:
        return hit[1]
    if len(_MEMBERSHIP) > 65536:
        _MEMBERSHIP.clear()
    result = _membership(eccn, eccns)
    _MEMBERSHIP[key] = (eccns, result)
    return result


def _membership(eccn: str, eccns: EccnSet) -> tuple[TV, str]:
    """Membership and, when unknown, why: ``specificity`` (the ECCN is not specific
    enough), or ``rule_data`` (the set itself is not settled for this ECCN)."""
    included = any_match(eccn, eccns.include)
    excluded = any_match(eccn, eccns.exclude) if eccns.exclude else False
    if included is False or excluded is True:
        result: TV = False
    elif included is True and excluded is False:
        result = True
    else:
        result = None
    if result is None:
        return None, "specificity"
    if result is False and eccns.unsettled:
        unsettled = any_match(eccn, eccns.unsettled)
        if unsettled is not False:
            return None, "rule_data" if unsettled else "specificity"
    if result is False and not eccns.closed and included is False:
        if parse(eccn)[0] == NOT_LISTED or any_match(eccn, eccns.outside) is True:
            return False, ""
        return None, "rule_data"
    return result, ""
