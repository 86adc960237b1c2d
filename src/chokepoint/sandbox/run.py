"""A sandbox run: scenarios applied to the real rules, the flows generated (or imported), the
monthly model run per scenario, and optionally a parameter sweep for bands."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import qmc

from chokepoint.rules.ruleset import RuleSet
from chokepoint.sandbox.flows import Flows, generate, read_flows
from chokepoint.sandbox.params import ParameterError, default_parameters, values
from chokepoint.sandbox.reach import ReachCache
from chokepoint.sandbox.scenario import Scenario, ScenarioError, apply, load_scenario, shipped
from chokepoint.sandbox.simulate import Run, escalations, simulate
from chokepoint.sandbox.world import World, default_world

# switches a scenario sets on purpose; never swept
NOT_SWEPT = frozenset({"ally_refusal_months"})
# the headline outputs summary.json must carry, per scenario
HEADLINE = ("caught_value_usd", "blocked_value_usd", "lpf_gap_usd", "stockpile_usd",
            "stockpile_tool_years", "diverted_domestic_usd", "diverted_foreign_usd", "unmet_usd")
# parameters that shape the generated flows (a sweep regenerates the flows when they change)
FLOW_PARAMETERS = frozenset({"demand_base_usd_bn", "demand_growth_per_year", "advanced_share",
                             "listed_buyer_share", "advanced_fab_share",
                             "us_content_allied_tools", "us_content_offshore"})


@dataclass
class Plan:
    """What to run: scenarios (validated and applied), flows and parameter overrides."""

    scenarios: list[tuple[Scenario, RuleSet]]
    world: World
    months: int = 60
    flows: int = 100_000
    seed: int = 7
    flows_file: Path | None = None
    overrides: dict[str, float] = field(default_factory=dict)

    def parameters(self, scenario: Scenario, extra: dict[str, float] | None = None
                   ) -> dict[str, float]:
        merged: dict[str, float] = {}
        for key, value in scenario.parameters.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ScenarioError(f"scenario {scenario.name}: parameters.{key}: not a number")
            merged[key] = float(value)
        merged.update(self.overrides)
        merged.update(extra or {})
        try:
            return values(merged)
        except ParameterError as exc:
            raise ScenarioError(f"scenario {scenario.name}: {exc}") from exc


def plan(names: Sequence[str | Scenario], rules: RuleSet, **kw: Any) -> Plan:
    """Load and apply every scenario before anything runs: a bad scenario, rule path or
    parameter is an error naming it, and nothing has been computed."""
    if not names:
        raise ScenarioError("name at least one scenario")
    base = apply(shipped("assumptions"), rules)
    out = []
    seen: set[str] = set()
    for name in names:
        scenario = name if isinstance(name, Scenario) else load_scenario(name)
        if scenario.name in seen:
            raise ScenarioError(f"scenario '{scenario.name}' is named twice")
        seen.add(scenario.name)
        out.append((scenario, apply(scenario, base)))
    p = Plan(scenarios=out, world=default_world(), **kw)
    for scenario, _ in out:
        p.parameters(scenario)  # validate now
    return p


def flows_for(p: Plan, params: dict[str, float]) -> Flows:
    if p.flows_file is not None:
        return read_flows(p.flows_file, p.world.start, p.months)
    return generate(p.world, params, flows=p.flows, months=p.months, seed=p.seed)


@dataclass
class Result:
    runs: list[Run]
    bands: dict[str, dict[str, Any]]
    flows: Flows
    evaluations: int


def execute(p: Plan, *, sweep: int = 0,
            progress: Callable[[int, int], None] | None = None) -> Result:
    """Run every scenario at its parameters; with ``sweep`` > 0 also run that many
    Latin-hypercube samples of the assumed parameters per scenario and report bands."""
    cache = ReachCache.for_world(p.world)
    runs: list[Run] = []
    flows_cache: dict[tuple[float, ...], Flows] = {}

    def flows_of(params: dict[str, float]) -> Flows:
        # a user's flow table does not depend on the parameters: read it once
        key = (() if p.flows_file is not None
               else tuple(params[k] for k in sorted(FLOW_PARAMETERS)))
        if key not in flows_cache:
            if len(flows_cache) > 2:
                flows_cache.clear()
            flows_cache[key] = flows_for(p, params)
        return flows_cache[key]

    total = len(p.scenarios) * (1 + sweep)
    done = 0
    first: Flows | None = None
    for scenario, rules in p.scenarios:
        params = p.parameters(scenario)
        flows = flows_of(params)
        first = first or flows
        run = simulate(flows, rules, p.world, params, scenario=scenario.name,
                       title=scenario.title, cache=cache)
        run.retaliation = retaliation(scenario, run, p.world)
        runs.append(run)
        done += 1
        if progress:
            progress(done, total)
    bands: dict[str, dict[str, Any]] = {}
    if sweep:
        for scenario, rules in p.scenarios:
            samples = []
            for extra in lhs(sweep, p.seed, fixed=set(scenario.parameters) | set(p.overrides)):
                params = p.parameters(scenario, extra)
                samples.append(simulate(flows_of(params), rules, p.world, params,
                                        scenario=scenario.name, cache=cache))
                done += 1
                if progress:
                    progress(done, total)
            bands[scenario.name] = band(samples, swept=sorted(lhs_keys(
                set(scenario.parameters) | set(p.overrides))))
    assert first is not None
    return Result(runs=runs, bands=bands, flows=first, evaluations=cache.evaluations)


def retaliation(scenario: Scenario, run: Run, world: World) -> dict[str, Any]:
    """Dated counter-measure flags: the scenario's events in the run's window, and the US
    escalations (with the measured retaliation lag) they may answer."""
    events: list[dict[str, str]]
    if scenario.retaliation == "history":
        events = [{"date": e.date_.isoformat(), "measure": e.measure, "source": e.metric or ""}
                  for e in world.retaliation]
    elif scenario.retaliation == "none":
        events = []
    else:
        events = [{"date": e.date_.isoformat(), "measure": e.measure}
                  for e in scenario.retaliation]
    first, last = run.months[0], run.months[-1]
    lag = world.retaliation_lag_days
    return {"events": [e for e in events if first <= e["date"][:7] <= last],
            "us_escalations": escalations(run),
            "lag_days": [lag.low, lag.high], "lag_source": lag.source}


def lhs_keys(fixed: set[str]) -> list[str]:
    table = default_parameters().parameters
    return sorted(k for k, v in table.items()
                  if v.status == "A" and k not in NOT_SWEPT and k not in fixed)


def lhs(n: int, seed: int, fixed: set[str] | None = None) -> list[dict[str, float]]:
    """``n`` Latin-hypercube samples of the assumed (status A) parameters over their ranges."""
    table = default_parameters().parameters
    keys = lhs_keys(fixed or set())
    unit = qmc.LatinHypercube(d=len(keys), seed=seed).random(n)
    lows = np.array([table[k].range[0] for k in keys])
    highs = np.array([table[k].range[1] for k in keys])
    points = qmc.scale(unit, lows, highs) if len(keys) else np.zeros((n, 0))
    return [{k: float(v) for k, v in zip(keys, row, strict=True)} for row in points]


def band(samples: list[Run], swept: list[str]) -> dict[str, Any]:
    """5th, 50th and 95th percentiles of each headline output and of the leverage path."""
    totals = {}
    for key in (*HEADLINE, "caught_share_of_demand", "us_supplier_revenue_lost_usd"):
        xs = np.array([s.totals[key] for s in samples])
        totals[key] = {q: round(float(np.percentile(xs, pct)), 4)
                       for q, pct in (("p5", 5), ("p50", 50), ("p95", 95))}
    lev = np.array([s.series["leverage"] for s in samples])
    return {"method": "latin-hypercube", "samples": len(samples), "swept": swept,
            "totals": totals,
            "leverage": {q: [round(float(x), 6) for x in np.percentile(lev, pct, axis=0)]
                         for q, pct in (("p5", 5), ("p50", 50), ("p95", 95))}}
