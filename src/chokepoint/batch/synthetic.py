"""Synthetic order books in the flat column layout (docs/batch.md), for benchmarks and tests.

Run: .venv/bin/python bench/gen_orders.py OUT.{parquet,csv} --rows 1000000 [--seed 7]

The mix: catalogue chips and tools (by model, so the classifier fills in their figures),
unlisted parts and EAR99 goods; makers in the US, NL, JP, KR, TW; shipments to China and
elsewhere; buyers on the Entity List (names from the bundled snapshot), known unlisted, or
not yet screened; dates 2023-2026; and a share of unknown facts (empty cells), so that a
realistic part of the book comes out "undetermined". Written in chunks, so a 10^7-row
book needs no more memory than a 10^5-row one.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from chokepoint.batch.flat import COLUMNS
from chokepoint.rules.loader import DATA_DIR as DATA

CHUNK = 100_000
START, DAYS = date(2023, 1, 1), (date(2026, 10, 31) - date(2023, 1, 1)).days


def _catalogue(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((DATA / "catalogue" / name).read_text())["entries"])


def _listed_names() -> list[str]:
    doc = yaml.safe_load((DATA / "us/ear/744/supp4/semiconductor.yaml").read_text())
    return [e["name"] for e in doc["entries"]]


CHIPS = _catalogue("chips.yaml")
TOOLS = _catalogue("tools.yaml")
LISTED = _listed_names()
BUYERS = [f"Buyer {i} Electronics Co., Ltd." for i in range(400)]
DESTINATIONS = ["CN"] * 6 + ["HK", "SG", "MY", "KR", "DE", "IN", "VN"]
MAKERS = {"US": "Applied Materials", "NL": "ASML", "JP": "Tokyo Electron",
          "KR": "SEMES", "TW": "TSMC"}


def _maybe(rng: random.Random, value: Any, unknown: float) -> Any:
    """The value, or an empty cell (unknown) with probability ``unknown``."""
    return None if rng.random() < unknown else value


def row(rng: random.Random, n: int) -> dict[str, Any]:
    r: dict[str, Any] = dict.fromkeys(COLUMNS)
    r["id"] = f"SO-{n:08d}"
    r["date"] = (START + timedelta(days=rng.randrange(DAYS))).isoformat()
    r["activity"] = "export" if rng.random() < 0.9 else "reexport"
    r["to_country"] = rng.choice(DESTINATIONS)
    pick = rng.random()
    if pick < 0.35:
        chip = rng.choice(CHIPS)
        r.update(item_kind="chip", item_model=chip["model"], item_made_in="TW",
                 item_made_by=chip.get("made_by"), item_description=chip.get("description"))
        origin = "US"
    elif pick < 0.70:
        tool = rng.choice(TOOLS)
        r.update(item_kind="sme", item_model=tool["model"], item_made_in=tool["made_in"],
                 item_made_by=tool.get("made_by"), item_description=tool.get("description"))
        origin = tool["made_in"]
        r["us_direct_product_of"] = _maybe(rng, rng.choice(["none", "3E001", "3D001"]), 0.15)
        r["us_plant_direct_product_of"] = _maybe(rng, "none", 0.1)
        r["national_NL"] = _maybe(rng, "-", 0.5) if origin == "NL" else None
        r["national_JP"] = _maybe(rng, "-", 0.5) if origin == "JP" else None
    elif pick < 0.85:
        origin = rng.choice(list(MAKERS))
        r.update(item_kind="sme_part_or_component", item_made_in=origin,
                 item_made_by=MAKERS[origin], item_description="chamber part",
                 item_eccn=_maybe(rng, rng.choice(["3B993", "EAR99", "3B001.p.2"]), 0.2))
    else:
        origin = rng.choice(list(MAKERS))
        r.update(item_kind="other", item_made_in=origin, item_made_by=MAKERS[origin],
                 item_description="general-purpose goods", item_eccn="EAR99")
    r["from_country"] = origin if rng.random() < 0.8 else rng.choice(["SG", "MY", "TW"])
    r["exporter_name"] = MAKERS.get(origin, "Trading Co.")
    r["exporter_country"] = r["from_country"]
    r["exporter_headquartered_in"] = _maybe(rng, origin, 0.1)
    r["exporter_is_us_person"] = origin == "US"
    r["us_controlled_share"] = _maybe(rng, rng.choice([0.0, 0.05, 0.2, 0.3]), 0.15)
    r["us_incorporated_items"] = _maybe(rng, "none", 0.2)
    r["us_contains_ic_made_by_plant_direct_product_of"] = _maybe(rng, "none", 0.2)
    r["end_uses"] = _maybe(rng, rng.choice(["none"] * 4 + [
        "advanced_node_ic_development_or_production", "ai_model_training"]), 0.1)
    r["us_person_support"] = _maybe(rng, False, 0.05)
    who = rng.random()
    r["party_role"] = "ultimate_consignee"
    r["party_country"] = r["to_country"]
    if who < 0.1:
        r["party_name"] = rng.choice(LISTED)
        r["party_designations"] = None  # looked up in the snapshot by name
    elif who < 0.8:
        r["party_name"] = rng.choice(BUYERS)
        r["party_designations"] = "none"
    else:
        r["party_name"] = rng.choice(BUYERS)  # not yet screened
    return r


def write_book(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    columns = [*COLUMNS, "party_name", "party_role", "party_country", "party_designations"]
    schema = pa.schema([(c, pa.bool_() if c in ("exporter_is_us_person", "us_person_support")
                         else pa.float64() if c == "us_controlled_share" else pa.string())
                        for c in columns])
    writer: Any = None
    try:
        for start in range(0, rows, CHUNK):
            chunk = [row(rng, n) for n in range(start + 1, min(rows, start + CHUNK) + 1)]
            table = pa.Table.from_pylist(chunk, schema=schema)
            if writer is None:
                writer = (pq.ParquetWriter(path, schema) if path.suffix == ".parquet"
                          else pacsv.CSVWriter(path, schema))
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
