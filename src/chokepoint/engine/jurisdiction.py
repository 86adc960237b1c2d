"""One regime's answer: is the item subject, is a licence required, and why.

The regime's provisions come in roles: *subject routes* (any one reaches the item),
*licence requirements* (any one requires a licence), *exclusions* (each names the
rules it takes away, with a declared precedence) and *definitions* (used by ``ref``).
A rule's effect is ``base AND NOT (any exclusion)``, all in three-valued logic.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from chokepoint.engine.evaluate import Context, Reads, evaluate
from chokepoint.engine.logic import FALSE, TV, Result, Unknown, negate
from chokepoint.engine.questions import missing_facts
from chokepoint.rules.model import Provision, Regime
from chokepoint.rules.ruleset import Snapshot

_RESULT_WORDS = {
    "subject_route": {
        True: "applies: the item is subject to the regime on this route",
        False: "does not apply",
        None: "cannot be decided yet",
    },
    "licence_requirement": {
        True: "a licence is required under this paragraph",
        False: "requires no licence here",
        None: "cannot be decided yet",
    },
    "exclusion": {
        True: "applies: it takes away {targets}",
        False: "does not apply",
        None: "cannot be decided yet",
    },
    "definition": {True: "is met", False: "is not met", None: "cannot be decided yet"},
}


def natural_key(rule_id: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.findall(r"\d+|[A-Za-z]+", rule_id)]


class RegimeEvaluation:
    """Evaluates one regime's provisions for one transaction on one day."""

    def __init__(self, regime: Regime, snap: Snapshot, txn: dict[str, Any],
                 assertions: frozenset[str]) -> None:
        self.regime = regime
        self.snap = snap
        self.txn = txn
        self.steps: list[dict[str, Any]] = []
        self._done: dict[str, Result] = {}
        self.ctx = Context(snap=snap, root=txn, assertions=assertions, on_ref=self._ref_step)

    # -- steps -------------------------------------------------------------------------
    def _step(self, prov: Provision, result: Result, reads: Reads | None,
              note: str | None = None) -> None:
        version = prov.version_on(self.snap.on)
        value, unknowns = result
        words = _RESULT_WORDS[prov.role][value]
        if prov.role == "exclusion" and value is True:
            words = words.format(targets=", ".join(prov.excludes))
        if value is None:
            fields = list(dict.fromkeys(u.field for u in unknowns))
            words += ": it turns on " + ", ".join(fields)
        step: dict[str, Any] = {
            "rule": prov.id,
            "role": prov.role,
            "question": prov.title,
            "provision": prov.explain,
            "result": words,
        }
        if version is not None:
            c = version.citation
            step["citation"] = c.short()
            step["version_in_force_from"] = version.from_.isoformat()
            step["evidence"] = c.evidence
            if c.working_position:
                step["working_position"] = (
                    f"not verified against the regulation text (evidence: {c.evidence})"
                    + (f"; {c.note}" if c.note else ""))
            if version.note:
                step["note"] = version.note
        else:
            first = prov.versions[0].from_
            step["citation"] = prov.versions[0].citation.short()
            step["result"] = (f"not in force on {self.snap.on.isoformat()}"
                              + (f" (in force from {first.isoformat()})"
                                 if self.snap.on < first else " (no longer in force)"))
        if note:
            step["note"] = (step.get("note", "") + " " + note).strip()
        if reads is not None:
            if reads.facts:
                step["facts"] = dict(reads.facts)
            if reads.thresholds:
                step["thresholds"] = list(reads.thresholds.values())
            if reads.refs:
                step["uses"] = list(dict.fromkeys(reads.refs))
        self.steps.append(step)

    def _ref_step(self, rule: str, result: Result, reads: Reads) -> None:
        self._step(self.snap.rules.provisions[rule], result, reads)

    # -- evaluation ----------------------------------------------------------------------
    def base(self, prov: Provision) -> Result:
        version = prov.version_on(self.snap.on)
        if version is None or version.predicate is None:
            self._step(prov, FALSE, None,
                       None if version is None else "the provision does not operate "
                       "in this version")
            return FALSE
        self.ctx.rule, self.ctx.reads = prov.id, Reads()
        result = evaluate(version.predicate, self.ctx)
        self._step(prov, result, self.ctx.reads)
        return result

    def effective(self, prov: Provision) -> Result:
        """The rule's effect after its exclusions (memoised per determination)."""
        if prov.id in self._done:
            return self._done[prov.id]
        result = self.base(prov)
        if result[0] is not False:
            for excl in self.snap.rules.exclusions_of(prov.id):
                ex_value, ex_unknowns = self.effective(excl)
                if ex_value is True:
                    result = FALSE
                    break
                if ex_value is None:
                    result = _and(result, negate((None, ex_unknowns)))
        self._done[prov.id] = result
        return result

    def provisions(self, role: str) -> list[Provision]:
        found = self.snap.rules.of_regime(self.regime.code, role)
        return sorted(found, key=lambda p: natural_key(p.id))


