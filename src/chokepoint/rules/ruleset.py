"""A loaded, cross-checked set of rule files, and its dated snapshots.

No file access here: :mod:`chokepoint.rules.loader` reads the files and builds a
:class:`RuleSet`; the engine only reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel

from chokepoint.rules.model import (
    Catalogue,
    CatalogueEntry,
    Citation,
    CountryAliases,
    CountryGroup,
    CountryGroups,
    Derivation,
    EntityEntry,
    EntityList,
    EntryVersion,
    GroupVersion,
    Parameter,
    Provision,
    Questions,
    Regime,
    RuleFile,
    eccn_set_value,
    in_force,
)
from chokepoint.rules.names import normalise_name
from chokepoint.rules.predicate import Assertion, InGroup, Ref, params_of, walk


def natural_key(rule_id: str) -> list[Any]:
    """Sort key that orders paragraph ids as the regulation does (734.4(a)(9) < (a)(10))."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t)
            for t in re.findall(r"\d+|[A-Za-z]+", rule_id)]


class RuleSetError(ValueError):
    """The rule files are individually valid but inconsistent with each other."""


@dataclass(frozen=True)
class FileInfo:
    path: str
    id: str
    kind: str
    last_reviewed: date
    review_horizon_days: int

    def stale_on(self, on: date) -> bool:
        return on > self.last_reviewed + timedelta(days=self.review_horizon_days)


