"""Evaluating rule predicates over a transaction in three-valued logic.

The evaluator records what it read (facts, thresholds with their citations, the
definitions it consulted) so that each trace step can say what a provision looked at.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from chokepoint.engine import eccn as eccn_mod
from chokepoint.engine.facts import MISSING, get
from chokepoint.engine.logic import FALSE, TRUE, Result, Unknown, negate
from chokepoint.rules.model import Citation
from chokepoint.rules.names import normalise_name
from chokepoint.rules.predicate import (
    All,
    AnyEccnIn,
    AnyOf,
    Assertion,
    Compare,
    Const,
    ContainsAny,
    EccnIn,
    EccnSet,
    Exists,
    InGroup,
    IsBool,
    IsEmpty,
    IsGiven,
    ListedBy,
    ListedIn,
    NameIn,
    Not,
    ParamRef,
    ParamTrue,
    Pred,
    Ref,
    UnknownLeaf,
)
from chokepoint.rules.ruleset import Snapshot


class EngineError(RuntimeError):
    """The rule data cannot be evaluated (a bug in the rules, never in the facts)."""


class Reads:
    """What one provision's evaluation looked at, for its trace step."""

    __slots__ = ("facts", "thresholds", "refs")

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}
        self.thresholds: dict[str, dict[str, Any]] = {}
        self.refs: list[str] = []


@dataclass
class Context:
    snap: Snapshot
    root: dict[str, Any]
    assertions: frozenset[str]
    rule: str = ""
    reads: Reads = field(default_factory=Reads)
    resolve: Callable[[str], Result] | None = None


def evaluate(pred: Pred, ctx: Context) -> Result:
    return _compiled(pred)(ctx, ctx.root, "")


_PATHS: dict[str, tuple[bool, str, tuple[str, ...]]] = {}


def _path(path: str) -> tuple[bool, str, tuple[str, ...]]:
    """A fact path split once: (read from the transaction root?, path, its parts)."""
    if path.startswith("$."):
        spec = (True, path[2:], tuple(path[2:].split(".")))
    else:
        spec = (False, path, tuple(path.split(".")))
    _PATHS[path] = spec
    return spec


def _read(ctx: Context, scope: Any, prefix: str, path: str) -> tuple[Any, str]:
    at_root, rel, parts = _PATHS.get(path) or _path(path)
    if at_root:
        scope, prefix = ctx.root, ""
    full = f"{prefix}.{rel}" if prefix else rel
    # facts.get, inlined on the hottest path of the engine
    value = scope
    for part in parts:
        if not isinstance(value, dict):
            value = MISSING
            break
        value = value.get(part)
        if value is None:
            value = MISSING
            break
    ctx.reads.facts[full] = None if value is MISSING else value
    return value, full


def _unknown(ctx: Context, fld: str, question: str | None = None) -> Result:
    return (None, (Unknown(fld, question, ctx.rule),))


def _param(ctx: Context, ref: ParamRef) -> Any:
    found = ctx.snap.param(ref.param)
    if found is None:
        raise EngineError(f"parameter '{ref.param}' has no value on {ctx.snap.on}")
    value, citation = found
    _note_param(ctx, ref.param, value, citation)
    return value


def _note_param(ctx: Context, pid: str, value: Any, citation: Citation) -> None:
    memo = ctx.snap.memo("param-notes")
    note = memo.get(pid)
    if note is None:
        if isinstance(value, EccnSet):
            shown: Any = value.describe()
        else:
            shown = value if isinstance(value, (int, float, str, bool, list)) else str(value)
        note = memo[pid] = {
            "parameter": pid,
            "value": shown,
            "citation": citation.short(),
            "evidence": citation.evidence,
        }
    ctx.reads.thresholds[pid] = note


def _num(v: Any) -> float:
    # Facts and thresholds arrive as decimal literals (JSON/YAML). Distinct literals of
    # fewer than 16 significant digits map to distinct doubles in the same order, and
    # "0.25" maps to exactly the double that a threshold written 0.25 maps to, so comparing
    # the doubles decides every inequality exactly as the decimals would.
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArithmeticError(f"not a number: {v!r}")
    return float(v)


def _compare(p: Compare, ctx: Context, value: Any, full: str) -> Result:
    target = _param(ctx, p.value) if isinstance(p.value, ParamRef) else p.value
    op = p.op
    if op in ("in", "not_in"):
        hit = value in (target if isinstance(target, (list, tuple)) else (target,))
        return (hit if op == "in" else not hit, ())
    if op in ("eq", "ne"):
        same = value == target
        return (same if op == "eq" else not same, ())
    try:
        a, b = _num(value), _num(target)
    except ArithmeticError as exc:
        raise EngineError(f"{ctx.rule}: {full} is not a number") from exc
    return (_ORDER[op](a, b), ())


_ORDER: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


def _is_bool(p: IsBool, ctx: Context, value: Any, full: str) -> Result:
    return (bool(value) is p.expected, ())


