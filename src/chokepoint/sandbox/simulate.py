"""The sandbox's monthly loop (policy-model.md sections 3.3-3.5).

Pass 1 asks the real engine, month by month, which regimes reach each flow under the
scenario's rules - with the US content of allied tools decaying once the US claims them
unilaterally (de-Americanisation), which is why this pass runs in time order. Pass 2 runs the
dynamics on those answers: expected blocked value after enforcement, stockpiling in the window
before each control takes effect, diversion of blocked demand (domestic, uncovered foreign,
unmet), Chinese substitution, and the leverage index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from chokepoint.rules.ruleset import RuleSet
from chokepoint.sandbox import dynamics
from chokepoint.sandbox.flows import Flows, month_date
from chokepoint.sandbox.reach import Pattern, ReachCache
from chokepoint.sandbox.world import World

OWN_REGIMES = ("US", "JP", "NL")


@dataclass
class Run:
    """One scenario's results: totals, monthly series and breakdowns, all in USD."""

    scenario: str
    title: str
    months: list[str]
    totals: dict[str, float]
    series: dict[str, list[float]]
    by_regime: dict[str, float]
    by_segment: dict[str, dict[str, float]]
    by_hq: dict[str, dict[str, float]]
    by_ship_from: dict[str, dict[str, float]]
    firms: dict[str, dict[str, Any]]
    parameters: dict[str, float]
    imports_by_origin: dict[str, list[float]] = field(default_factory=dict)
    blocked_by_regime: dict[str, float] = field(default_factory=dict)
    retaliation: dict[str, Any] = field(default_factory=dict)
    evaluations: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The scenario's entry in summary.json."""
        return {"title": self.title, **{k: round(v, 2) for k, v in self.totals.items()},
                "leverage": [round(x, 6) for x in self.series["leverage"]],
                "months": self.months,
                "caught_by_regime_usd": _rounded(self.by_regime),
                "blocked_by_regime_usd": _rounded(self.blocked_by_regime),
                "retaliation": self.retaliation,
                "by_segment": {k: _rounded(v) for k, v in self.by_segment.items()},
                "by_hq_country": {k: _rounded(v) for k, v in self.by_hq.items()},
                "by_ship_from_country": {k: _rounded(v) for k, v in self.by_ship_from.items()},
                "allied_firms": self.firms, "parameters": self.parameters,
                "monthly": {k: [round(x, 2) for x in v] for k, v in self.series.items()
                            if k != "leverage"},
                "notes": self.notes}


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in d.items()}


_PATTERNS: dict[int, tuple[Flows, list[Pattern], np.ndarray, np.ndarray, list[date]]] = {}


def _patterns(flows: Flows) -> tuple[list[Pattern], np.ndarray, np.ndarray, list[date]]:
    """The distinct fact patterns of a flow table (with their dates: each flow is evaluated
    on its own date), each flow's pattern id, and each pattern's starting US content (kept
    per table, since sweeps reuse it)."""
    memo = _PATTERNS.get(id(flows))
    if memo is not None and memo[0] is flows:
        return memo[1], memo[2], memo[3], memo[4]
    c = flows.cols
    index: dict[tuple[Pattern, float, str], int] = {}
    ids = np.empty(len(flows), dtype=np.int64)
    for i, row in enumerate(zip(c["supplier_firm"], c["hq_country"], c["ship_from_country"],
                                c["segment"], c["eccn"], c["fdpr_tech_flag"], c["buyer"],
                                c["buyer_listed"], c["buyer_advanced_fab"], c["destination"],
                                c["us_content_share"], c["date"], strict=True)):
        p = Pattern(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                    bool(row[5]), str(row[6]), bool(row[7]), bool(row[8]), str(row[9]))
        ids[i] = index.setdefault((p, float(row[10]), str(row[11])), len(index))
    patterns = [k[0] for k in index]
    u0 = np.array([k[1] for k in index])
    days = [date.fromisoformat(k[2]) for k in index]
    if len(_PATTERNS) > 8:
        _PATTERNS.clear()
    _PATTERNS[id(flows)] = (flows, patterns, ids, u0, days)
    return patterns, ids, u0, days


@dataclass
class _Answers:
    own: np.ndarray
    us: np.ndarray
    twin: np.ndarray
    undetermined: np.ndarray
    first_regime: np.ndarray  # the regime whose own rule catches the flow ('' if none)
    by_regime: dict[str, np.ndarray]
    firms: dict[str, dict[str, Any]]
    rule_change: list[bool]  # did the rules in force change since the month before?


