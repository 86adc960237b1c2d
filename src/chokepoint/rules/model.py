"""The schema of rule files (version 1), as strict pydantic models.

Every dated value carries a :class:`Citation`. Dates follow one convention: a version
holds from its ``from`` date (inclusive) until the ``from`` date of the next version;
an explicit ``ends`` is the first day it no longer holds ("no longer in force", which
differs from "unknown"). This module holds data types only: no file access.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cached_property
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chokepoint.rules.predicate import EccnSet, ParamRef, Pred, parse_eccn_set, parse_predicate

SCHEMA_VERSION = 1

Evidence = Literal["regulation", "secondary", "transcription", "unverified"]
"""How a value was checked: against the regulation text, a secondary source (law-firm
alert, CSIS, an SEC filing), a third-party transcription of the text, or not at all."""

Role = Literal["subject_route", "licence_requirement", "exclusion", "definition",
               "licence_exception", "classification"]

PER_ENTRY = "per_entity_list_entry"
"""A review policy that the listed party's own Entity List entry states."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Citation(_Strict):
    """Where a value comes from: the paragraph, the rule that set it, and its effective date."""

    ref: str = Field(min_length=3, description="e.g. '15 CFR 734.9(k)' or 'NL: Regeling ...'")
    fr: str | None = Field(default=None, description="Federal Register rule, e.g. '89 FR 96790'")
    fr_doc: str | None = None
    published: date | None = None
    effective: date
    evidence: Evidence
    source: str | None = Field(default=None, description="where the value was checked")
    note: str | None = None

    @model_validator(mode="after")
    def _needs_a_source(self) -> Citation:
        if not self.fr and not self.source:
            raise ValueError("a citation needs 'fr' (the rule that set the value) or 'source'")
        return self

    @property
    def working_position(self) -> bool:
        """True where the value is not verified against the regulation text."""
        return self.evidence != "regulation"

    @cached_property
    def shown(self) -> str:
        """The citation in one line (computed once: it is in every trace step)."""
        parts = [p for p in (self.fr, f"eff. {self.effective.isoformat()}") if p]
        return f"{self.ref} ({', '.join(parts)})"

    def short(self) -> str:
        return self.shown


def _parse_when(v: Any) -> Pred | None:
    if v is None:
        return None
    return parse_predicate(v, "when")


class ConditionalPolicy(_Strict):
    """A review policy that applies when its predicate holds (tried in the order given)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    when: Any
    policy: str
    why: str

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, v: Any) -> Pred:
        return parse_predicate(v, "when")


class Condition(_Strict):
    """A condition of a licence exception, stated as the user's assertion that it is met."""

    assertion: str
    text: str


class ProvisionVersion(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True,
                              populate_by_name=True)

    from_: date = Field(alias="from")
    ends: date | None = None
    citation: Citation
    when: Annotated[Any, Field(description="predicate; null = the provision does not operate")]
    review_policy: str | None = None
    review_policies: list[ConditionalPolicy] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    eccn: str | None = Field(default=None, description="classification provisions: the "
                             "ECCN an item meeting 'when' falls under")
    note: str | None = None

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, v: Any) -> Pred | None:
        return _parse_when(v)

    @property
    def predicate(self) -> Pred | None:
        return self.when  # type: ignore[no-any-return]


def _check_versions(versions: list[Any]) -> None:
    if not versions:
        raise ValueError("at least one version is required")
    prev_from: date | None = None
    for i, v in enumerate(versions):
        if prev_from is not None and v.from_ <= prev_from:
            raise ValueError(f"versions[{i}].from ({v.from_}) must be after the previous one")
        if v.ends is not None and v.ends <= v.from_:
            raise ValueError(f"versions[{i}].ends must be after its 'from'")
        if v.citation.effective > v.from_:
            raise ValueError(
                f"versions[{i}]: citation effective {v.citation.effective} is after 'from'")
        if i + 1 < len(versions) and v.ends is not None and v.ends > versions[i + 1].from_:
            raise ValueError(f"versions[{i}].ends overlaps the next version")
        prev_from = v.from_


class _FileHead(_Strict):
    schema_version: Literal[1]
    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    last_reviewed: date
    review_horizon_days: int = Field(gt=0, le=3660)


