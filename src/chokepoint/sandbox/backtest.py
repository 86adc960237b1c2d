"""Calibration backtests: the sandbox's replay of the rules as they were (hybrid-2024) against
the measured figures and tolerances of policy-model.md section 3.8 (``data/backtests.yaml``).
A check that fails is reported as failing, with its measured and target values - never
loosened to pass."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from chokepoint.rules.loader import read_yaml
from chokepoint.sandbox.datafile import bundled
from chokepoint.sandbox.simulate import Run


@lru_cache(maxsize=1)
def checks() -> list[dict[str, Any]]:
    return list(read_yaml(bundled("backtests.yaml"), "backtests.yaml")["checks"])


def _months(run: Run, period: list[str]) -> list[int]:
    found = [i for i, m in enumerate(run.months) if period[0] <= m <= period[1]]
    if not found:
        raise ValueError(f"the run ({run.months[0]} to {run.months[-1]}) does not cover "
                         f"{period[0]} to {period[1]}")
    return found


def measure(run: Run, check: dict[str, Any]) -> float:
    idx = _months(run, check["period"])
    kind = check["measure"]
    if kind == "imports":
        return sum(run.series["imports_usd"][i] for i in idx)
    if kind in ("origin_share", "origin_imports"):
        mine = sum(run.imports_by_origin.get(check["origin"], [0.0] * len(run.months))[i]
                   for i in idx)
        if kind == "origin_imports":
            return mine
        total = sum(sum(series[i] for i in idx) for series in run.imports_by_origin.values())
        return mine / total if total else 0.0
    if kind == "domestic_share_change":
        return run.series["domestic_share"][idx[-1]] - run.series["domestic_share"][idx[0]]
    raise ValueError(f"unknown backtest measure '{kind}'")


def backtest(run: Run) -> list[dict[str, Any]]:
    """Every check with its measured value, its band and whether it passed (None, with no
    value, when the run does not cover the check's period)."""
    out: list[dict[str, Any]] = []
    for c in checks():
        if not any(c["period"][0] <= m <= c["period"][1] for m in run.months) or \
                run.months[-1] < c["period"][1]:
            out.append({"id": c["id"], "what": c["what"], "metric": c["metric"],
                        "measured": None, "passed": None,
                        "reason": f"the run does not cover {c['period'][0]} to "
                                  f"{c['period'][1]}"})
            continue
        value = measure(run, c)
        if "low" in c:
            low, high = float(c["low"]), float(c["high"])
        elif "relative_tolerance" in c:
            target, tol = float(c["target"]), float(c["relative_tolerance"])
            low, high = target * (1 - tol), target * (1 + tol)
        else:
            target, tol = float(c["target"]), float(c["absolute_tolerance"])
            low, high = target - tol, target + tol
        out.append({"id": c["id"], "what": c["what"], "metric": c["metric"],
                    "measured": value, "low": low, "high": high,
                    "passed": bool(low <= value <= high)})
    return out
