"""The sandbox's bundled data files: read from the package and validated by a pydantic
model, an invalid file being an error that names the file and the key."""

from __future__ import annotations

from importlib import resources
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from chokepoint.rules.loader import read_yaml

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], text: str, name: str, error: type[ValueError]) -> M:
    try:
        return model.model_validate(read_yaml(text, name))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise error(f"{name}: {where}: {first['msg']}") from exc


def bundled(name: str) -> str:
    """The text of ``sandbox/data/NAME``."""
    return resources.files("chokepoint.sandbox").joinpath(f"data/{name}").read_text(
        encoding="utf-8")