def _and(a: Result, b: Result) -> Result:
    if a[0] is False or b[0] is False:
        return FALSE
    if a[0] is True and b[0] is True:
        return a
    return (None, a[1] + b[1])


def _or(results: list[Result]) -> Result:
    unknowns: list[Unknown] = []
    undecided = False
    for value, unk in results:
        if value is True:
            return (True, ())
        if value is None:
            undecided = True
            unknowns.extend(unk)
    return (None, tuple(unknowns)) if undecided else FALSE


def _ref(prov: Provision, snap: Snapshot, review_policy: str | None = None) -> dict[str, Any]:
    version = prov.version_on(snap.on)
    assert version is not None
    ref: dict[str, Any] = {
        "rule": prov.id,
        "citation": version.citation.short(),
        "why": prov.explain,
        "evidence": version.citation.evidence,
    }
    if prov.role == "licence_requirement":
        ref["review_policy"] = review_policy or version.review_policy
    return ref


def evaluate_regime(regime: Regime, snap: Snapshot, txn: dict[str, Any],
                    assertions: frozenset[str], pre_steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The contract's ``jurisdiction`` object for one regime."""
    on = snap.on
    ev = RegimeEvaluation(regime, snap, txn, assertions)
    ev.steps.extend(pre_steps)
    templates = snap.rules.questions
    if on < regime.coverage_from:
        return {
            "outcome": "undetermined",
            "subject": None,
            "basis": [],
            "license_requirements": [],
            "license_exceptions": [],
            "missing_facts": [{
                "field": "date",
                "question": f"chokepoint encodes the {regime.title} from "
                            f"{regime.coverage_from.isoformat()}; {on.isoformat()} is earlier. "
                            "Determine this transaction by hand or choose a later date.",
                "rules": [],
            }],
            "trace": ev.steps,
        }

    routes = ev.provisions("subject_route")
    route_results = [(p, ev.effective(p)) for p in routes]
    subject: Result = _or([r for _, r in route_results])

    requirements: list[tuple[Provision, Result]] = []
    licence: Result = FALSE
    if subject[0] is not False:
        requirements = [(p, ev.effective(p)) for p in ev.provisions("licence_requirement")]
        licence = _or([r for _, r in requirements])

    outcome, unknowns = _outcome(subject[0], licence[0], subject[1], licence[1])
    return {
        "outcome": outcome,
        "subject": subject[0],
        "basis": [_ref(p, snap) for p, r in route_results if r[0] is True],
        "license_requirements": [_ref(p, snap) for p, r in requirements if r[0] is True],
        "license_exceptions": [],
        "missing_facts": missing_facts(list(unknowns), templates, txn),
        "trace": ev.steps,
    }


def _outcome(subject: TV, licence: TV, subject_unknowns: tuple[Unknown, ...],
             licence_unknowns: tuple[Unknown, ...]) -> tuple[str, tuple[Unknown, ...]]:
    """Combine the two questions; never 'no licence' while a deciding fact is unknown."""
    if subject is False:
        return "not_subject", ()
    if licence is False:
        # Whether or not the item is subject, no provision requires a licence.
        return "no_license_required", ()
    if subject is True and licence is True:
        return "license_required", ()
    return "undetermined", (subject_unknowns if subject is None else ()) + (
        licence_unknowns if licence is None else ())


def stale_files(snap: Snapshot, regime: str, on: date) -> list[dict[str, Any]]:
    """Trace warnings for rule files of a regime evaluated past their review horizon."""
    out = []
    prefix = regime.lower() + "/"
    for info in snap.rules.file_info:
        if info.path.startswith(prefix) and info.stale_on(on):
            out.append({
                "rule": f"{regime}:review",
                "role": "warning",
                "result": f"rule data in {info.path} was last reviewed on "
                          f"{info.last_reviewed.isoformat()}; for {on.isoformat()}, past its "
                          f"{info.review_horizon_days}-day review horizon, later amendments "
                          "may be missing",
            })
    return out
