"""The sandbox's outputs: ``summary.json`` (keyed by scenario name), ``run.json`` (what was run),
``monthly.csv`` (every monthly series, for a spreadsheet), PNG plots comparing the scenarios
over time, and ``report.html`` with the tables, plots,
parameters and their status and sources. Files are written to a temporary name and renamed,
so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import base64
import csv
import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402

from chokepoint import __version__  # noqa: E402
from chokepoint.sandbox.backtest import backtest  # noqa: E402
from chokepoint.sandbox.params import default_parameters  # noqa: E402
from chokepoint.sandbox.run import HEADLINE, Plan, Result  # noqa: E402

COLOURS = {"baseline": "#7f7f7f", "multilateral": "#1f77b4", "unilateral-fdp": "#d62728",
           "unilateral-no-fdp": "#ff7f0e", "hybrid-2024": "#2ca02c"}


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def summary(result: Result, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for run, (scenario, rules) in zip(result.runs, plan.scenarios, strict=True):
        entry = run.summary()
        entry["rules_version"] = rules.content_hash
        if scenario.name in result.bands:
            entry["bands"] = result.bands[scenario.name]
        if scenario.name == "hybrid-2024":
            entry["backtests"] = backtest(run)
        out[scenario.name] = entry
    return out


def _colour(name: str, i: int) -> str:
    return COLOURS.get(name, f"C{i % 10}")


def _plots(result: Result, out: Path) -> list[dict[str, str]]:
    runs = result.runs
    months = runs[0].months
    x = list(range(len(months)))
    ticks = [i for i, m in enumerate(months) if m.endswith("-01")]
    made: list[dict[str, str]] = []

    def save(fig: Any, name: str, caption: str) -> None:
        fig.tight_layout()
        _atomic(out / name, lambda p: fig.savefig(p, dpi=110, format="png"))
        plt.close(fig)
        made.append({"file": name, "caption": caption})

    def monthly(key: str, title: str, ylabel: str, name: str, cumulative: bool = False,
                scale: float = 1e9) -> None:
        fig, ax = plt.subplots(figsize=(8, 4))
        for i, r in enumerate(runs):
            ys = r.series[key]
            if cumulative:
                acc, ys2 = 0.0, []
                for y in ys:
                    acc += y
                    ys2.append(acc)
                ys = ys2
            ax.plot(x, [y / scale for y in ys], label=r.scenario, color=_colour(r.scenario, i),
                    linewidth=2)
            b = result.bands.get(r.scenario)
            if key == "leverage" and b:
                ax.fill_between(x, b["leverage"]["p5"], b["leverage"]["p95"],
                                color=_colour(r.scenario, i), alpha=0.15)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xticks(ticks, [months[i][:4] for i in ticks])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, name, title)

    monthly("leverage", "Leverage index Lev(t) (band: 5th-95th percentile of the sweep)",
            "index", "leverage.png", scale=1.0)
    monthly("blocked_usd", "Blocked value per month (after enforcement)", "USD bn",
            "blocked.png")
    monthly("lpf_gap_usd", "Level-playing-field gap per month (open to foreign suppliers, "
            "closed to a US one)", "USD bn", "lpf_gap.png")
    monthly("stockpile_usd", "Cumulative stockpile (excess imports before controls bite)",
            "USD bn", "stockpile.png", cumulative=True)
    monthly("domestic_share", "Chinese domestic share of equipment purchases", "share",
            "domestic_share.png", scale=1.0)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    keys = ("caught_value_usd", "blocked_value_usd", "lpf_gap_usd", "stockpile_usd",
            "diverted_domestic_usd", "diverted_foreign_usd", "unmet_usd")
    width = 0.8 / len(runs)
    for i, r in enumerate(runs):
        ax.bar([k + i * width for k in range(len(keys))], [r.totals[k] / 1e9 for k in keys],
               width, label=r.scenario, color=_colour(r.scenario, i))
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))],
                  [k.replace("_usd", "").replace("_value", "").replace("_", " ") for k in keys],
                  fontsize=8)
    ax.set_ylabel("USD bn over the run")
    ax.set_title("Scenarios compared: totals over the run")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "totals.png", "Totals over the run, by scenario")
    claimed = [(r, f, d) for r in runs for f, d in r.firms.items() if d["claimed_month"]]
    if claimed:
        fig, ax = plt.subplots(figsize=(8, 4))
        for i, (r, f, d) in enumerate(claimed[:12]):
            ax.plot(x, d["us_content"], label=f"{f} ({r.scenario})", color=f"C{i % 10}")
        ax.set_title("US content of allied firms' tools once claimed unilaterally")
        ax.set_ylabel("US content share")
        ax.set_xticks(ticks, [months[i][:4] for i in ticks])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        save(fig, "us_content.png", "De-Americanisation of allied tools")
    return made


def _monthly_csv(result: Result, path: Path) -> None:
    """Every scenario's monthly series in one long table (scenario, month, series...)."""
    keys = sorted(result.runs[0].series)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["scenario", "month", *keys])
        for run in result.runs:
            for t, month in enumerate(run.months):
                out.writerow([run.scenario, month, *(run.series[k][t] for k in keys)])


def _environment() -> Environment:
    env = Environment(autoescape=select_autoescape(default=True), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["bn"] = lambda v: f"{v / 1e9:,.1f}"
    env.filters["pct"] = lambda v: f"{100 * v:.1f} %"
    return env


def write(result: Result, plan: Plan, out: Path, *, inline: bool = False) -> dict[str, Any]:
    """Write every output into ``out`` and return the summary. With ``inline`` the report
    carries its plots as data URIs (one self-contained file, as the service serves it)."""
    out.mkdir(parents=True, exist_ok=True)
    data = summary(result, plan)
    meta = {"chokepoint": __version__,
            "generated": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "scenarios": [s.name for s, _ in plan.scenarios],
            "flows": {"rows": len(result.flows), "months": result.flows.months,
                      "start": result.flows.start.isoformat(),
                      "source": str(plan.flows_file) if plan.flows_file else
                      f"generated (seed {plan.seed})"},
            "engine_evaluations": result.evaluations}
    _atomic(out / "summary.json",
            lambda p: p.write_text(json.dumps(data, indent=1), encoding="utf-8"))
    _atomic(out / "run.json", lambda p: p.write_text(json.dumps(meta, indent=1),
                                                     encoding="utf-8"))
    _atomic(out / "monthly.csv", lambda p: _monthly_csv(result, p))
    plots = _plots(result, out)
    table = default_parameters()
    template = resources.files("chokepoint.sandbox").joinpath(
        "templates/report.html.j2").read_text(encoding="utf-8")
    if inline:
        for plot in plots:
            data_uri = base64.b64encode((out / plot["file"]).read_bytes()).decode()
            plot["file"] = f"data:image/png;base64,{data_uri}"
    html = _environment().from_string(template).render(
        meta=meta, runs=result.runs, data=data, plots=plots, headline=HEADLINE,
        parameters=table.parameters, parameter_source=table.source,
        scenarios=[s for s, _ in plan.scenarios], bands=result.bands,
        world=plan.world)
    _atomic(out / "report.html", lambda p: p.write_text(html, encoding="utf-8"))
    return data
