"""The predicate language of rule files, as a small typed syntax tree.

A rule file states *when* a provision applies as a predicate over the facts of a
transaction (see ``docs/rule-files.md``). This module holds the tree and the strict
parser that builds it from plain YAML data; it does no I/O and knows no regulation.
The engine evaluates these trees in three-valued (Kleene) logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any as AnyT

Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class ParamRef:
    """A reference to a dated parameter (threshold, list) by id."""

    param: str


@dataclass(frozen=True, slots=True)
class EccnSet:
    """A set of Commerce Control List paragraphs.

    ``include`` and ``exclude`` hold ECCN patterns ("3B001.f.1", "3B*" for a whole
    product group). With ``closed`` false the set is only partly known: an ECCN that
    matches neither ``include`` nor ``outside`` is *unknown* to be in it, never "out".
    """

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    outside: tuple[str, ...] = ()
    closed: bool = True
    unsettled: tuple[str, ...] = ()

    def describe(self) -> str:
        text = ", ".join(self.include) or "(none listed)"
        if self.exclude:
            text += "; except " + ", ".join(self.exclude)
        if self.unsettled:
            text += "; membership not settled: " + ", ".join(self.unsettled)
        if not self.closed:
            text += "; other ECCNs unknown (list partly encoded)"
        return text


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Pred, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Pred, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Pred


@dataclass(frozen=True, slots=True)
class Compare:
    """``fact OP value`` for eq, ne, in, not_in, gt, ge, lt, le."""

    path: str
    op: str
    value: Scalar | tuple[Scalar, ...] | ParamRef


@dataclass(frozen=True, slots=True)
class IsBool:
    path: str
    expected: bool


@dataclass(frozen=True, slots=True)
class IsGiven:
    """Whether a fact is given at all: the one test that is never unknown.

    Some provisions turn on what the exporter does *not* know (e.g. § 744.23(a)(2)(ii):
    a fab whose advanced-node status is unknown); ``is_given: false`` states that.
    """

    path: str
    expected: bool


@dataclass(frozen=True, slots=True)
class NameIn:
    """A name fact equals one of the names, compared after normalisation (case, punctuation)."""

    path: str
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InGroup:
    """A country-valued fact is a member of a (dated) country group."""

    path: str
    group: str


@dataclass(frozen=True, slots=True)
class EccnIn:
    """A scalar ECCN fact lies in an ECCN set."""

    path: str
    eccns: EccnSet | ParamRef


@dataclass(frozen=True, slots=True)
class AnyEccnIn:
    """A list of ECCNs (known, empty, or unknown) has a member in an ECCN set."""

    path: str
    eccns: EccnSet | ParamRef


@dataclass(frozen=True, slots=True)
class ContainsAny:
    """A list fact contains at least one of the values."""

    path: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class IsEmpty:
    """A list fact is known to be empty ("[] = known none")."""

    path: str


@dataclass(frozen=True, slots=True)
class Exists:
    """Some element of a list fact satisfies ``where`` (paths inside are relative)."""

    over: str
    where: Pred


@dataclass(frozen=True, slots=True)
class Ref:
    """The predicate of another provision (a definition or exclusion), as of the same date."""

    rule: str


@dataclass(frozen=True, slots=True)
class Assertion:
    """A statement the user makes in ``assertions`` (the engine cannot check it)."""

    id: str
    absent: str = "unknown"  # "unknown" or "false"


@dataclass(frozen=True, slots=True)
class ParamTrue:
    """A boolean parameter (a switch, e.g. whether an exclusion is in force)."""

    param: str


@dataclass(frozen=True, slots=True)
class ListedBy:
    """The item is on the control list of the country named by ``country_path``.

    Reads ``item.national_classifications[<country>]``: a string means listed, an
    explicit null means not listed, an absent key means unknown.
    """

    country_path: str


@dataclass(frozen=True, slots=True)
class ListedIn:
    """The item is on a named regime's control list (``item.national_classifications``)."""

    regime: str


@dataclass(frozen=True, slots=True)
class UnknownLeaf:
    """A question the rule data itself cannot settle (always unknown)."""

    field: str
    question: str


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


Pred = (
    All
    | AnyOf
    | Not
    | Compare
    | IsBool
    | IsGiven
    | NameIn
    | InGroup
    | EccnIn
    | AnyEccnIn
    | ContainsAny
    | IsEmpty
    | Exists
    | Ref
    | Assertion
    | ParamTrue
    | ListedBy
    | ListedIn
    | UnknownLeaf
    | Const
)


