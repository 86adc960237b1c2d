"""Properties of the sandbox dynamics and its parameter table (policy-model.md 3.4, 3.6, 3.8)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chokepoint.sandbox import dynamics as dyn
from chokepoint.sandbox.params import ParameterError, default_parameters, parse_parameters, values

share = st.floats(0.0, 1.0)
money = st.floats(0.0, 1e6)


def test_time_to_exit_formula_check() -> None:
    # the model document's check: u0 0.20, floor 0, threshold 0.10, half-life 5 years -> 5 years
    assert dyn.months_to_exit(0.20, 0.0, 0.10, 60) == pytest.approx(60)
    # and the path reaches the threshold exactly then
    assert dyn.us_content(0.20, 0.0, 60, 60) == pytest.approx(0.10)
    assert dyn.months_to_exit(0.05, 0.0, 0.10, 60) == 0.0
    assert dyn.months_to_exit(0.20, 0.10, 0.10, 60) is None  # the floor never clears


@given(u0=share, floor=share, half=st.floats(1, 120), t=st.floats(0, 240), dt=st.floats(0, 60))
def test_us_content_never_rises_and_stays_above_its_floor(u0: float, floor: float, half: float,
                                                         t: float, dt: float) -> None:
    floor = min(floor, u0)
    now, later = dyn.us_content(u0, floor, half, t), dyn.us_content(u0, floor, half, t + dt)
    assert later <= now + 1e-12
    assert floor - 1e-12 <= later <= u0 + 1e-12


@given(x=share, r=st.floats(0, 2), ceiling=st.floats(0.01, 1), kappa=st.floats(0, 2),
       closed=share)
def test_domestic_share_never_falls_and_stays_capped(x: float, r: float, ceiling: float,
                                                    kappa: float, closed: float) -> None:
    x = min(x, ceiling)
    nxt = dyn.substitution_step(x, r, ceiling, kappa, closed)
    assert x <= nxt <= ceiling


@given(x=st.floats(0.01, 0.5), closed=st.floats(0, 1))
def test_closure_speeds_substitution_only_when_kappa_is_positive(x: float,
                                                                 closed: float) -> None:
    allen = dyn.substitution_step(x, 0.5, 0.8, 0.0, closed)
    assert allen == dyn.substitution_step(x, 0.5, 0.8, 0.0, 0.0)
    assert dyn.substitution_step(x, 0.5, 0.8, 0.5, closed) >= allen


@given(blocked=money, dom=money, spare=st.dictionaries(st.sampled_from("ABCD"), money),
       shares=st.dictionaries(st.sampled_from("ABCD"), share))
def test_conservation_of_blocked_demand(blocked: float, dom: float, spare: dict[str, float],
                                        shares: dict[str, float]) -> None:
    d = dyn.divert(blocked, dom, spare, shares)
    assert d.domestic + sum(d.foreign.values()) + d.unmet == pytest.approx(blocked, abs=1e-6)
    assert d.domestic <= dom + 1e-9
    assert all(d.foreign[k] <= spare[k] + 1e-9 for k in spare)
    assert min(d.domestic, d.unmet, *d.foreign.values(), 0.0) >= -1e-9


def test_diversion_order_domestic_then_foreign_by_share_then_unmet() -> None:
    d = dyn.divert(100, 30, {"KR": 100, "TW": 10}, {"KR": 0.5, "TW": 0.5})
    assert d.domestic == 30
    assert d.foreign == {"KR": pytest.approx(60), "TW": pytest.approx(10)}
    assert d.unmet == pytest.approx(0)
    assert dyn.divert(100, 0, {}, {}).unmet == 100


@given(demand=st.lists(money, max_size=24), m=st.floats(1, 4), dm=st.floats(0, 2),
       extra=money)
def test_stockpile_grows_with_the_multiplier_and_the_window(demand: list[float], m: float,
                                                           dm: float, extra: float) -> None:
    k = dyn.stockpile(demand, m)
    assert k >= 0
    assert dyn.stockpile(demand, m + dm) >= k - 1e-6  # larger multiplier
    assert dyn.stockpile([*demand, extra], m) >= k - 1e-6  # longer lag, longer window
    assert dyn.stockpile(demand, 1.0) == 0  # no pull-forward, no stockpile
    assert dyn.stockpile([], m) == 0  # zero lag, no window


def test_parameter_table_has_status_range_and_source() -> None:
    table = default_parameters()
    assert len(table.parameters) >= 15
    for name, p in table.parameters.items():
        assert p.range[0] <= p.default <= p.range[1], name
        if p.status == "M":
            assert p.source_metric, name
    assert values()["coordination_lag_nl_months"] == 10.8
    assert values({"closure_acceleration": 0.0})["closure_acceleration"] == 0.0
    with pytest.raises(ParameterError, match="unknown model parameter 'lag'"):
        values({"lag": 3})
    with pytest.raises(ParameterError, match="outside its range"):
        values({"grandfathering": 1.5})


def test_parameter_file_errors_name_the_parameter() -> None:
    bad = """schema_version: 1
reviewed: '2026-11-26'
source: test
parameters:
  lag:
    meaning: a lag
    default: 30
    range: [3, 18]
    status: M
    source_metric: policy.coordination_lag.japan
"""
    with pytest.raises(ParameterError, match=r"parameters\.lag: .*outside its range"):
        parse_parameters(bad)
    with pytest.raises(ParameterError, match=r"parameters\.lag: .*source_metric"):
        parse_parameters(bad.replace("default: 30", "default: 5").replace(
            "    source_metric: policy.coordination_lag.japan\n", ""))
    assert math.isfinite(dyn.decay_rate(60))
