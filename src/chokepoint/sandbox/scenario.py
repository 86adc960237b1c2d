"""Policy scenarios as overlays on the real rule files (the OpenFisca "reform" idea).

A scenario names rule values to change from given dates - a parameter (e.g. switch off the
Supp. No. 4 to part 742 exclusion), a country group's members (e.g. allies adopting
equivalent lists), Entity List footnotes - and is validated completely before anything is
applied: an unknown parameter, group or entry is an error that names it. Applying it builds
a new rule set (its own snapshot cache and content hash); the baseline is never touched.
Scenarios stack: each applies on top of the rule set it is given.

    name: unilateral-fdp
    title: The US reaches allied tools unilaterally
    changes:
      - parameter: us.ear.742.supp4.exclusion_in_force
        from: 2025-01-01
        value: false
      - group: Supp4:742
        from: 2026-01-01
        members: [JP, NL, GB, AU, KR]
      - entity: smic-shenzhen
        from: 2025-06-01
        footnotes: [5]
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chokepoint.rules.model import (
    Citation,
    CountryGroups,
    EntityList,
    EntryVersion,
    GroupVersion,
    Parameter,
    ParameterVersion,
    RuleFile,
)
from chokepoint.rules.ruleset import RuleSet


class ScenarioError(ValueError):
    """A scenario is invalid; the message names the change and the key."""


class _Change(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    parameter: str | None = None
    group: str | None = None
    entity: str | None = None
    from_: date = Field(alias="from")
    value: Any = None
    members: list[str] | None = None
    footnotes: list[int] | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _Change:
        targets = [t for t in (self.parameter, self.group, self.entity) if t is not None]
        if len(targets) != 1:
            raise ValueError("a change names exactly one of 'parameter', 'group', 'entity'")
        if self.parameter is not None and self.value is None:
            raise ValueError("a parameter change needs 'value'")
        if self.group is not None and self.members is None:
            raise ValueError("a group change needs 'members'")
        if self.entity is not None and self.footnotes is None:
            raise ValueError("an entity change needs 'footnotes'")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    kind: Literal["scenario"] = "scenario"
    sources: list[str] = Field(default_factory=list)
    changes: list[_Change] = Field(default_factory=list)
    parameters: dict[str, float | int | bool | str] = Field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any, where: str = "scenario") -> Scenario:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ScenarioError(f"{where}: {loc}: {err['msg']}") from exc

    def digest(self) -> str:
        text = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _citation(scenario: Scenario, on: date, note: str | None) -> Citation:
    return Citation(ref=f"scenario '{scenario.name}' (not law)", effective=on,
                    evidence="unverified", source=scenario.title,
                    note=note or "A policy scenario's hypothetical rule value.")


def _split(versions: list[Any], on: date) -> list[Any]:
    """Versions before ``on``; the one running into ``on`` is ended there."""
    kept = []
    for v in versions:
        if v.from_ >= on:
            break
        if v.ends is None or v.ends > on:
            v = v.model_copy(update={"ends": on})
        kept.append(v)
    return kept


def apply(scenario: Scenario, rules: RuleSet) -> RuleSet:
    """A new rule set with the scenario's changes; ``rules`` is left as it was."""
    files: dict[str, RuleFile] = dict(rules.files)
    where_param = {f.id: p for p, f in files.items() if isinstance(f, Parameter)}
    where_group = {name: p for p, f in files.items() if isinstance(f, CountryGroups)
                   for name in f.groups}
    where_entity = {e.id: p for p, f in files.items() if isinstance(f, EntityList)
                    for e in f.entries}
    for i, ch in enumerate(scenario.changes):
        at = f"scenario {scenario.name}: changes[{i}]"
        cit = _citation(scenario, ch.from_, ch.note)
        if ch.parameter is not None:
            path = where_param.get(ch.parameter)
            if path is None:
                raise ScenarioError(f"{at}: unknown parameter '{ch.parameter}'")
            param = files[path]
            assert isinstance(param, Parameter)
            versions = [*_split(list(param.versions), ch.from_),
                        ParameterVersion.model_validate(
                            {"from": ch.from_, "value": ch.value, "citation": cit})]
            try:
                files[path] = Parameter.model_validate(
                    {**param.model_dump(by_alias=True), "versions": [
                        v.model_dump(by_alias=True) for v in versions]})
            except ValidationError as exc:
                raise ScenarioError(f"{at}: value: {exc.errors()[0]['msg']}") from exc
        elif ch.group is not None:
            path = where_group.get(ch.group)
            if path is None:
                raise ScenarioError(f"{at}: unknown country group '{ch.group}'")
            gfile = files[path]
            assert isinstance(gfile, CountryGroups)
            group = gfile.groups[ch.group]
            new = GroupVersion.model_validate({"from": ch.from_, "members": ch.members,
                                               "citation": cit})
            groups = {**gfile.groups, ch.group: group.model_copy(
                update={"versions": [*_split(list(group.versions), ch.from_), new]})}
            files[path] = gfile.model_copy(update={"groups": groups})
        else:
            path = where_entity.get(str(ch.entity))
            if path is None:
                raise ScenarioError(f"{at}: unknown Entity List entry '{ch.entity}'")
            efile = files[path]
            assert isinstance(efile, EntityList)
            entries = []
            for e in efile.entries:
                if e.id == ch.entity:
                    base = e.version_on(ch.from_) or e.versions[-1]
                    new_v = EntryVersion.model_validate(
                        {**base.model_dump(by_alias=True), "from": ch.from_, "ends": None,
                         "footnotes": ch.footnotes, "citation": cit.model_dump()})
                    e = e.model_copy(update={"versions": [*_split(list(e.versions), ch.from_),
                                                          new_v]})
                entries.append(e)
            files[path] = efile.model_copy(update={"entries": entries})
    return RuleSet(files=files, content_hash=f"{rules.content_hash}+{scenario.name}:"
                                             f"{scenario.digest()}",
                   scenario=(*rules.scenario, scenario.name))