class Provision(_FileHead):
    """One paragraph of a regulation: when it applies, dated and cited."""

    kind: Literal["provision"]
    regime: str = Field(pattern=r"^[A-Z]{2}$")
    role: Role
    explain: str = Field(min_length=1, description="what the provision does, in plain words")
    excludes: list[str] = Field(default_factory=list)
    precedence: int | None = None
    independent_of_subject: bool = Field(
        default=False,
        description="a licence requirement on an activity, applying even to items not "
        "subject to the regime (e.g. US-person support, § 744.6)")
    versions: list[ProvisionVersion]

    @model_validator(mode="after")
    def _valid(self) -> Provision:
        _check_versions(self.versions)
        for i, v in enumerate(self.versions):
            has_policy = v.review_policy is not None or v.review_policies
            if has_policy and self.role != "licence_requirement":
                raise ValueError(f"versions[{i}]: only licence requirements have review policies")
            if v.conditions and self.role != "licence_exception":
                raise ValueError(f"versions[{i}]: only licence exceptions have conditions")
            if (v.eccn is not None) != (self.role == "classification"):
                raise ValueError(f"versions[{i}]: classification provisions (only) name an 'eccn'")
        if self.independent_of_subject and self.role != "licence_requirement":
            raise ValueError("only a licence requirement can be independent_of_subject")
        if self.role == "exclusion" and not self.excludes:
            raise ValueError("an exclusion must name the rules it 'excludes'")
        if self.role != "exclusion" and self.excludes:
            raise ValueError("only exclusions may name 'excludes'")
        if self.role == "exclusion" and self.precedence is None:
            raise ValueError("an exclusion must declare its 'precedence'")
        return self

    def version_on(self, on: date) -> ProvisionVersion | None:
        return in_force(self.versions, on)


ParamValue = bool | int | float | str | list[str] | dict[str, Any]


class ParameterVersion(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date = Field(alias="from")
    ends: date | None = None
    value: ParamValue
    citation: Citation
    note: str | None = None


class Parameter(_FileHead):
    """A dated value: a threshold, a switch, a list of ECCNs or countries."""

    kind: Literal["parameter"]
    type: Literal["number", "boolean", "eccn_set", "country_list", "string", "string_list"]
    unit: str | None = None
    explain: str = Field(min_length=1)
    versions: list[ParameterVersion]

    @model_validator(mode="after")
    def _valid(self) -> Parameter:
        _check_versions(self.versions)
        for i, v in enumerate(self.versions):
            _check_param_value(self.type, v.value, f"versions[{i}].value")
        return self

    def version_on(self, on: date) -> ParameterVersion | None:
        return in_force(self.versions, on)


def _check_param_value(kind: str, value: Any, where: str) -> None:
    ok = {
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "string": isinstance(value, str),
        "string_list": isinstance(value, list) and all(isinstance(x, str) for x in value),
        "country_list": isinstance(value, list) and all(
            isinstance(c, str) and len(c) == 2 and c.isupper() for c in value),
        "eccn_set": isinstance(value, (list, dict)),
    }[kind]
    if not ok:
        raise ValueError(f"{where}: not a valid {kind}")
    if kind == "eccn_set":
        parse_eccn_set(where, value)


def eccn_set_value(value: Any) -> EccnSet:
    parsed = parse_eccn_set("value", value)
    assert not isinstance(parsed, ParamRef)
    return parsed


class GroupVersion(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date = Field(alias="from")
    ends: date | None = None
    members: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]]
    known_non_members: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] | None = Field(
        default=None,
        description="only for a partly verified list: countries known NOT to be members; "
        "any other country is then 'unknown', never 'not a member'")
    citation: Citation
    note: str | None = None


class CountryGroup(_Strict):
    title: str
    versions: list[GroupVersion]

    @model_validator(mode="after")
    def _valid(self) -> CountryGroup:
        _check_versions(self.versions)
        return self

    def version_on(self, on: date) -> GroupVersion | None:
        return in_force(self.versions, on)


class CountryGroups(_FileHead):
    kind: Literal["country_groups"]
    groups: dict[str, CountryGroup]


