"""The sandbox's model parameters: value, sweep range, status (measured/derived/assumed), source.

Loaded strictly from ``sandbox/data/parameters.yaml``: a default outside its range, an
unknown status or key, or a measured figure without its calibration metric is a load error
that names the parameter.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from chokepoint.sandbox.datafile import bundled, parse


class ParameterError(ValueError):
    """The parameter file or an override is invalid; the message names the parameter."""


class ModelParameter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    meaning: str
    default: float
    range: tuple[float, float]
    status: Literal["M", "D", "A"]
    source_metric: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelParameter:
        low, high = self.range
        if low > high:
            raise ValueError(f"range {self.range} is reversed")
        if not low <= self.default <= high:
            raise ValueError(f"default {self.default} lies outside its range {self.range}")
        if self.status == "M" and not self.source_metric:
            raise ValueError("a measured parameter needs its source_metric")
        if not self.source_metric and not self.note and self.status != "A":
            raise ValueError("a derived parameter needs its source_metric or a note")
        return self


class ParameterFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    reviewed: str
    source: str
    parameters: dict[str, ModelParameter]


def parse_parameters(text: str, name: str = "parameters.yaml") -> ParameterFile:
    return parse(ParameterFile, text, name, ParameterError)


@lru_cache(maxsize=1)
def default_parameters() -> ParameterFile:
    return parse_parameters(bundled("parameters.yaml"))


def values(overrides: dict[str, float] | None = None,
           table: ParameterFile | None = None) -> dict[str, float]:
    """Every parameter's value: its default, or the override (which must be a known
    parameter, within its sweep range)."""
    table = table or default_parameters()
    out = {k: p.default for k, p in table.parameters.items()}
    for key, value in (overrides or {}).items():
        if key not in table.parameters:
            raise ParameterError(f"unknown model parameter '{key}'")
        low, high = table.parameters[key].range
        if not low <= value <= high:
            raise ParameterError(f"{key} = {value} lies outside its range [{low}, {high}]")
        out[key] = float(value)
    return out