@dataclass
class RuleSet:
    """All rule files of a rule tree, indexed, with a content hash (``rules_version``)."""

    files: dict[str, RuleFile]
    content_hash: str
    scenario: tuple[str, ...] = ()
    provisions: dict[str, Provision] = field(init=False)
    parameters: dict[str, Parameter] = field(init=False)
    groups: dict[str, CountryGroup] = field(init=False)
    aliases: dict[str, CountryAliases] = field(init=False)
    regimes: dict[str, Regime] = field(init=False)
    questions: dict[str, str] = field(init=False)
    entities: dict[str, list[EntityEntry]] = field(init=False)
    entity_rule: dict[str, str] = field(init=False)
    derivations: list[Derivation] = field(init=False)
    catalogue: dict[str, CatalogueEntry] = field(init=False)
    file_info: list[FileInfo] = field(init=False)
    assertions: frozenset[str] = field(init=False)
    """Every statement a user can assert that some rule reads: input naming another is
    refused, as a misspelt assertion would otherwise count as not made."""
    _snapshots: dict[date, Snapshot] = field(init=False, repr=False)
    _exclusions: dict[str, list[Provision]] | None = field(init=False, repr=False)
    _by_role: dict[tuple[str, str], list[Provision]] = field(init=False, repr=False)
    _memo: dict[str, dict[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.provisions, self.parameters, self.groups = {}, {}, {}
        self.regimes, self.questions, self.file_info = {}, {}, []
        self.entities, self.entity_rule, self.derivations = {}, {}, []
        self.catalogue = {}
        self.aliases = {}
        self._snapshots = {}
        self._exclusions = None
        self._by_role = {}
        self._memo = {}
        seen: dict[str, str] = {}
        for path, f in sorted(self.files.items()):
            key = f"{f.kind}:{f.id}"
            if key in seen:
                raise RuleSetError(f"{path}: id '{f.id}' is also defined in {seen[key]}")
            seen[key] = path
            self.file_info.append(FileInfo(path, f.id, f.kind, f.last_reviewed,
                                           f.review_horizon_days))
            if isinstance(f, Provision):
                self.provisions[f.id] = f
            elif isinstance(f, Parameter):
                self.parameters[f.id] = f
            elif isinstance(f, CountryGroups):
                for name, g in f.groups.items():
                    if name in self.groups:
                        raise RuleSetError(f"{path}: country group '{name}' defined twice")
                    self.groups[name] = g
            elif isinstance(f, CountryAliases):
                if f.regime in self.aliases:
                    raise RuleSetError(f"{path}: a second country_aliases file for {f.regime}")
                self.aliases[f.regime] = f
            elif isinstance(f, Regime):
                self.regimes[f.code] = f
            elif isinstance(f, Questions):
                self.questions.update(f.questions)
            elif isinstance(f, Catalogue):
                for entry in f.entries:
                    for name in (entry.model, *entry.aliases):
                        key = normalise_name(name)
                        if key in self.catalogue:
                            raise RuleSetError(f"{path}: model name '{name}' catalogued twice")
                        self.catalogue[key] = entry
            elif isinstance(f, Derivation):
                self.derivations.append(f)
            elif isinstance(f, EntityList):
                self.entities.setdefault(f.regime, []).extend(f.entries)
                self.entity_rule[f.regime] = f.rule
        self.derivations.sort(key=lambda d: d.order)
        self._check_references()
        self.assertions = self._assertions()

    def path_of(self, kind: str, ident: str) -> str:
        for info in self.file_info:
            if info.kind == kind and info.id == ident:
                return info.path
        return "?"

    def _check_references(self) -> None:
        for pid, prov in self.provisions.items():
            where = self.path_of("provision", pid)
            if prov.regime not in self.regimes:
                raise RuleSetError(f"{where}: regime '{prov.regime}' has no regime file")
            for target in prov.excludes:
                if target not in self.provisions:
                    raise RuleSetError(f"{where}: excludes unknown rule '{target}'")
            for i, v in enumerate(prov.versions):
                if v.predicate is None:
                    continue
                for node in walk(v.predicate):
                    self._check_node(node, f"{where}: versions[{i}].when")
                for j, cp in enumerate(v.review_policies):
                    for node in walk(cp.when):
                        self._check_node(node, f"{where}: versions[{i}].review_policies[{j}]")
        for regime in self.regimes.values():
            for i, rv in enumerate(regime.versions):
                if rv.applies is not None:
                    for node in walk(rv.applies):
                        self._check_node(node, f"{self.path_of('regime', regime.id)}: "
                                               f"versions[{i}].applies")
        self._check_exclusion_cycles()

    def _assertions(self) -> frozenset[str]:
        """The assertions the rules read (predicates, review policies, the conditions of
        licence exceptions) and those the questions ask for."""
        trees = [rv.applies for r in self.regimes.values() for rv in r.versions]
        found = {q.split(":", 1)[1] for q in self.questions if q.startswith("assertions:")}
        for prov in self.provisions.values():
            for v in prov.versions:
                trees += [v.predicate, *(cp.when for cp in v.review_policies)]
                found.update(c.assertion for c in v.conditions)
        found.update(node.id for tree in trees if tree is not None for node in walk(tree)
                     if isinstance(node, Assertion))
        return frozenset(found)

    def _check_node(self, node: Any, where: str) -> None:
        if isinstance(node, Ref) and node.rule not in self.provisions:
            raise RuleSetError(f"{where}: ref to unknown rule '{node.rule}'")
        if isinstance(node, InGroup) and node.group not in self.groups:
            raise RuleSetError(f"{where}: unknown country group '{node.group}'")
        for p in params_of(node):
            if p not in self.parameters:
                raise RuleSetError(f"{where}: unknown parameter '{p}'")

    def _check_exclusion_cycles(self) -> None:
        """No provision may depend on itself, through its exclusions or through the rules its
        predicates and review policies refer to (checked here, so the engine need not)."""
        depends: dict[str, list[str]] = {}
        for pid, prov in self.provisions.items():
            deps = [e.id for e in self.exclusions_of(pid)]
            for v in prov.versions:
                trees = [v.when] if v.when is not None else []
                trees += [cp.when for cp in v.review_policies]
                deps += [n.rule for t in trees for n in walk(t) if isinstance(n, Ref)]
            depends[pid] = list(dict.fromkeys(deps))
        done: set[str] = set()

        def visit(pid: str, stack: tuple[str, ...]) -> None:
            if pid in stack:
                raise RuleSetError(f"rule cycle: {' -> '.join((*stack, pid))}")
            if pid in done:
                return
            for other in depends.get(pid, []):
                visit(other, (*stack, pid))
            done.add(pid)

        for pid in self.provisions:
            visit(pid, ())

    def reviewed_until(self) -> date | None:
        """The last day on which every regime's rule files are within their review
        horizons (after it, a determination's trace warns that later amendments may be
        missing: ``jurisdiction.stale_files``)."""
        regimes = tuple(code.lower() + "/" for code in self.regimes)
        return min((i.last_reviewed + timedelta(days=i.review_horizon_days)
                    for i in self.file_info if i.path.startswith(regimes)), default=None)

    def exclusions_of(self, rule_id: str) -> list[Provision]:
        """The exclusions that qualify a rule, highest precedence first."""
        if self._exclusions is None:
            table: dict[str, list[Provision]] = {}
            for p in self.provisions.values():
                for target in p.excludes:
                    table.setdefault(target, []).append(p)
            for found in table.values():
                found.sort(key=lambda p: (-(p.precedence or 0), p.id))
            self._exclusions = table
        return self._exclusions.get(rule_id, [])

    def of_regime(self, regime: str, role: str) -> list[Provision]:
        """A regime's provisions of one role, in the regulation's paragraph order."""
        key = (regime, role)
        if key not in self._by_role:
            found = [p for p in self.provisions.values()
                     if p.regime == regime and p.role == role]
            self._by_role[key] = sorted(found, key=lambda p: natural_key(p.id))
        return self._by_role[key]

    def change_dates(self) -> list[date]:
        """Every day on which a rule value changes - a version of anything dated starts or
        ends, or a regime's coverage starts. Between two consecutive such days the rules in
        force are the same, so one evaluation stands for the whole interval."""
        memo = self.memo("change-dates")
        if "dates" not in memo:
            found: set[date] = set()
            for f in self.files.values():
                _collect_dates(f, found)
            memo["dates"] = sorted(found)
        return list(memo["dates"])

    def memo(self, key: str) -> dict[str, Any]:
        """A scratch cache for values derived from this rule set alone (for all days)."""
        return self._memo.setdefault(key, {})

    def at(self, on: date) -> Snapshot:
        """The rule values in force on a date (cached)."""
        snap = self._snapshots.get(on)
        if snap is None:
            if len(self._snapshots) > 4096:
                self._snapshots.clear()
            snap = self._snapshots[on] = Snapshot(self, on)
        return snap


class Snapshot:
    """Parameters, country groups and aliases as in force on one day."""

    def __init__(self, rules: RuleSet, on: date) -> None:
        self.rules = rules
        self.on = on
        self._params: dict[str, tuple[Any, Citation] | None] = {}
        self._groups: dict[str, GroupVersion | None] = {}
        self._entities: dict[str, dict[str, tuple[EntityEntry, EntryVersion]]] = {}
        self._versions: dict[str, Any] = {}
        self._memo: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, dict[str, tuple[str, Citation]]] = {}
        for regime, table in rules.aliases.items():
            active = self.aliases.setdefault(regime, {})
            for a in table.aliases:
                v = in_force(a.versions, on)
                if v is not None:
                    active[a.code] = (a.treated_as, v.citation)

    def version(self, prov: Provision) -> Any:
        """The provision's version in force on this day (cached)."""
        try:
            return self._versions[prov.id]
        except KeyError:
            v = self._versions[prov.id] = prov.version_on(self.on)
            return v

    def memo(self, key: str) -> dict[str, Any]:
        """A per-day scratch cache for values derived from the rules alone."""
        return self._memo.setdefault(key, {})

    def param(self, pid: str) -> tuple[Any, Citation] | None:
        if pid not in self._params:
            p = self.rules.parameters[pid]
            v = p.version_on(self.on)
            if v is None:
                self._params[pid] = None
            else:
                value = eccn_set_value(v.value) if p.type == "eccn_set" else v.value
                self._params[pid] = (value, v.citation)
        return self._params[pid]

    def entity_index(self, regime: str) -> dict[str, tuple[EntityEntry, EntryVersion]]:
        """Entries in force, by every normalised name and alias (for exact look-up)."""
        if regime not in self._entities:
            index: dict[str, tuple[EntityEntry, EntryVersion]] = {}
            for entry in self.rules.entities.get(regime, []):
                version = entry.version_on(self.on)
                if version is None:
                    continue
                for name in (entry.name, *entry.aliases):
                    index.setdefault(normalise_name(name), (entry, version))
            self._entities[regime] = index
        return self._entities[regime]

    def group(self, name: str) -> GroupVersion | None:
        if name not in self._groups:
            self._groups[name] = self.rules.groups[name].version_on(self.on)
        return self._groups[name]


_DATE_FIELDS = ("from_", "ends", "coverage_from")


def _collect_dates(obj: Any, found: set[date]) -> None:
    """The start/end days of every version below a rule file object (walks its fields)."""
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            value = getattr(obj, name)
            if name in _DATE_FIELDS and isinstance(value, date):
                found.add(value)
            else:
                _collect_dates(value, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect_dates(v, found)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect_dates(v, found)
