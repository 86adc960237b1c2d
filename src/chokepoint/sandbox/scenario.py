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
      - rule: "JP:licence"          # repeal a provision from a date ...
        from: 2022-10-07
        in_force: false
      - rule: "734.9(k)"            # ... or adopt one earlier: from this date the version
        from: 2022-10-07            # in force on 'like' (default: its first version) applies
        in_force: true
        like: 2024-12-02
    add: []                         # new rule files (e.g. a rule a regime does not have)
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
    Provision,
    RuleFile,
)
from chokepoint.rules.predicate import ParamRef, ParamTrue, walk
from chokepoint.rules.ruleset import RuleSet


class ScenarioError(ValueError):
    """A scenario is invalid; the message names the change and the key."""


class _Change(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    parameter: str | None = None
    group: str | None = None
    entity: str | None = None
    rule: str | None = None
    from_: date = Field(alias="from")
    in_force: bool | None = None
    like: date | None = None
    value: Any = None
    members: list[str] | None = None
    footnotes: list[int] | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _Change:
        targets = [t for t in (self.parameter, self.group, self.entity, self.rule)
                   if t is not None]
        if len(targets) != 1:
            raise ValueError(
                "a change names exactly one of 'parameter', 'group', 'entity', 'rule'")
        if self.rule is not None and self.in_force is None:
            raise ValueError("a rule change needs 'in_force' (true: adopt, false: repeal)")
        if self.rule is not None and self.like is not None and not self.in_force:
            raise ValueError("'like' names the version to adopt (only with in_force: true)")
        if self.parameter is not None and (self.value is None) == (self.like is None):
            raise ValueError("a parameter change needs 'value' or 'like' (one of them)")
        if self.group is not None and self.members is None:
            raise ValueError("a group change needs 'members'")
        if self.entity is not None and self.footnotes is None:
            raise ValueError("an entity change needs 'footnotes'")
        return self


class RetaliationEvent(BaseModel):
    """A hypothetical counter-measure, a dated flag on the scenario's timeline."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date_: date = Field(alias="date")
    measure: str = Field(min_length=1)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    kind: Literal["scenario"] = "scenario"
    sources: list[str] = Field(default_factory=list)
    changes: list[_Change] = Field(default_factory=list)
    # new rule files (any kind, in the rule-file schema with their own citations), e.g. an
    # end-user or servicing rule a regime does not have
    add: list[dict[str, Any]] = Field(default_factory=list)
    parameters: dict[str, float | int | bool | str] = Field(default_factory=dict)
    # Chinese counter-measures as dated flags: 'history' (the dated events of the flow world),
    # 'none', or the scenario's own list of {date, measure}
    retaliation: Literal["history", "none"] | list[RetaliationEvent] = "none"

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


def _where(index: dict[str, str], key: str, what: str, at: str) -> str:
    """The rule file that defines ``key``, or an error naming the change and the key."""
    path = index.get(key)
    if path is None:
        raise ScenarioError(f"{at}: unknown {what} '{key}'")
    return path


def _redate(prov: Provision, original: Provision, ch: _Change, cit: Citation,
            at: str) -> Provision:
    """Repeal a provision from ``ch.from_`` or adopt (a version of) it from that day on.

    Built with ``model_copy`` because a scenario may leave a provision with no version at
    all (repealed before it took effect) or adopt a version before its citation's date -
    neither is a valid rule file, and neither is law: the citation says so."""
    kept = _split(list(prov.versions), ch.from_)
    if ch.in_force:
        # 'like' names a version of the rule as it was before this scenario changed it
        like = original.versions[0] if ch.like is None else original.version_on(ch.like)
        if like is None:
            raise ScenarioError(f"{at}: rule '{ch.rule}' has no version in force on {ch.like}")
        kept.append(like.model_copy(update={"from_": ch.from_, "ends": None,
                                            "citation": cit}))
    return prov.model_copy(update={"versions": kept})


def apply(scenario: Scenario, rules: RuleSet) -> RuleSet:
    """A new rule set with the scenario's changes; ``rules`` is left as it was."""
    files: dict[str, RuleFile] = dict(rules.files)
    where_param = {f.id: p for p, f in files.items() if isinstance(f, Parameter)}
    where_group = {name: p for p, f in files.items() if isinstance(f, CountryGroups)
                   for name in f.groups}
    where_entity = {e.id: p for p, f in files.items() if isinstance(f, EntityList)
                    for e in f.entries}
    where_rule = {f.id: p for p, f in files.items() if isinstance(f, Provision)}
    for i, ch in enumerate(scenario.changes):
        at = f"scenario {scenario.name}: changes[{i}]"
        cit = _citation(scenario, ch.from_, ch.note)
        if ch.parameter is not None:
            path = _where(where_param, ch.parameter, "parameter", at)
            param = files[path]
            assert isinstance(param, Parameter)
            value = ch.value
            if ch.like is not None:
                before = rules.files[path]
                assert isinstance(before, Parameter)
                source = before.version_on(ch.like)
                if source is None:
                    raise ScenarioError(f"{at}: parameter '{ch.parameter}' has no value on "
                                        f"{ch.like}")
                value = source.value
            versions = [*_split(list(param.versions), ch.from_),
                        ParameterVersion.model_validate(
                            {"from": ch.from_, "value": value, "citation": cit})]
            try:
                files[path] = Parameter.model_validate(
                    {**param.model_dump(by_alias=True), "versions": [
                        v.model_dump(by_alias=True) for v in versions]})
            except ValidationError as exc:
                raise ScenarioError(f"{at}: value: {exc.errors()[0]['msg']}") from exc
        elif ch.rule is not None:
            path = _where(where_rule, ch.rule, "rule", at)
            prov = files[path]
            assert isinstance(prov, Provision)
            original = rules.files[path]
            assert isinstance(original, Provision)
            files[path] = _redate(prov, original, ch, cit, at)
        elif ch.group is not None:
            path = _where(where_group, ch.group, "country group", at)
            gfile = files[path]
            assert isinstance(gfile, CountryGroups)
            group = gfile.groups[ch.group]
            new = GroupVersion.model_validate({"from": ch.from_, "members": ch.members,
                                               "citation": cit})
            groups = {**gfile.groups, ch.group: group.model_copy(
                update={"versions": [*_split(list(group.versions), ch.from_), new]})}
            files[path] = gfile.model_copy(update={"groups": groups})
        else:
            path = _where(where_entity, str(ch.entity), "Entity List entry", at)
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
    from chokepoint.rules.loader import RuleLoadError, parse_rule_file
    from chokepoint.rules.ruleset import RuleSetError

    for i, data in enumerate(scenario.add):
        where = f"scenario {scenario.name}: add[{i}]"
        try:
            added = parse_rule_file(data, where)
        except RuleLoadError as exc:
            raise ScenarioError(str(exc)) from exc
        files[f"scenario/{scenario.name}/{added.id}.yaml"] = added
    try:
        out = RuleSet(files=files, content_hash=f"{rules.content_hash}+{scenario.name}:"
                                                 f"{scenario.digest()}",
                      scenario=(*rules.scenario, scenario.name))
    except RuleSetError as exc:
        raise ScenarioError(f"scenario {scenario.name}: {exc}") from exc
    _check_adopted(scenario, out)
    return out


def _params_read(version: Any) -> set[str]:
    trees = [version.when] if version.when is not None else []
    trees += [cp.when for cp in version.review_policies]
    found: set[str] = set()
    for tree in trees:
        for node in walk(tree):
            if isinstance(node, ParamTrue):
                found.add(node.param)
            for attr in ("value", "eccns"):
                ref = getattr(node, attr, None)
                if isinstance(ref, ParamRef):
                    found.add(ref.param)
    return found


def _check_adopted(scenario: Scenario, rules: RuleSet) -> None:
    """A rule adopted earlier than the law adopted it must find every parameter it reads in
    force from that day: otherwise the scenario is incomplete, and says what to add."""
    for i, ch in enumerate(scenario.changes):
        if ch.rule is None or not ch.in_force:
            continue
        version = rules.provisions[ch.rule].version_on(ch.from_)
        assert version is not None
        for pid in sorted(_params_read(version)):
            if rules.parameters[pid].version_on(ch.from_) is None:
                raise ScenarioError(
                    f"scenario {scenario.name}: changes[{i}]: rule '{ch.rule}' adopted from "
                    f"{ch.from_} reads parameter '{pid}', which has no value then - adopt it "
                    f"too (a parameter change with 'like')")


SHIPPED = ("baseline", "multilateral", "unilateral-fdp", "unilateral-no-fdp", "hybrid-2024")


def _read(text: str, where: str) -> Scenario:
    from chokepoint.rules.loader import RuleLoadError, read_yaml

    try:
        data = read_yaml(text, where)
    except RuleLoadError as exc:
        raise ScenarioError(str(exc)) from exc
    return Scenario.parse(data, where)


def shipped(name: str) -> Scenario:
    """A scenario shipped with chokepoint, by name (or the sandbox's assumptions)."""
    from importlib import resources

    if name not in (*SHIPPED, "assumptions"):
        raise ScenarioError(f"unknown scenario '{name}' (shipped: {', '.join(SHIPPED)})")
    text = resources.files("chokepoint.sandbox").joinpath(
        f"scenarios/{name}.yaml").read_text(encoding="utf-8")
    return _read(text, f"{name}.yaml")


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario's name, or the path of a scenario YAML file."""
    from pathlib import Path

    if name_or_path in SHIPPED:
        return shipped(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ScenarioError(f"'{name_or_path}' is neither a shipped scenario "
                            f"({', '.join(SHIPPED)}) nor a scenario file")
    return _read(path.read_text(encoding="utf-8"), str(path))