def _is_given(p: IsGiven, ctx: Context, value: Any, full: str) -> Result:
    return ((value is not MISSING) is p.expected, ())


def _name_in(p: NameIn, ctx: Context, value: Any, full: str) -> Result:
    return (normalise_name(str(value)) in {normalise_name(n) for n in p.names}, ())


def _in_group(p: InGroup, ctx: Context, value: Any, full: str) -> Result:
    version = ctx.snap.group(p.group)
    if version is None:
        return FALSE
    memo = ctx.snap.memo("group-notes")
    key = f"{p.group}|{value}"
    note = memo.get(key)
    if note is None:
        note = memo[key] = {
            "parameter": f"Country Group {p.group}",
            "value": f"{value} {'is' if value in version.members else 'is not'} a member",
            "citation": version.citation.short(),
            "evidence": version.citation.evidence,
        }
    ctx.reads.thresholds[f"group {p.group}"] = note
    if value in version.members:
        return TRUE
    if version.known_non_members is None or value in version.known_non_members:
        return FALSE
    title = ctx.snap.rules.groups[p.group].title
    return _unknown(
        ctx, f"rules:{p.group}:{value}",
        f"Is {value} in {title}? chokepoint's rule data lists the members it could verify "
        f"and those known not to be members; {value} is neither. Check the current list.")


def _eccns(ctx: Context, ref: EccnSet | ParamRef) -> tuple[EccnSet, str]:
    if isinstance(ref, ParamRef):
        memo = ctx.snap.memo("eccn-sets")
        hit = memo.get(ref.param)
        if hit is not None:  # the set, its source, and its trace note, once per day
            ctx.reads.thresholds[ref.param] = hit[2]
            return hit[0], hit[1]
        value = _param(ctx, ref)
        if not isinstance(value, EccnSet):
            raise EngineError(f"parameter '{ref.param}' is not an ECCN set")
        title = ctx.snap.rules.parameters[ref.param].title
        memo[ref.param] = (value, ref.param + "|" + title, ctx.reads.thresholds[ref.param])
        return value, ref.param + "|" + title
    return ref, "inline|the ECCN list of this rule"


def _eccn_unknown(ctx: Context, fld: str, eccn: str, reason: str, source: str) -> Unknown:
    if reason == "specificity":
        return Unknown(fld, f"Which sub-paragraph of {eccn} is the item classified under? "
                            "The rule turns on it.", ctx.rule)
    key, title = source.split("|", 1)
    return Unknown(f"rules:{key}:{eccn}",
                   f"Is {eccn} within {title}? chokepoint's rule data does not settle it "
                   "(list partly encoded or amendment not verified); check the regulation.",
                   ctx.rule)


def _eccn_in(p: EccnIn, ctx: Context, value: Any, full: str) -> Result:
    eccns, source = _eccns(ctx, p.eccns)
    verdict, reason = eccn_mod.membership(str(value), eccns)
    if verdict is None:
        return (None, (_eccn_unknown(ctx, full, str(value), reason, source),))
    return (verdict, ())


def _any_eccn_in(p: AnyEccnIn, ctx: Context, value: Any, full: str) -> Result:
    eccns, source = _eccns(ctx, p.eccns)
    unknowns: list[Unknown] = []
    for e in value:
        m, reason = eccn_mod.membership(str(e), eccns)
        if m is True:
            return TRUE
        if m is None:
            unknowns.append(_eccn_unknown(ctx, full, str(e), reason, source))
    return (None, tuple(unknowns)) if unknowns else FALSE


def _contains_any(p: ContainsAny, ctx: Context, value: Any, full: str) -> Result:
    return (any(v in value for v in p.values), ())


def _is_empty(p: IsEmpty, ctx: Context, value: Any, full: str) -> Result:
    return (len(value) == 0, ())


def _exists(p: Exists, ctx: Context, value: Any, full: str) -> Result:
    unknowns: list[Unknown] = []
    undecided = False
    where = _compiled(p.where)
    for i, element in enumerate(value):
        verdict, unk = where(ctx, element, f"{full}[{i}]")
        if verdict is True:
            return TRUE
        if verdict is None:
            undecided = True
            unknowns.extend(unk)
    return (None, tuple(unknowns)) if undecided else FALSE


def _ref(p: Ref, ctx: Context, scope: Any, prefix: str) -> Result:
    if ctx.resolve is None:
        raise EngineError(f"{ctx.rule}: 'ref' needs a resolver")
    result = ctx.resolve(p.rule)
    ctx.reads.refs.append(p.rule)
    verdict, unknowns = result
    if not unknowns:
        return result
    # Attribute the referenced provision's unknowns to the rule that needed them too.
    return (verdict, tuple(u._replace(rule=ctx.rule) for u in unknowns))


def _assertion(p: Assertion, ctx: Context, scope: Any, prefix: str) -> Result:
    ctx.reads.facts[f"assertions: {p.id}"] = p.id in ctx.assertions
    if p.id in ctx.assertions:
        return TRUE
    if p.absent == "false":
        return FALSE
    return _unknown(ctx, f"assertions:{p.id}")


