"""Monthly China-bound SME flows: the calibrated generator and the importer of a user's table.

A flow is one shipment (or an aggregate of a month's shipments) with the facts the rules
need: supplier firm, HQ and ship-from country, tool segment and ECCN, controlled US content,
whether it is made with US technology, the buyer, destination, date and value
(policy-model.md section 3.1). The generator splits China's import demand across segments
(world segment sizes) and origins (China's customs origin shares) by raking the segment x
origin revenue shares to both margins, then across firms, tool classes and buyers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from chokepoint.sandbox.world import ORIGINS, World

COLUMNS: dict[str, pa.DataType] = {
    "flow_id": pa.string(), "date": pa.string(), "supplier_firm": pa.string(),
    "hq_country": pa.string(), "ship_from_country": pa.string(), "segment": pa.string(),
    "eccn": pa.string(), "us_content_share": pa.float64(), "fdpr_tech_flag": pa.bool_(),
    "buyer": pa.string(), "buyer_listed": pa.bool_(), "buyer_advanced_fab": pa.bool_(),
    "destination": pa.string(), "value_usd": pa.float64(),
}


class FlowError(ValueError):
    """A flow table is invalid; the message names the row and the column."""


@dataclass(frozen=True)
class Flows:
    """A flow table, column by column (numpy arrays of equal length), sorted by month."""

    cols: dict[str, np.ndarray]
    start: date
    months: int

    def __len__(self) -> int:
        return len(self.cols["flow_id"])

    @property
    def month(self) -> np.ndarray:
        return self.cols["month"]

    def to_arrow(self) -> pa.Table:
        return pa.table({c: pa.array(self.cols[c].tolist(), type=t) for c, t in COLUMNS.items()})


def month_date(start: date, month: int, day: int = 1) -> date:
    y, m = divmod(start.month - 1 + month, 12)
    return date(start.year + y, m + 1, day)


def rake(seed: np.ndarray, rows: np.ndarray, cols: np.ndarray, iters: int = 500) -> np.ndarray:
    """Iterative proportional fitting: scale ``seed`` until its row and column sums match the
    target margins (both summing to 1). Zero cells stay zero."""
    m = seed / seed.sum()
    for _ in range(iters):
        m *= (rows / np.maximum(m.sum(axis=1), 1e-300))[:, None]
        m *= (cols / np.maximum(m.sum(axis=0), 1e-300))[None, :]
    out: np.ndarray = m / m.sum()
    return out


def demand_matrix(world: World) -> tuple[list[str], np.ndarray]:
    """China's import demand split by segment (rows) and origin (columns, ``ORIGINS``)."""
    segs = list(world.segments)
    seed = np.array([[world.segments[s].seed.get(o, 0.0) for o in ORIGINS] for s in segs])
    rows = np.array([world.segments[s].size_usd_bn for s in segs])
    cols = np.array([world.origins[o].share for o in ORIGINS])
    return segs, rake(seed, rows / rows.sum(), cols / cols.sum())


def _allocate(total: int, p: np.ndarray) -> np.ndarray:
    """Whole counts summing to ``total`` in proportion to ``p`` (largest remainder), at least
    one per positive cell when there are enough."""
    counts: np.ndarray = np.floor(p * total).astype(int)
    if total >= int((p > 0).sum()):
        counts = np.where((p > 0) & (counts == 0), 1, counts)
    short = total - counts.sum()
    if short > 0:
        order = np.argsort(-(p * total - np.floor(p * total)))
        counts[order[:short]] += 1
    while counts.sum() > total:
        counts[np.argmax(counts)] -= 1
    return counts


