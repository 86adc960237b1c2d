"""Policy sandbox speed: the five shipped scenarios over 60 months of 100,000 flows, and the
cost of a one-parameter scenario against the baseline run.

Run: .venv/bin/python bench/bench_sandbox.py [--flows 100000] [--months 60] [--repeat 3]
Each repeat starts cold (fresh rule sets, fresh engine cache, flows generated again), so the
figure includes every engine determination the run needs. Not a test: figures for the notes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from chokepoint.rules.loader import load_rules
from chokepoint.sandbox.reach import ReachCache
from chokepoint.sandbox.report import write
from chokepoint.sandbox.run import execute, plan
from chokepoint.sandbox.scenario import SHIPPED, Scenario, apply, shipped
from chokepoint.sandbox.simulate import simulate

ONE_CHANGE = {"name": "no-supp4-exclusion", "title": "Drop the Supp. No. 4 exclusion",
              "changes": [{"parameter": "us.ear.742.supp4.exclusion_in_force",
                           "from": "2025-01-01", "value": False}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    totals, reports, evals = [], [], []
    for _ in range(args.repeat):
        rules = load_rules()  # cold: new rule objects, so nothing is cached from before
        start = time.perf_counter()
        p = plan(list(SHIPPED), rules, months=args.months, flows=args.flows)
        result = execute(p)
        totals.append(time.perf_counter() - start)
        evals.append(result.evaluations)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write(result, p, Path(tmp))
            reports.append(time.perf_counter() - start)
    print(f"{len(SHIPPED)} scenarios x {args.months} months x {args.flows:,} flows: "
          f"{min(totals):.2f} s best, {statistics.median(totals):.2f} s median of "
          f"{args.repeat} (engine determinations {evals[0]:,}); report writing "
          f"{statistics.median(reports):.2f} s")
    # one-parameter scenario vs the baseline run, each from a cold cache, then warm
    cold_base, cold_one, warm_one = [], [], []
    for _ in range(args.repeat):
        rules = load_rules()
        p = plan(["hybrid-2024"], rules, months=args.months, flows=args.flows)
        (scenario, base_rules), world = p.scenarios[0], p.world
        flows = execute(p).flows  # generated once, outside the timings
        params = p.parameters(scenario)
        one = apply(Scenario.parse(ONE_CHANGE), base_rules)
        start = time.perf_counter()
        cache = ReachCache.for_world(world)
        simulate(flows, base_rules, world, params, cache=cache)
        cold_base.append(time.perf_counter() - start)
        start = time.perf_counter()
        simulate(flows, one, world, params, cache=cache)
        warm_one.append(time.perf_counter() - start)
        start = time.perf_counter()
        simulate(flows, apply(Scenario.parse(ONE_CHANGE), apply(shipped("hybrid-2024"), apply(
            shipped("assumptions"), load_rules()))), world, params,
            cache=ReachCache.for_world(world))
        cold_one.append(time.perf_counter() - start)
    b, c, w = (statistics.median(x) for x in (cold_base, cold_one, warm_one))
    print(f"baseline run (hybrid-2024) {b:.2f} s; one-parameter scenario {c:.2f} s cold "
          f"({c / b:.2f}x), {w:.2f} s after the baseline ({w / b:.2f}x)")


if __name__ == "__main__":
    main()