def _reach(flows: Flows, rules: RuleSet, world: World, p: dict[str, float],
           cache: ReachCache) -> _Answers:
    """Pass 1: the engine's answers for every flow, in month order (a claim in one month
    starts the firm's de-Americanisation from the next)."""
    n = len(flows)
    patterns, pid, u0, days = _patterns(flows)
    k = len(patterns)
    own, us, twin, und = (np.zeros(n, dtype=bool) for _ in range(4))
    first = np.full(n, "", dtype=object)
    by_regime = {r: np.zeros(n, dtype=bool) for r in OWN_REGIMES}
    claimed: dict[str, int] = {}
    half_life = p["deamericanisation_half_life_years"] * 12
    bounds = np.searchsorted(flows.month, np.arange(flows.months + 1))
    changed: list[bool] = []
    for t in range(flows.months):
        on = month_date(flows.start, t, 15)
        changed.append(t > 0 and cache.state(rules, on) != cache.state(
            rules, month_date(flows.start, t - 1, 15)))
        sl = slice(int(bounds[t]), int(bounds[t + 1]))
        cols = {name: np.zeros(k, dtype=bool) for name in ("own", "us", "twin", "und",
                                                             *OWN_REGIMES)}
        first_p = np.full(k, "", dtype=object)
        newly: set[str] = set()
        for j in np.unique(pid[sl]):
            pat, u = patterns[j], float(u0[j])
            if pat.hq != "US" and pat.firm in claimed:
                u = dynamics.us_content(u, p["us_content_floor"], half_life,
                                        t - claimed[pat.firm])
                if pat.fdpr and u <= p["redesign_exit_share"]:
                    pat = Pattern(**{**pat.__dict__, "fdpr": False})  # redesigned out
            r = cache.reach(rules, pat, u, days[j])
            cols["own"][j], cols["us"][j], cols["twin"][j] = r.own, r.us, r.twin_us
            cols["und"][j] = r.undetermined
            for code in r.regimes:
                if code in cols:
                    cols[code][j] = True
            if r.own:
                first_p[j] = pat.hq if pat.hq in r.regimes else pat.ship_from
            if r.us and not r.own and pat.firm not in claimed:
                newly.add(pat.firm)
        ids = pid[sl]
        own[sl], us[sl], twin[sl] = cols["own"][ids], cols["us"][ids], cols["twin"][ids]
        und[sl], first[sl] = cols["und"][ids], first_p[ids]
        for code in OWN_REGIMES:
            by_regime[code][sl] = cols[code][ids]
        for firm in newly:
            claimed[firm] = t
    u_first: dict[str, float] = {}
    for j, pat in enumerate(patterns):
        if pat.hq != "US":
            u_first.setdefault(pat.firm, float(u0[j]))
    firms: dict[str, dict[str, Any]] = {}
    for firm, u_start in sorted(u_first.items()):
        c0 = claimed.get(firm)
        exit_after = dynamics.months_to_exit(u_start, p["us_content_floor"],
                                             p["redesign_exit_share"], half_life)
        firms[firm] = {
            "claimed_month": None if c0 is None else
            month_date(flows.start, c0).strftime("%Y-%m"),
            "months_to_exit_after_claim": None if exit_after is None else round(exit_after, 1),
            "exit_month": None if c0 is None or exit_after is None else
            month_date(flows.start, c0 + math.ceil(exit_after)).strftime("%Y-%m"),
            "us_content": [round(u_start if c0 is None or t <= c0 else dynamics.us_content(
                u_start, p["us_content_floor"], half_life, t - c0), 4)
                for t in range(flows.months)]}
    return _Answers(own, us, twin, und, first, by_regime, firms, changed)


def simulate(flows: Flows, rules: RuleSet, world: World, params: dict[str, float], *,
             scenario: str = "scenario", title: str = "", cache: ReachCache | None = None
             ) -> Run:
    """Run one scenario (its rule set and parameters) over the flows."""
    cache = cache or ReachCache.for_world(world)
    before = cache.evaluations
    a = _reach(flows, rules, world, params, cache)
    return _dynamics(flows, world, params, a, scenario, title,
                     cache.evaluations - before)


