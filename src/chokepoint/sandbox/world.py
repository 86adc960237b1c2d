"""The sandbox's trade-flow world, read from ``sandbox/data/flows.yaml``: tool segments with
their weights and Chinese substitution figures, China's import origins, the suppliers of each
segment and origin, national listing dates and the listed buyers - each figure named by its
row in ``shared/data/policy/calibration.csv``.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chokepoint.sandbox.datafile import bundled, parse

ORIGINS = ("US", "JP", "NL", "SG", "KR", "OTHER")


class WorldError(ValueError):
    """The flow world file is invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Segment(_Strict):
    size_usd_bn: float = Field(gt=0)
    metric: str
    seed: dict[str, float]
    seed_metric: str
    x0: float = Field(ge=0, lt=1)
    rate: float = Field(ge=0)
    cap: float | None = Field(default=None, gt=0, le=1)
    eccns: dict[date, str] = Field(min_length=1)
    listed_by: list[Literal["JP", "NL"]]

    @model_validator(mode="after")
    def _origins(self) -> Segment:
        unknown = set(self.seed) - set(ORIGINS)
        if unknown:
            raise ValueError(f"unknown origin(s) in seed: {sorted(unknown)}")
        return self

    def eccn_on(self, on: date) -> str:
        """The advanced tool's ECCN on a day (its first ECCN before the first date)."""
        days = sorted(self.eccns)
        found = self.eccns[days[0]]
        for d in days:
            if d <= on:
                found = self.eccns[d]
        return found


class Origin(_Strict):
    share: float = Field(gt=0)
    metric: str
    hq: str = Field(pattern=r"^[A-Z]{2}$")
    ship_from: str = Field(pattern=r"^[A-Z]{2}$")
    note: str | None = None


class Dated(_Strict):
    from_: date = Field(alias="from")
    metric: str


class Announced(_Strict):
    date_: date = Field(alias="date")
    metric: str


class Event(_Strict):
    date_: date = Field(alias="date")
    measure: str
    metric: str | None = None


class Lag(_Strict):
    low: float = Field(ge=0)
    high: float = Field(ge=0)
    source: str


class FlowFacts(_Strict):
    us_technology: list[str] = Field(min_length=1)
    us_parts: list[dict[str, str]] = Field(min_length=1)
    end_uses: list[str] = Field(min_length=1)


class World(_Strict):
    schema_version: Literal[1]
    reviewed: str
    source: str
    start: date
    flow_day: int = Field(ge=1, le=28)
    segments: dict[str, Segment]
    origins: dict[str, Origin]
    firms: dict[str, dict[str, dict[str, float]]]
    listing_dates: dict[Literal["JP", "NL"], Dated]
    announced: dict[Literal["JP", "NL"], Announced]
    listed_buyers: list[str] = Field(min_length=1)
    retaliation: list[Event] = Field(default_factory=list)
    retaliation_lag_days: Lag
    flow_facts: FlowFacts

    @model_validator(mode="after")
    def _consistent(self) -> World:
        if set(self.origins) != set(ORIGINS):
            raise ValueError(f"origins must be exactly {list(ORIGINS)}")
        for seg in self.firms:
            if seg not in self.segments:
                raise ValueError(f"firms: unknown segment '{seg}'")
        return self

    def firms_of(self, segment: str, origin: str) -> dict[str, float]:
        """Suppliers of a segment from an origin; US firms' offshore plants (SG) are the US
        firms; an origin without named firms has a generic maker."""
        table = self.firms.get(segment, {})
        named = table.get("US" if origin == "SG" else origin)
        if named:
            return named
        generic = {"US": "US toolmakers", "SG": "US toolmakers (offshore)",
                   "JP": "Japanese toolmakers", "NL": "Dutch toolmakers",
                   "KR": "Korean toolmakers", "OTHER": "Taiwanese toolmakers"}
        return {generic[origin]: 1.0}


def parse_world(text: str, name: str = "flows.yaml") -> World:
    return parse(World, text, name, WorldError)


@lru_cache(maxsize=1)
def default_world() -> World:
    return parse_world(bundled("flows.yaml"))