class AliasVersion(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date = Field(alias="from")
    ends: date | None = None
    citation: Citation


class CountryAlias(_Strict):
    code: str = Field(pattern=r"^[A-Z]{2}$")
    treated_as: str = Field(pattern=r"^[A-Z]{2}$")
    versions: list[AliasVersion]

    @model_validator(mode="after")
    def _valid(self) -> CountryAlias:
        _check_versions(self.versions)
        return self


class CountryAliases(_FileHead):
    """Destinations one regime treats as another (the EAR treats Hong Kong as China)."""

    kind: Literal["country_aliases"]
    regime: str = Field(pattern=r"^[A-Z]{2}$")
    aliases: list[CountryAlias]


class RegimeVersion(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              arbitrary_types_allowed=True)

    from_: date = Field(alias="from")
    ends: date | None = None
    citation: Citation
    applies: Annotated[Any, Field(description="when the regime reaches a transaction at all "
                                              "(predicate); null = always")] = None
    note: str | None = None

    @field_validator("applies", mode="before")
    @classmethod
    def _applies(cls, v: Any) -> Pred | None:
        return None if v is None else parse_predicate(v, "applies")


class Regime(_FileHead):
    """A jurisdiction's frame: its name and the first date its rules are encoded for."""

    kind: Literal["regime"]
    code: str = Field(pattern=r"^[A-Z]{2}$")
    coverage_from: date
    explain: str
    versions: list[RegimeVersion]

    @model_validator(mode="after")
    def _valid(self) -> Regime:
        _check_versions(self.versions)
        return self

    def version_on(self, on: date) -> RegimeVersion | None:
        return in_force(self.versions, on)


class EntryVersion(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date = Field(alias="from")
    ends: date | None = None
    footnotes: list[int] = Field(default_factory=list)
    license_requirement: str
    review_policy: str = Field(description="presumption_of_denial, case_by_case, ...")
    review_policy_text: str
    rff: bool = Field(default=False, description="a restricted fabrication facility (§ 740.26)")
    citation: Citation
    note: str | None = None


class EntityEntry(_Strict):
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str
    aliases: list[str] = Field(default_factory=list)
    country: str = Field(pattern=r"^[A-Z]{2}$")
    addresses: list[str] = Field(default_factory=list)
    versions: list[EntryVersion]

    @model_validator(mode="after")
    def _valid(self) -> EntityEntry:
        _check_versions(self.versions)
        return self

    def version_on(self, on: date) -> EntryVersion | None:
        return in_force(self.versions, on)


class EntityList(_FileHead):
    """A curated, dated snapshot of Entity List entries (Supp. No. 4 to part 744)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["entity_list"]
    list_name: Literal["entity_list"] = Field(alias="list")
    regime: str = Field(pattern=r"^[A-Z]{2}$")
    rule: str = Field(description="the provision that imposes the listed requirements")
    entries: list[EntityEntry]


class DerivationVersion(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date = Field(alias="from")
    ends: date | None = None
    operation: Literal["product", "quotient"]
    inputs: list[str] = Field(min_length=2, max_length=2)
    citation: Citation
    note: str | None = None


class Derivation(_FileHead):
    """A fact computed from others when not given (e.g. TPP = TOPS x bit length)."""

    kind: Literal["derivation"]
    target: str
    order: int = Field(description="derivations run in this order (inputs first)")
    explain: str
    versions: list[DerivationVersion]

    @model_validator(mode="after")
    def _valid(self) -> Derivation:
        _check_versions(self.versions)
        return self

    def version_on(self, on: date) -> DerivationVersion | None:
        return in_force(self.versions, on)


class CatalogueVersion(_Strict):
    """What a catalogued product is, on the control lists, from a date."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date = Field(alias="from")
    ends: date | None = None
    eccn: str | None = None
    national_classifications: dict[str, str | None] = Field(default_factory=dict)
    citation: Citation
    note: str | None = None


class CatalogueEntry(_Strict):
    model: str
    aliases: list[str] = Field(default_factory=list)
    kind: Literal["chip", "computer", "sme", "sme_part_or_component"]
    made_by: str
    made_in: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    description: str
    chip: dict[str, float | int | bool] = Field(default_factory=dict)
    parameters: dict[str, float | int | str | bool] = Field(default_factory=dict)
    figures_citation: Citation | None = None
    versions: list[CatalogueVersion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> CatalogueEntry:
        if (self.chip or self.parameters) and self.figures_citation is None:
            raise ValueError(f"{self.model}: figures need 'figures_citation'")
        allowed = {"tpp", "tops", "bit_length", "die_area_mm2", "datacenter",
                   "memory_bandwidth_density_gbps_per_mm2", "interconnect_bandwidth_gbps",
                   "memory_bandwidth_gbps", "io_bandwidth_gbps", "transistor_count",
                   "sparse_tops"}
        unknown = set(self.chip) - allowed
        if unknown:
            raise ValueError(f"{self.model}: unknown chip figure(s) {sorted(unknown)}")
        if self.versions:
            _check_versions(self.versions)
        return self

    def version_on(self, on: date) -> CatalogueVersion | None:
        return in_force(self.versions, on) if self.versions else None


class Catalogue(_FileHead):
    """Well-known chips and chipmaking tools, each figure cited."""

    kind: Literal["catalogue"]
    entries: list[CatalogueEntry]


class Questions(_FileHead):
    """Plain questions for unknown facts, keyed by fact path (``[]`` for any index)."""

    kind: Literal["questions"]
    questions: dict[str, str]


RuleFile = (Provision | Parameter | CountryGroups | CountryAliases | Regime | Questions
            | EntityList | Derivation | Catalogue)

FILE_KINDS: dict[str, type[_FileHead]] = {
    "provision": Provision,
    "parameter": Parameter,
    "country_groups": CountryGroups,
    "country_aliases": CountryAliases,
    "regime": Regime,
    "questions": Questions,
    "entity_list": EntityList,
    "derivation": Derivation,
    "catalogue": Catalogue,
}


_V = TypeVar("_V", bound="_Dated")


class _Dated(Protocol):
    from_: date
    ends: date | None


def in_force(versions: Sequence[_V], on: date) -> _V | None:
    """The version in force on a day, or None (not yet, or no longer, in force)."""
    current = None
    for v in versions:
        if v.from_ <= on:
            current = v
        else:
            break
    if current is not None and current.ends is not None and on >= current.ends:
        return None
    return current