def _param_true(p: ParamTrue, ctx: Context, scope: Any, prefix: str) -> Result:
    return (bool(_param(ctx, ParamRef(p.param))), ())


def _listed_by(p: ListedBy, ctx: Context, scope: Any, prefix: str) -> Result:
    country, full = _read(ctx, scope, prefix, p.country_path)
    if country is MISSING:
        return _unknown(ctx, full)
    return _listed(ctx, str(country))


def _listed_in(p: ListedIn, ctx: Context, scope: Any, prefix: str) -> Result:
    return _listed(ctx, p.regime)


def _listed(ctx: Context, country: str) -> Result:
    table = get(ctx.root, "item.national_classifications")
    fld = f"item.national_classifications.{country}"
    if table is MISSING or country not in table:
        ctx.reads.facts[fld] = None
        return _unknown(ctx, fld)
    ctx.reads.facts[fld] = table[country]
    return (table[country] is not None, ())


def _unknown_leaf(p: UnknownLeaf, ctx: Context, scope: Any, prefix: str) -> Result:
    return _unknown(ctx, p.field, p.question)


def _const(p: Const, ctx: Context, scope: Any, prefix: str) -> Result:
    return TRUE if p.value else FALSE


ValueTest = Callable[[Any, Context, Any, str], Result]

_READS_FACT: dict[type, tuple[str, ValueTest, bool]] = {
    # predicate type: (attribute holding the fact's path, test of the value, needs a value)
    Compare: ("path", _compare, True),
    IsBool: ("path", _is_bool, True),
    IsGiven: ("path", _is_given, False),
    NameIn: ("path", _name_in, True),
    InGroup: ("path", _in_group, True),
    EccnIn: ("path", _eccn_in, True),
    AnyEccnIn: ("path", _any_eccn_in, True),
    ContainsAny: ("path", _contains_any, True),
    IsEmpty: ("path", _is_empty, True),
    Exists: ("over", _exists, True),
}

_DISPATCH: dict[type, Callable[[Any, Context, Any, str], Result]] = {
    Ref: _ref,
    Assertion: _assertion,
    ParamTrue: _param_true,
    ListedBy: _listed_by,
    ListedIn: _listed_in,
    UnknownLeaf: _unknown_leaf,
    Const: _const,
}


Evaluator = Callable[[Context, Any, str], Result]
_COMPILED: dict[int, tuple[Pred, Evaluator]] = {}


def _compiled(pred: Pred) -> Evaluator:
    """The predicate as a closure (built once per predicate object): composite nodes call
    their children directly instead of dispatching on type at every evaluation."""
    hit = _COMPILED.get(id(pred))
    if hit is not None and hit[0] is pred:
        return hit[1]
    fn = _build(pred)
    _COMPILED[id(pred)] = (pred, fn)
    return fn


def _build(pred: Pred) -> Evaluator:
    if isinstance(pred, (All, AnyOf)):
        kids = tuple(_compiled(p) for p in pred.items)
        stop = pred.__class__ is AnyOf  # any: stop at True; all: stop at False

        def combine(ctx: Context, scope: Any, prefix: str) -> Result:
            unknowns: list[Unknown] = []
            undecided = False
            for kid in kids:
                value, unk = kid(ctx, scope, prefix)
                if value is stop:
                    return TRUE if stop else FALSE
                if value is None:
                    undecided = True
                    unknowns.extend(unk)
            if undecided:
                return (None, tuple(unknowns))
            return FALSE if stop else TRUE

        return combine
    if isinstance(pred, Not):
        inner = _compiled(pred.item)
        return lambda ctx, scope, prefix: negate(inner(ctx, scope, prefix))
    reads = _READS_FACT.get(type(pred))
    if reads is not None:
        return _leaf(pred, *reads)
    return partial(_DISPATCH[type(pred)], pred)


def _leaf(pred: Pred, attr: str, test: ValueTest, needs_value: bool) -> Evaluator:
    """A test of one fact, with the fact's path split once and read inline. A fact that is
    not given is unknown (recorded as such) unless the test is about givenness itself."""
    at_root, rel, parts = _PATHS.get(getattr(pred, attr)) or _path(getattr(pred, attr))
    first, rest = parts[0], parts[1:]

    def leaf(ctx: Context, scope: Any, prefix: str) -> Result:
        if at_root:
            scope, full = ctx.root, rel
        else:
            full = f"{prefix}.{rel}" if prefix else rel
        value = scope.get(first) if isinstance(scope, dict) else None
        for part in rest:
            if value is None:
                break
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            ctx.reads.facts[full] = None
            if needs_value:
                return (None, (Unknown(full, None, ctx.rule),))
            return test(pred, ctx, MISSING, full)
        ctx.reads.facts[full] = value
        return test(pred, ctx, value, full)

    return leaf


compiled = _compiled
"""The predicate as an evaluator ``(ctx, scope, prefix) -> Result`` (built once)."""