def _windows(flows: Flows, world: World, p: dict[str, float], a: _Answers) -> np.ndarray:
    """Excess imports pulled forward into the window before each flow type is first caught
    by its own regime's control (policy-model.md 3.4 step 2): from ``signal_months`` before
    the measure's announcement (a US measure: before it takes effect) until it bites. Orders
    that cannot arrive before then ship only if grandfathered. A type is a supplier, tool
    class and buyer, whatever its ECCN of the day; a unilateral US claim on a foreign firm
    has no window (announced and effective at once)."""
    c = flows.cols
    caught = a.own | a.us
    keys = np.char.add(np.char.add(c["supplier_firm"].astype(str), "|"),
                       np.char.add(c["segment"].astype(str), "|"))
    keys = np.char.add(keys, np.char.add(c["buyer"].astype(str),
                                         np.where(c["eccn"] == "EAR99", "|m", "|a")))
    types, tid = np.unique(keys, return_inverse=True)
    never = np.iinfo(np.int64).max
    first = np.full(len(types), never, dtype=np.int64)
    np.minimum.at(first, tid[caught], flows.month[caught].astype(np.int64))
    regime = np.full(len(types), "", dtype=object)
    hit = caught & (flows.month == first[tid])
    regime[tid[hit]] = a.first_regime[hit]
    announced = {r: (ann.date_.year - flows.start.year) * 12 + ann.date_.month
                 - flows.start.month + (ann.date_.day - 1) / 31
                 for r, ann in world.announced.items()}
    e = first[tid]
    t = flows.month.astype(np.int64)
    opens = np.full(len(types), np.inf)
    for k, r in enumerate(regime):
        if r in announced:
            opens[k] = min(announced[r], float(first[k])) - p["signal_months"]
        elif r:  # a US measure: signalled signal_months before it takes effect
            opens[k] = float(first[k]) - p["signal_months"]
    w_open = opens[tid]
    inside = ~caught & (e != never) & (w_open <= t) & (t < e)
    deliverable = np.where(t + p["lead_time_months"] < e, 1.0, p["grandfathering"])
    return np.where(inside, c["value_usd"] * (p["pull_forward_multiplier"] - 1) * deliverable,
                    0.0)