def generate(world: World, params: dict[str, float], *, flows: int = 100_000,
             months: int = 60, seed: int = 7) -> Flows:
    """A calibrated flow table: ``flows`` rows over ``months`` months from ``world.start``."""
    if flows < months:
        raise FlowError(f"need at least one flow per month ({flows} flows, {months} months)")
    rng = np.random.default_rng(seed)
    segs, p = demand_matrix(world)
    cells = [(s, o) for s in segs for o in ORIGINS]
    flat = p.ravel()
    per_month = _allocate(flows, np.full(months, 1.0 / months))
    base = params["demand_base_usd_bn"] * 1e9 / 12
    growth = params["demand_growth_per_year"]
    out: dict[str, list[Any]] = {c: [] for c in (*COLUMNS, "month")}
    n = 0
    for t in range(months):
        demand = base * (1 + growth) ** (t / 12)
        when = month_date(world.start, t, world.flow_day)
        day = when.isoformat()
        counts = _allocate(int(per_month[t]), flat)
        for (seg, origin), k, share in zip(cells, counts, flat, strict=True):
            if k == 0:
                continue
            firms = world.firms_of(seg, origin)
            names = list(firms)
            weights = np.array(list(firms.values()))
            picks = rng.choice(len(names), size=k, p=weights / weights.sum())
            advanced = rng.random(k) < params["advanced_share"]
            listed = rng.random(k) < params["listed_buyer_share"]
            adv_fab = rng.random(k) < params["advanced_fab_share"]
            buyers = rng.choice(len(world.listed_buyers), size=k)
            o = world.origins[origin]
            u = (1.0 if origin == "US" else params["us_content_offshore"] if origin == "SG"
                 else params["us_content_allied_tools"])
            for j in range(k):
                n += 1
                out["flow_id"].append(f"F{n:07d}")
                out["date"].append(day)
                out["month"].append(t)
                out["supplier_firm"].append(names[picks[j]])
                out["hq_country"].append(o.hq)
                out["ship_from_country"].append(o.ship_from)
                out["segment"].append(seg)
                out["eccn"].append(world.segments[seg].eccn_on(when) if advanced[j] else "EAR99")
                out["us_content_share"].append(u)
                out["fdpr_tech_flag"].append(origin != "US")
                if listed[j]:
                    out["buyer"].append(world.listed_buyers[buyers[j]])
                    out["buyer_advanced_fab"].append(True)
                else:
                    out["buyer"].append("Chinese fab (advanced node)" if adv_fab[j]
                                        else "Chinese fab (mature node)")
                    out["buyer_advanced_fab"].append(bool(adv_fab[j]))
                out["buyer_listed"].append(bool(listed[j]))
                out["destination"].append("CN")
                out["value_usd"].append(demand * share / k)
    return _columns(out, world.start, months)


def _columns(out: dict[str, list[Any]], start: date, months: int) -> Flows:
    cols = {c: np.asarray(v) for c, v in out.items()}
    order = np.argsort(cols["month"], kind="stable")
    return Flows(cols={c: v[order] for c, v in cols.items()}, start=start, months=months)


def write_flows(flows: Flows, path: Path) -> None:
    table = flows.to_arrow()
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)


def read_flows(path: Path, start: date, months: int | None = None) -> Flows:
    """A user's flow table (CSV or Parquet with the ``COLUMNS``); every invalid cell is an
    error naming its row (1 = first data row) and column."""
    try:
        table = (pq.read_table(path) if path.suffix == ".parquet"
                 else pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                     column_types={c: pa.string() for c in COLUMNS})))
    except (OSError, pa.ArrowInvalid) as exc:
        raise FlowError(f"{path}: cannot be read: {exc}") from exc
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise FlowError(f"{path}: missing column(s): {', '.join(missing)}")
    rows = table.select(list(COLUMNS)).to_pylist()
    out: dict[str, list[Any]] = {c: [] for c in (*COLUMNS, "month")}
    last = 0
    for i, raw in enumerate(rows, start=1):
        rec = {c: _cell(path, i, c, raw[c]) for c in COLUMNS}
        day = date.fromisoformat(rec["date"])
        month = (day.year - start.year) * 12 + day.month - start.month
        if month < 0:
            raise FlowError(f"{path}: row {i}: date: {day} is before the run's start {start}")
        last = max(last, month)
        for c in COLUMNS:
            out[c].append(rec[c])
        out["month"].append(month)
    if not rows:
        raise FlowError(f"{path}: no flows")
    span = months if months is not None else last + 1
    keep = [j for j, m in enumerate(out["month"]) if m < span]
    return _columns({c: [v[j] for j in keep] for c, v in out.items()}, start, span)


def _cell(path: Path, row: int, col: str, raw: Any) -> Any:
    where = f"{path}: row {row}: {col}"
    if raw is None or raw == "":
        raise FlowError(f"{where}: empty (every fact of a flow must be given)")
    kind = COLUMNS[col]
    try:
        if kind == pa.float64():
            value = float(raw)
            if value < 0 or (col == "us_content_share" and value > 1):
                raise ValueError("out of range")
            return value
        if kind == pa.bool_():
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in ("true", "false"):
                raise ValueError("not true/false")
            return text == "true"
        if col == "date":
            date.fromisoformat(str(raw))
        if col in ("hq_country", "ship_from_country", "destination") and (
                len(str(raw)) != 2 or not str(raw).isupper()):
            raise ValueError("not a two-letter country code")
        return str(raw)
    except ValueError as exc:
        raise FlowError(f"{where}: {raw!r} is invalid ({exc})") from exc
