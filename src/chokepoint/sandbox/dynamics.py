"""The sandbox's monthly dynamics as pure functions (policy-model.md section 3.4).

Kept apart from the rule evaluation (which is the real engine, run over the flows): each
function takes numbers and returns numbers, so the properties the model document states -
conservation of blocked demand, monotone substitution below its ceiling, de-Americanisation
that never reverses, the time-to-exit formula - are tested here directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def decay_rate(half_life_months: float) -> float:
    """lambda = ln 2 / half-life (per month)."""
    if half_life_months <= 0:
        raise ValueError("the half-life must be positive")
    return math.log(2) / half_life_months


def us_content(u0: float, u_min: float, half_life_months: float,
               months_since_claim: float) -> float:
    """u_f(t) = u_min + (u0 - u_min) exp(-lambda max(0, t - t_claim)): a firm's US content
    once the US claims its China sales without an ally carve-out."""
    elapsed = max(0.0, months_since_claim)
    return u_min + (u0 - u_min) * math.exp(-decay_rate(half_life_months) * elapsed)


def months_to_exit(u0: float, u_min: float, de_minimis: float,
                   half_life_months: float) -> float | None:
    """Months until a firm's US content falls to the de minimis level: 0 if it is already
    there, None if it never will (the floor u_min is at or above the threshold)."""
    if u0 <= de_minimis:
        return 0.0
    if de_minimis <= u_min:
        return None
    return math.log((u0 - u_min) / (de_minimis - u_min)) / decay_rate(half_life_months)


def substitution_step(share: float, rate_per_year: float, ceiling: float, kappa: float,
                      closed: float) -> float:
    """One month of logistic substitution, accelerated by the blocked share ``closed``:
    x' = x + (r/12) x (1 - x/ceiling)(1 + kappa closed), never above the ceiling and never
    below x."""
    if not 0 <= closed <= 1:
        raise ValueError("closed is a share in [0, 1]")
    if share >= ceiling:
        return share
    step = (rate_per_year / 12) * share * (1 - share / ceiling) * (1 + kappa * closed)
    return min(ceiling, share + max(0.0, step))


@dataclass(frozen=True)
class Diversion:
    """Where one month's blocked demand goes: B = domestic + sum(foreign) + unmet."""

    domestic: float
    foreign: dict[str, float]
    unmet: float


def divert(blocked: float, domestic_spare: float, foreign_spare: dict[str, float],
           foreign_shares: dict[str, float]) -> Diversion:
    """Blocked demand goes first to domestic suppliers up to their spare capacity, then to the
    uncovered foreign suppliers in proportion to their current shares (each up to its spare
    capacity); the rest is unmet - the true denial effect."""
    if blocked < 0 or domestic_spare < 0 or any(v < 0 for v in foreign_spare.values()):
        raise ValueError("blocked demand and capacities are non-negative")
    domestic = min(blocked, domestic_spare)
    rest = blocked - domestic
    foreign = {k: 0.0 for k in foreign_spare}
    # proportional fill with caps: re-spread what capped suppliers cannot take
    open_ = {k for k, s in foreign_shares.items() if s > 0 and foreign_spare.get(k, 0) > 0}
    while rest > 1e-12 and open_:
        total = sum(foreign_shares[k] for k in open_)
        given = 0.0
        for k in sorted(open_):
            take = min(rest * foreign_shares[k] / total, foreign_spare[k] - foreign[k])
            foreign[k] += take
            given += take
        rest -= given
        open_ = {k for k in open_ if foreign_spare[k] - foreign[k] > 1e-12}
        if given <= 1e-12:
            break
    return Diversion(domestic=domestic, foreign=foreign, unmet=max(0.0, rest))


def stockpile(window_demand: list[float], multiplier: float,
              capacity: float | None = None) -> float:
    """Excess imports in the window between the first signal and the effective date:
    sum over the window's months of covered demand x (m - 1), each month's deliveries capped
    by supplier capacity."""
    if multiplier < 1:
        raise ValueError("the pull-forward multiplier is at least 1")
    total = 0.0
    for demand in window_demand:
        delivered = demand * multiplier
        if capacity is not None:
            delivered = min(delivered, max(capacity, demand))
        total += delivered - demand
    return total