class PredicateError(ValueError):
    """A predicate in a rule file is malformed; ``where`` is its key path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


_COMPARE_OPS = ("eq", "ne", "in", "not_in", "gt", "ge", "lt", "le")
_FACT_OPS = (*_COMPARE_OPS, "is", "is_given", "name_in", "in_group", "not_in_group", "eccn_in",
             "any_eccn_in", "contains_any", "is_empty", "listed_by")


def _scalar(where: str, v: AnyT) -> Scalar:
    if isinstance(v, (str, int, float, bool)):
        return v
    raise PredicateError(where, f"expected a string, number or boolean, got {type(v).__name__}")


def _value(where: str, v: AnyT) -> Scalar | tuple[Scalar, ...] | ParamRef:
    if isinstance(v, dict):
        if set(v) != {"param"} or not isinstance(v["param"], str):
            raise PredicateError(where, "a value object must be exactly {param: <parameter id>}")
        return ParamRef(v["param"])
    if isinstance(v, list):
        return tuple(_scalar(f"{where}[{i}]", x) for i, x in enumerate(v))
    return _scalar(where, v)


def _str_list(where: str, v: AnyT) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise PredicateError(where, "expected a list of strings")
    return tuple(v)


def parse_eccn_set(where: str, v: AnyT) -> EccnSet | ParamRef:
    """Parse an inline ECCN set, a plain list of patterns, or a parameter reference."""
    if isinstance(v, list):
        return EccnSet(include=_str_list(where, v))
    if not isinstance(v, dict):
        raise PredicateError(where, "expected an ECCN list, {include, exclude, ...} or {param}")
    if set(v) == {"param"}:
        return ParamRef(str(v["param"]))
    unknown = set(v) - {"include", "exclude", "outside", "closed", "unsettled"}
    if unknown:
        raise PredicateError(where, f"unknown key(s) in ECCN set: {sorted(unknown)}")
    if "include" not in v:
        raise PredicateError(where, "an ECCN set needs 'include'")
    closed = v.get("closed", True)
    if not isinstance(closed, bool):
        raise PredicateError(f"{where}.closed", "expected true or false")
    return EccnSet(
        include=_str_list(f"{where}.include", v["include"]),
        exclude=_str_list(f"{where}.exclude", v.get("exclude", [])),
        outside=_str_list(f"{where}.outside", v.get("outside", [])),
        closed=closed,
        unsettled=_str_list(f"{where}.unsettled", v.get("unsettled", [])),
    )


def parse_predicate(obj: AnyT, where: str = "when") -> Pred:
    """Build a predicate tree from YAML data, rejecting anything not in the language."""
    if isinstance(obj, bool):
        return Const(obj)
    if not isinstance(obj, dict):
        raise PredicateError(where, f"a predicate must be a mapping, got {type(obj).__name__}")
    keys = set(obj) - {"label"}
    if "all" in keys or "any" in keys:
        op = "all" if "all" in keys else "any"
        if keys != {op}:
            raise PredicateError(where, f"'{op}' takes no sibling keys, found {sorted(keys)}")
        items = obj[op]
        if not isinstance(items, list) or not items:
            raise PredicateError(f"{where}.{op}", "expected a non-empty list of predicates")
        parsed = tuple(parse_predicate(x, f"{where}.{op}[{i}]") for i, x in enumerate(items))
        return All(parsed) if op == "all" else AnyOf(parsed)
    if "not" in keys:
        if keys != {"not"}:
            raise PredicateError(where, "'not' takes no sibling keys")
        return Not(parse_predicate(obj["not"], f"{where}.not"))
    if "exists" in keys:
        if keys != {"exists"} or not isinstance(obj["exists"], dict):
            raise PredicateError(where, "'exists' must be {over: <list fact>, where: <predicate>}")
        ex = obj["exists"]
        if set(ex) != {"over", "where"} or not isinstance(ex["over"], str):
            raise PredicateError(f"{where}.exists", "needs exactly 'over' (a path) and 'where'")
        return Exists(ex["over"], parse_predicate(ex["where"], f"{where}.exists.where"))
    if "ref" in keys:
        if keys != {"ref"} or not isinstance(obj["ref"], str):
            raise PredicateError(where, "'ref' must be a rule id and stand alone")
        return Ref(obj["ref"])
    if "assertion" in keys:
        extra = keys - {"assertion", "absent"}
        if extra:
            raise PredicateError(where, f"unknown key(s) with 'assertion': {sorted(extra)}")
        absent = obj.get("absent", "unknown")
        if absent is False:
            absent = "false"
        if absent not in ("unknown", "false"):
            raise PredicateError(f"{where}.absent", "must be 'unknown' or 'false'")
        return Assertion(str(obj["assertion"]), absent)
    if "param_true" in keys:
        if keys != {"param_true"}:
            raise PredicateError(where, "'param_true' stands alone")
        return ParamTrue(str(obj["param_true"]))
    if "unknown" in keys:
        u = obj["unknown"]
        if keys != {"unknown"} or not isinstance(u, dict) or set(u) != {"field", "question"}:
            raise PredicateError(where, "'unknown' must be {field, question} and stand alone")
        return UnknownLeaf(str(u["field"]), str(u["question"]))
    if "fact" in keys:
        path = obj["fact"]
        if not isinstance(path, str) or not path:
            raise PredicateError(f"{where}.fact", "expected a fact path")
        ops = keys - {"fact"}
        if len(ops) != 1:
            raise PredicateError(
                where, f"a fact test needs exactly one operator of {list(_FACT_OPS)}, "
                f"found {sorted(ops) or 'none'}")
        (op,) = ops
        arg = obj[op]
        at = f"{where}.{op}"
        if op in _COMPARE_OPS:
            value = _value(at, arg)
            if op in ("in", "not_in") and not isinstance(value, (tuple, ParamRef)):
                raise PredicateError(at, "expected a list")
            return Compare(path, op, value)
        if op == "is":
            if not isinstance(arg, bool):
                raise PredicateError(at, "expected true or false")
            return IsBool(path, arg)
        if op == "is_given":
            if not isinstance(arg, bool):
                raise PredicateError(at, "expected true or false")
            return IsGiven(path, arg)
        if op == "name_in":
            return NameIn(path, _str_list(at, arg))
        if op in ("in_group", "not_in_group"):
            if not isinstance(arg, str):
                raise PredicateError(at, "expected a country group name")
            node: Pred = InGroup(path, arg)
            return Not(node) if op == "not_in_group" else node
        if op == "eccn_in":
            return EccnIn(path, parse_eccn_set(at, arg))
        if op == "any_eccn_in":
            return AnyEccnIn(path, parse_eccn_set(at, arg))
        if op == "contains_any":
            if not isinstance(arg, list):
                raise PredicateError(at, "expected a list")
            return ContainsAny(path, tuple(_scalar(f"{at}[{i}]", x) for i, x in enumerate(arg)))
        if op == "is_empty":
            if arg is not True:
                raise PredicateError(at, "write 'is_empty: true' (use 'not' for the negation)")
            return IsEmpty(path)
        if op == "listed_by":
            raise PredicateError(at, "'listed_by' does not take 'fact'; write {listed_by: <path>}")
        raise PredicateError(at, f"unknown operator '{op}'")
    if "listed_in" in keys:
        if keys != {"listed_in"} or not isinstance(obj["listed_in"], str):
            raise PredicateError(where, "'listed_in' must be a regime code and stand alone")
        return ListedIn(obj["listed_in"])
    if "listed_by" in keys:
        if keys != {"listed_by"} or not isinstance(obj["listed_by"], str):
            raise PredicateError(where, "'listed_by' must be a country fact path and stand alone")
        return ListedBy(obj["listed_by"])
    raise PredicateError(where, f"unknown predicate keys {sorted(keys)}")


def walk(pred: Pred) -> list[Pred]:
    """Every node of a predicate tree, depth first (used by whole-corpus checks)."""
    out: list[Pred] = [pred]
    if isinstance(pred, (All, AnyOf)):
        for p in pred.items:
            out.extend(walk(p))
    elif isinstance(pred, Not):
        out.extend(walk(pred.item))
    elif isinstance(pred, Exists):
        out.extend(walk(pred.where))
    return out


@dataclass
class FactReads:
    """Everything a predicate can read, found statically (a superset of any one evaluation).

    ``paths`` are fact paths read whole; ``lists`` maps a list fact that ``exists`` looks
    into to the first-level keys its elements are read at; ``refs`` are the provisions whose
    effect it uses. Two transactions that agree on all of these get the same answer.
    """

    paths: set[str]
    lists: dict[str, set[str]]
    assertions: bool = False
    refs: set[str] | None = None

    def merge(self, other: FactReads) -> None:
        self.paths |= other.paths
        for k, v in other.lists.items():
            self.lists.setdefault(k, set()).update(v)
        self.assertions = self.assertions or other.assertions
        self.refs = (self.refs or set()) | (other.refs or set())


_NATIONAL = "item.national_classifications"


def fact_reads(pred: Pred) -> FactReads:
    """The facts, assertions and provisions a predicate depends on."""
    out = FactReads(set(), {}, False, set())
    _reads(pred, out, None)
    return out


def _read_path(path: str, out: FactReads, scope: set[str] | None) -> None:
    if path.startswith("$."):
        out.paths.add(path[2:])
    elif scope is None:
        out.paths.add(path)
    else:
        scope.add(path.split(".")[0])


def _reads(pred: Pred, out: FactReads, scope: set[str] | None) -> None:
    if isinstance(pred, (All, AnyOf)):
        for p in pred.items:
            _reads(p, out, scope)
    elif isinstance(pred, Not):
        _reads(pred.item, out, scope)
    elif isinstance(pred, Exists):
        if pred.over.startswith("$.") or scope is None:
            over = pred.over.removeprefix("$.")
            inner = out.lists.setdefault(over, set())
            _reads(pred.where, out, inner)
        else:  # a list inside a list element: reading that element's key covers it
            scope.add(pred.over.split(".")[0])
            _reads(pred.where, out, set())
    elif isinstance(pred, Ref):
        assert out.refs is not None
        out.refs.add(pred.rule)
    elif isinstance(pred, Assertion):
        out.assertions = True
    elif isinstance(pred, ListedBy):
        _read_path(pred.country_path, out, scope)
        out.paths.add(_NATIONAL)
    elif isinstance(pred, ListedIn):
        out.paths.add(_NATIONAL)
    elif isinstance(pred, _FACT_TESTS):
        _read_path(pred.path, out, scope)
    elif not isinstance(pred, (ParamTrue, UnknownLeaf, Const)):
        # a new kind of node must say what it reads before anything relies on this
        raise TypeError(f"fact_reads does not know what {type(pred).__name__} reads")


_FACT_TESTS = (Compare, IsBool, IsGiven, NameIn, InGroup, EccnIn, AnyEccnIn, ContainsAny,
               IsEmpty)


def data_reads(pred: Pred) -> set[str]:
    """The rule data a predicate reads besides the facts: the parameters (by id), country
    groups (by name) and provisions (by id) it names."""
    out: set[str] = set()
    for node in walk(pred):
        if isinstance(node, Ref):
            out.add(node.rule)
        elif isinstance(node, InGroup):
            out.add(node.group)
        else:
            out.update(params_of(node))
    return out


def day_data_reads(pred: Pred) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The parameters and the country groups a predicate reads (sorted): with its facts
    and the effects of the provisions it refers to, all its answer can differ by from day
    to day (a new kind of node must be placed here before anything relies on this)."""
    params: set[str] = set()
    groups: set[str] = set()
    for node in walk(pred):
        if isinstance(node, InGroup):
            groups.add(node.group)
        elif not isinstance(node, _DAY_BLIND):
            raise TypeError(f"day_data_reads does not know what {type(node).__name__} reads")
        params.update(params_of(node))
    return tuple(sorted(params)), tuple(sorted(groups))


# the nodes that read no country group: the parameters any of them reads are params_of's
_DAY_BLIND = (All, AnyOf, Not, Compare, IsBool, IsGiven, NameIn, EccnIn, AnyEccnIn,
              ContainsAny, IsEmpty, Exists, Ref, Assertion, ParamTrue, ListedBy, ListedIn,
              UnknownLeaf, Const)


def params_of(node: Pred) -> list[str]:
    """The parameters one node names (not its parts': :func:`data_reads` has those)."""
    if isinstance(node, ParamTrue):
        return [node.param]
    if isinstance(node, Compare) and isinstance(node.value, ParamRef):
        return [node.value.param]
    if isinstance(node, (EccnIn, AnyEccnIn)) and isinstance(node.eccns, ParamRef):
        return [node.eccns.param]
    return []
