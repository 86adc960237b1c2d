"""One regime's answer: is the item subject, is a licence required, and why.

The regime's provisions come in roles: *subject routes* (any one reaches the item),
*licence requirements* (any one requires a licence), *exclusions* (each names the rules
it takes away, with a declared precedence), *definitions* (used by ``ref``) and *licence
exceptions* (reported as possibly available, never applied silently). A rule's effect is
``base AND NOT (any exclusion naming it)``, all in three-valued logic.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from chokepoint.engine.evaluate import Context, Reads, compiled
from chokepoint.engine.logic import FALSE, TV, Result, Unknown, negate
from chokepoint.engine.policy import review_policy
from chokepoint.engine.questions import missing_facts, question_for
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
    "licence_exception": {
        True: "may be available, if its conditions are met",
        False: "is not available",
        None: "may be available; its scope turns on open facts",
    },
}


class RegimeEvaluation:
    """Evaluates one regime's provisions for one transaction on one day."""

    def __init__(self, regime: Regime, snap: Snapshot, txn: dict[str, Any],
                 assertions: frozenset[str], entries: dict[int, dict[str, Any]]) -> None:
        self.regime = regime
        self.snap = snap
        self.txn = txn
        self.entries = entries
        self.steps: list[dict[str, Any]] = []
        self._done: dict[str, Result] = {}
        self.ctx = Context(snap=snap, root=txn, assertions=assertions, resolve=self._resolve)
        self._static = snap.memo("steps")
        self._fns = snap.memo("compiled")  # rule id -> (version in force, its evaluator)

    # -- steps -------------------------------------------------------------------------
    def _step(self, prov: Provision, result: Result, reads: Reads | None,
              note: str | None = None) -> None:
        value, unknowns = result
        static = self._static.get(prov.id)
        if static is None:
            static = self._static[prov.id] = self._static_step(prov)
        step = dict(static)
        if "result" not in step:
            words = _RESULT_WORDS[prov.role][value]
            if value is None:
                words += ": it turns on " + ", ".join(dict.fromkeys(u.field for u in unknowns))
            elif value is True and prov.role == "exclusion":
                words = words.format(targets=", ".join(prov.excludes))
            step["result"] = words
        if note:
            step["note"] = (step.get("note", "") + " " + note).strip()
        if reads is not None:
            if reads.facts:
                step["facts"] = reads.facts
            if reads.thresholds:
                step["thresholds"] = list(reads.thresholds.values())
            if reads.refs:
                step["uses"] = list(dict.fromkeys(reads.refs))
        self.steps.append(step)

    def _static_step(self, prov: Provision) -> dict[str, Any]:
        """The parts of a trace step that depend only on the provision and the day."""
        version = self.snap.version(prov)
        step: dict[str, Any] = {
            "rule": prov.id,
            "role": prov.role,
            "question": prov.title,
            "provision": prov.explain,
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
            elif c.note:
                step["note"] = c.note
            if version.note:
                step["note"] = (step.get("note", "") + " " + version.note).strip()
        elif not prov.versions:  # a scenario repealed it before it ever took effect
            step["result"] = f"not in force on {self.snap.on.isoformat()} (never in force)"
        else:
            first = prov.versions[0].from_
            step["citation"] = prov.versions[0].citation.short()
            step["result"] = (f"not in force on {self.snap.on.isoformat()}"
                              + (f" (in force from {first.isoformat()})"
                                 if self.snap.on < first else " (no longer in force)"))
        return step

    # -- evaluation ----------------------------------------------------------------------
    def base(self, prov: Provision) -> Result:
        entry = self._fns.get(prov.id)
        if entry is None:
            version = self.snap.version(prov)
            pred = None if version is None else version.predicate
            entry = self._fns[prov.id] = (version, None if pred is None else compiled(pred))
        version, fn = entry
        if fn is None:
            self._step(prov, FALSE, None,
                       None if version is None else "the provision does not operate "
                       "in this version")
            return FALSE
        ctx = self.ctx
        outer_rule, outer_reads = ctx.rule, ctx.reads
        ctx.rule, ctx.reads = prov.id, (reads := Reads())
        try:
            result = fn(ctx, ctx.root, "")
        finally:
            ctx.rule, ctx.reads = outer_rule, outer_reads
        self._step(prov, result, reads)
        return result

    def effective(self, prov: Provision) -> Result:
        """The rule's effect after its exclusions (memoised per determination)."""
        done = self._done.get(prov.id)
        if done is not None:
            return done
        # no cycles: RuleSet refuses rule data in which a provision depends on itself
        result = self.base(prov)
        if result[0] is not False:
            for excl in self.snap.rules.exclusions_of(prov.id):
                ex_value, ex_unknowns = self.effective(excl)
                if ex_value is True:
                    result = FALSE
                    break
                if ex_value is None:
                    result = both(result, negate((None, ex_unknowns)))
        self._done[prov.id] = result
        return result

    def seed(self, results: dict[str, Result]) -> None:
        """Provisions whose effect was evaluated elsewhere (on the same facts and day)."""
        self._done.update(results)

    def _resolve(self, rule_id: str) -> Result:
        return self.effective(self.snap.rules.provisions[rule_id])

    def provisions(self, role: str) -> list[Provision]:
        return self.snap.rules.of_regime(self.regime.code, role)

    # -- answers ---------------------------------------------------------------------------
    def requirement_ref(self, prov: Provision) -> dict[str, Any]:
        ref = _ref(prov, self.snap)
        version = prov.version_on(self.snap.on)
        assert version is not None
        ref.update(review_policy(version, self))
        return ref

    def exception_ref(self, prov: Provision, value: TV,
                      unknowns: tuple[Unknown, ...]) -> dict[str, Any]:
        version = prov.version_on(self.snap.on)
        assert version is not None
        out: dict[str, Any] = {
            "exception": prov.title,
            "rule": prov.id,
            "citation": version.citation.short(),
            "why": prov.explain,
            "status": "may be available" if value else "scope not yet decided",
            "conditions": [
                {"assertion": c.assertion, "text": c.text,
                 "asserted": c.assertion in self.ctx.assertions}
                for c in version.conditions],
            "note": "Reported, not applied: the outcome stays as determined until you "
                    "confirm every condition and use the exception.",
        }
        if value is None:
            out["open_questions"] = [
                {"field": u.field, "question": question_for(u, self.snap.rules.questions,
                                                            self.txn)} for u in unknowns]
        return out


def both(a: Result, b: Result) -> Result:
    if a[0] is False or b[0] is False:
        return FALSE
    if a[0] is True and b[0] is True:
        return a
    return (None, a[1] + b[1])


def either(results: list[Result]) -> Result:
    unknowns: list[Unknown] = []
    undecided = False
    for value, unk in results:
        if value is True:
            return (True, ())
        if value is None:
            undecided = True
            unknowns.extend(unk)
    return (None, tuple(unknowns)) if undecided else FALSE


def _ref(prov: Provision, snap: Snapshot) -> dict[str, Any]:
    version = prov.version_on(snap.on)
    assert version is not None
    return {
        "rule": prov.id,
        "citation": version.citation.short(),
        "why": prov.explain,
        "evidence": version.citation.evidence,
    }


def evaluate_regime(regime: Regime, snap: Snapshot, txn: dict[str, Any],
                    assertions: frozenset[str], pre_steps: list[dict[str, Any]],
                    entries: dict[int, dict[str, Any]] | None = None,
                    eccn_questions: list[Unknown] | None = None,
                    ev: RegimeEvaluation | None = None,
                    exceptions_wanted: bool = True,
                    policies_wanted: bool = True) -> dict[str, Any]:
    """The contract's ``jurisdiction`` object for one regime.

    ``ev`` may come with provisions already evaluated (the batch's columnar path evaluates
    each provision once per distinct set of the facts it reads, then combines here);
    ``exceptions_wanted`` false skips the licence exceptions (a flat batch row has none),
    ``policies_wanted`` false the review policies (the columnar path finds them apart).
    """
    on = snap.on
    if ev is None:
        ev = RegimeEvaluation(regime, snap, txn, assertions, entries or {})
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

    route_results = [(p, ev.effective(p)) for p in ev.provisions("subject_route")]
    subject: Result = either([r for _, r in route_results])

    requirements: list[tuple[Provision, Result]] = []
    for p in ev.provisions("licence_requirement"):
        if subject[0] is not False or p.independent_of_subject:
            requirements.append((p, ev.effective(p)))
    dependent = either([r for p, r in requirements if not p.independent_of_subject])
    independent = either([r for p, r in requirements if p.independent_of_subject])

    outcome, unknowns = outcome_of(subject, dependent, independent)
    exceptions = []
    if exceptions_wanted and outcome in ("license_required", "undetermined"):
        for p in ev.provisions("licence_exception"):
            value, unk = ev.effective(p)
            if value is True:
                exceptions.append(ev.exception_ref(p, value, unk))
    return {
        "outcome": outcome,
        "subject": subject[0],
        "basis": [_ref(p, snap) for p, r in route_results if r[0] is True],
        "license_requirements": [ev.requirement_ref(p) if policies_wanted
                                 else _ref(p, snap) for p, r in requirements
                                 if r[0] is True],
        "license_exceptions": exceptions,
        "missing_facts": missing_facts(_expand_eccn(list(unknowns), eccn_questions or []),
                                       templates, txn),
        "trace": ev.steps,
    }


def _expand_eccn(unknowns: list[Unknown], eccn_questions: list[Unknown]) -> list[Unknown]:
    """An unknown ECCN that the specifications would settle is asked as those specs."""
    if not eccn_questions:
        return unknowns
    out: list[Unknown] = []
    for u in unknowns:
        if u.field == "item.eccn":
            out.extend(q._replace(rule=u.rule) for q in eccn_questions)
        else:
            out.append(u)
    return out


def outcome_of(subject: Result, dependent: Result, independent: Result
             ) -> tuple[str, tuple[Unknown, ...]]:
    """Combine the questions; never 'no licence' while a deciding fact is unknown.

    ``dependent`` requirements apply to items subject to the regime; ``independent`` ones
    (activities such as US-person support) apply whether or not the item is subject.
    """
    s, d, i = subject[0], dependent[0], independent[0]
    if i is True or (s is True and d is True):
        return "license_required", ()
    # Whether or not the item is subject, is any licence still possible?
    need_subject = s is None and d is not False
    if i is False and (s is False or d is False):
        return ("not_subject" if s is False else "no_license_required"), ()
    unknowns: tuple[Unknown, ...] = ()
    if need_subject:
        unknowns += subject[1]
    if s is not False and d is None:
        unknowns += dependent[1]
    if i is None:
        unknowns += independent[1]
    return "undetermined", unknowns


def stale_files(snap: Snapshot, regime: str, on: date) -> list[dict[str, Any]]:
    """Trace warnings for rule files of a regime evaluated past their review horizon."""
    cache = snap.memo("stale")
    if regime not in cache:
        cache[regime] = _stale_files(snap, regime, on)
    return list(cache[regime])


def _stale_files(snap: Snapshot, regime: str, on: date) -> list[dict[str, Any]]:
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