def _dynamics(flows: Flows, world: World, p: dict[str, float], a: _Answers, scenario: str,
              title: str, evaluations: int) -> Run:
    c = flows.cols
    v = c["value_usd"].astype(float)
    caught = a.own | a.us
    ext_only = a.us & ~a.own
    months = flows.months
    p_ext = np.full(months, p["enforcement_extraterritorial"])
    claims = [f["claimed_month"] for f in a.firms.values() if f["claimed_month"]]
    if claims and p["ally_refusal_months"] > 0:
        first = min(claims)
        t0 = (int(first[:4]) - flows.start.year) * 12 + int(first[5:]) - flows.start.month
        p_ext[int(t0 + p["ally_refusal_months"]):] = p["enforcement_extraterritorial_after_refusal"]
    blocked = v * (a.own * p["enforcement_own"] + ext_only * p_ext[flows.month])
    excess = _windows(flows, world, p, a)
    gap = v * ((c["hq_country"] != "US") & ~caught & a.twin)
    segs = list(world.segments)
    weights = np.array([world.segments[s].size_usd_bn for s in segs])
    weights = weights / weights.sum()
    scale = p["domestic_share_start"] / 0.25
    ceiling = [min(world.segments[s].cap or 1.0, p["domestic_share_ceiling"]) for s in segs]
    x = [min(world.segments[s].x0 * scale, ceiling[j]) for j, s in enumerate(segs)]
    rate = [world.segments[s].rate * p["substitution_rate_per_year"] / 0.5 for s in segs]
    delivered = v - blocked + excess
    ship = c["ship_from_country"]
    by_origin: dict[str, list[float]] = {str(o): [] for o in sorted(set(ship.tolist()))}
    series: dict[str, list[float]] = {k: [] for k in (
        "leverage", "caught_usd", "blocked_usd", "lpf_gap_usd", "stockpile_usd", "imports_usd",
        "diverted_domestic_usd", "diverted_foreign_usd", "unmet_usd", "domestic_share",
        "us_caught_share", "rule_change", "lpf_gap_filled_usd")}
    advanced = c["eccn"] != "EAR99"
    seg_col, hq_col = c["segment"], c["hq_country"]
    bounds = np.searchsorted(flows.month, np.arange(months + 1))
    for t in range(months):
        sl = slice(int(bounds[t]), int(bounds[t + 1]))
        dom_t = for_t = unmet_t = filled_t = 0.0
        lev = 0.0
        share_num = share_den = 0.0
        for j, s in enumerate(segs):
            in_s = seg_col[sl] == s
            demand = float(v[sl][in_s].sum())
            b_s = float(blocked[sl][in_s].sum())
            spare = max(0.0, (ceiling[j] - x[j]) * demand)
            for cls in (True, False):
                grp = in_s & (advanced[sl] == cls)
                b = float(blocked[sl][grp].sum())
                if b <= 0:
                    continue
                open_ = grp & ~caught[sl]
                shares: dict[str, float] = {}
                for hq, val in zip(hq_col[sl][open_], v[sl][open_], strict=True):
                    shares[str(hq)] = shares.get(str(hq), 0.0) + float(val)
                d = dynamics.divert(b, spare * b / b_s if b_s else 0.0,
                                    {k: x * p["foreign_spare_share"] for k, x in shares.items()},
                                    shares)
                dom_t += d.domestic
                for_t += sum(d.foreign.values())
                b_us = float(blocked[sl][grp & (hq_col[sl] == "US")].sum())
                filled_t += sum(d.foreign.values()) * b_us / b
                unmet_t += d.unmet
            reach_s = float(v[sl][in_s & caught[sl]].sum()) / demand if demand else 0.0
            lev += weights[j] * (1 - x[j]) * reach_s
            share_num += x[j] * weights[j]
            share_den += weights[j]
            closed = min(1.0, b_s / demand) if demand else 0.0
            x[j] = dynamics.substitution_step(x[j], rate[j], ceiling[j], p["closure_acceleration"],
                                              closed)
        for o, out in by_origin.items():
            out.append(float(delivered[sl][ship[sl] == o].sum()))
        series["leverage"].append(lev)
        series["caught_usd"].append(float(v[sl][caught[sl]].sum()))
        month_value = float(v[sl].sum())
        series["us_caught_share"].append(
            float(v[sl][a.by_regime["US"][sl]].sum()) / month_value if month_value else 0.0)
        series["rule_change"].append(1.0 if a.rule_change[t] else 0.0)
        series["blocked_usd"].append(float(blocked[sl].sum()))
        series["lpf_gap_usd"].append(float(gap[sl].sum()))
        series["stockpile_usd"].append(float(excess[sl].sum()))
        series["diverted_domestic_usd"].append(dom_t)
        series["diverted_foreign_usd"].append(for_t)
        series["unmet_usd"].append(unmet_t)
        series["lpf_gap_filled_usd"].append(filled_t)
        series["domestic_share"].append(share_num / share_den)
        series["imports_usd"].append(float(v[sl].sum()) - float(blocked[sl].sum()) + for_t
                                     + float(excess[sl].sum()))
    year = float(v.sum()) / months * 12
    stock = float(excess.sum())
    totals = {
        "caught_value_usd": float(v[caught].sum()),
        "blocked_value_usd": float(blocked.sum()),
        "lpf_gap_usd": float(gap.sum()),
        "stockpile_usd": stock,
        "stockpile_share_of_year": stock / year if year else 0.0,
        "stockpile_tool_years": (stock / year if year else 0.0) * p["tool_life_years"],
        "diverted_domestic_usd": sum(series["diverted_domestic_usd"]),
        "diverted_foreign_usd": sum(series["diverted_foreign_usd"]),
        "unmet_usd": sum(series["unmet_usd"]),
        # the part of the gap foreign firms actually filled: US suppliers' blocked demand
        # that went to uncovered foreign suppliers
        "lpf_gap_filled_usd": sum(series["lpf_gap_filled_usd"]),
        "demand_usd": float(v.sum()),
        "imports_usd": sum(series["imports_usd"]),
        "us_supplier_revenue_lost_usd": float(blocked[hq_col == "US"].sum())
        * (1 + p["spillover"]),
        "undetermined_value_usd": float(v[a.undetermined].sum()),
    }
    totals["caught_share_of_demand"] = totals["caught_value_usd"] / totals["demand_usd"]
    by_regime = {r: float(v[a.by_regime[r]].sum()) for r in OWN_REGIMES}
    by_regime["US_extraterritorial"] = float(v[ext_only].sum())
    blocked_by_regime = {r: float(blocked[a.own & (a.first_regime == r)].sum())
                         for r in OWN_REGIMES}
    blocked_by_regime["US_extraterritorial"] = float(blocked[ext_only].sum())

    def breakdown(col: np.ndarray) -> dict[str, dict[str, float]]:
        out = {}
        for key in sorted({str(k) for k in col}):
            sel = col == key
            out[key] = {"value_usd": float(v[sel].sum()),
                        "caught_usd": float(v[sel & caught].sum()),
                        "blocked_usd": float(blocked[sel].sum()),
                        "lpf_gap_usd": float(gap[sel].sum())}
        return out

    notes = []
    if totals["undetermined_value_usd"] > 0:
        notes.append(f"{totals['undetermined_value_usd'] / 1e9:.2f} bn USD of flows came out "
                     "undetermined (a fact or rule value the engine needs is open) and count "
                     "as not caught")
    return Run(scenario=scenario, title=title,
               months=[month_date(flows.start, t).strftime("%Y-%m") for t in range(months)],
               totals=totals, series=series, by_regime=by_regime,
               by_segment=breakdown(seg_col), by_hq=breakdown(hq_col),
               by_ship_from=breakdown(c["ship_from_country"]), firms=a.firms,
               imports_by_origin=by_origin, blocked_by_regime=blocked_by_regime,
               parameters=dict(p), evaluations=evaluations, notes=notes)


def escalations(run: Run, threshold: float = 0.01) -> list[str]:
    """Months in which the rules in force changed and the share of the flows the US catches
    rose by more than ``threshold``: the US escalations a retaliation flag is set against."""
    share, changed = run.series["us_caught_share"], run.series["rule_change"]
    return [run.months[t] for t in range(1, len(share))
            if changed[t] and share[t] - share[t - 1] > threshold]
