"""Rule-change impact: what changed in the rules between two dates, and which orders it moves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

from chokepoint.engine.determine import apply_aliases, resolve_parties
from chokepoint.rules.predicate import FactReads, data_reads, fact_reads
from chokepoint.rules.ruleset import RuleSet
from chokepoint.screening.service import determine_screened as determine
from chokepoint.screening.service import screen_parties, screener_for


def _changes(kind: str, ident: str, title: str, versions: list[Any], d1: date,
             d2: date) -> list[dict[str, Any]]:
    out = []
    for v in versions:
        if d1 < v.from_ <= d2:
            out.append({"kind": kind, "id": ident, "title": title, "change": "takes effect",
                        "on": v.from_.isoformat(), "citation": v.citation.short(),
                        "evidence": v.citation.evidence})
        if v.ends is not None and d1 < v.ends <= d2:
            out.append({"kind": kind, "id": ident, "title": title, "change": "ends",
                        "on": v.ends.isoformat(), "citation": v.citation.short(),
                        "evidence": v.citation.evidence})
    return out


def rule_changes(rules: RuleSet, d1: date, d2: date) -> list[dict[str, Any]]:
    """Every dated rule value that takes effect or ends after ``d1`` and on or before ``d2``."""
    found: list[dict[str, Any]] = []
    for pid, prov in rules.provisions.items():
        found += _changes("provision", pid, prov.title, list(prov.versions), d1, d2)
    for pid, param in rules.parameters.items():
        found += _changes("parameter", pid, param.title, list(param.versions), d1, d2)
    for name, group in rules.groups.items():
        found += _changes("country_group", name, group.title, list(group.versions), d1, d2)
    for regime, entries in rules.entities.items():
        for e in entries:
            found += _changes("entity_list_entry", f"{regime}:{e.id}", e.name,
                              list(e.versions), d1, d2)
    return sorted(found, key=lambda c: (c["on"], c["kind"], c["id"]))


Deciding = dict[str, tuple[str, frozenset[str], frozenset[str]]]
"""Per regime that reaches an order: its outcome, deciding rules and review policies
("" for a licence requirement without one)."""


def deciding(d: dict[str, Any]) -> Deciding:
    """What decides a determination, per regime (:data:`Deciding`)."""
    out = {}
    for code, j in d["jurisdictions"].items():
        rules = frozenset([b["rule"] for b in j["basis"]]
                          + [r["rule"] for r in j["license_requirements"]])
        policies = frozenset(r.get("review_policy") or "" for r in j["license_requirements"])
        out[code] = (j["outcome"], rules, policies)
    return out


def missing_fields(d: dict[str, Any]) -> set[str]:
    """The facts a determination asks for, as "REGIME:field"."""
    return {f"{code}:{m['field']}" for code, j in d["jurisdictions"].items()
            for m in j["missing_facts"]}


UNEXPLAINED = "(a change in rule data the row reads)"
Entries = Callable[[], frozenset[str]]
"""An order's parties' Entity List entries on either date (:func:`party_entries`), found
only when asked."""
Explain = Callable[[set[str], set[str], Entries, set[str]], list[str]]
"""The causes of a move, from the rules that decide the moved regimes, the regimes that
moved, the order's Entity List entries and the facts asked of it on one date only
("REGIME:field") (:func:`causes`)."""


def party_entries(parties: list[dict[str, Any]], rules: RuleSet, on: date) -> frozenset[str]:
    """The Entity List entries ("REGIME:id", as :func:`rule_changes` names them) the
    parties are found under on ``on``, as a determination finds them: screened when their
    designations are unknown, then looked up per regime (engine.determine)."""
    txn: dict[str, Any] = {"parties": parties}
    if any(p.get("designations") is None for p in parties):
        txn, _, _ = screen_parties(txn, screener_for(rules, on), on)
    snap = rules.at(on)
    found: set[str] = set()
    for code in rules.regimes:
        facts, _ = apply_aliases(txn, snap, code)
        _, entries, _ = resolve_parties(facts, snap, code)
        found |= {f"{code}:{e['entry_id']}" for e in entries.values()}
    return frozenset(found)


def causes(rules: RuleSet, changes: list[dict[str, Any]]) -> Explain:
    """What explains a moved order, from the rules that decide its regimes' answers on
    either date (``touched``), in this order, the first that names a rule change: the
    changes among those rules; among the exclusions that qualify them (all the way down);
    among the parameters and country groups they and their exclusions read, and the Entity
    List entries of the order's parties in the regimes that moved; among the provisions of
    those regimes that changed and read a fact asked of the order on one date and not the
    other (a new rule that asks what the order does not say). Failing all,
    :data:`UNEXPLAINED`. (Not the provisions the deciding rules refer to: those bring in
    whole other branches of the rules - an Entity List requirement refers to the foreign
    direct product rules - and would name changes that did not move the order.)"""
    changed = {c["id"] for c in changes}
    memo: dict[str, list[frozenset[str]]] = {}

    def levels(pid: str) -> list[frozenset[str]]:
        if pid not in memo:
            qualified, todo = {pid}, [pid]
            while todo:  # the rule and its exclusions, theirs too
                found = [e.id for e in rules.exclusions_of(todo.pop())]
                todo += [e for e in found if e not in qualified]
                qualified.update(found)
            reads: set[str] = set()
            for q in qualified:
                prov = rules.provisions.get(q)
                for v in prov.versions if prov is not None else ():
                    if v.predicate is not None:
                        reads |= data_reads(v.predicate)
                    for cp in v.review_policies:
                        reads |= data_reads(cp.when)
            data = {r for r in reads if r not in rules.provisions}
            memo[pid] = [frozenset({pid} & changed), frozenset(qualified & changed),
                         frozenset(data & changed)]
        return memo[pid]

    # per regime, its changed provisions that can ask a fact (a licence exception's
    # conditions are reported with it, never asked: determinations say so)
    readers: dict[str, list[tuple[str, FactReads]]] = {}
    for pid in sorted(changed & set(rules.provisions)):
        prov = rules.provisions[pid]
        if prov.role == "licence_exception":
            continue
        reads = FactReads(set(), {}, False, set())
        for v in prov.versions:
            if v.predicate is not None:
                reads.merge(fact_reads(v.predicate))
        readers.setdefault(prov.regime, []).append((pid, reads))

    def explain(touched: set[str], regimes: set[str], entries: Entries,
                asked: set[str]) -> list[str]:
        found = [levels(r) for r in sorted(touched)]
        hits: set[str] = set()
        for level in range(3):
            hits = set().union(*(f[level] for f in found)) if found else set()
            if level == 2:  # (the order's own list entries: asked for only now)
                hits |= {e for e in entries() & changed if e.split(":")[0] in regimes}
            if hits:
                return sorted(hits)
        for field in asked:
            code = field.split(":")[0]
            if code in regimes:
                hits |= asking(code, field[len(code) + 1:])
        return sorted(hits) or [UNEXPLAINED]

    asks: dict[tuple[str, str], frozenset[str]] = {}

    def asking(code: str, field: str) -> frozenset[str]:
        """The regime's changed provisions that read ``field`` (once per field)."""
        found = asks.get((code, field))
        if found is None:
            found = asks[(code, field)] = frozenset(
                pid for pid, reads in readers.get(code, ()) if reads_field(reads, field))
        return found

    return explain


def reads_field(reads: FactReads, field: str) -> bool:
    """Whether a provision reading ``reads`` reads the fact a missing-fact ``field`` names
    ("item.eccn", "parties[0].designations")."""
    if "[" in field:  # a list element's key: "parties[0].designations"
        name, _, rest = field.partition("[")
        key = rest.partition("].")[2].split(".")[0]
        return key in reads.lists.get(name, set()) or name in reads.paths
    return any(field == p or field.startswith(p + ".") or p.startswith(field + ".")
               for p in reads.paths)


def moved_row(row: int, ident: str | None, outcome: tuple[str, str], a: Deciding,
              b: Deciding, explain: Explain, entries: Entries,
              asked: set[str]) -> dict[str, Any] | None:
    """A report's entry for an order whose deciding answers are ``a`` on the earlier date
    and ``b`` on the later (None when they are the same), its cause as ``explain`` (from
    :func:`causes`) finds it from the deciding rules of the regimes that moved, the
    order's Entity List entries (``entries``) and the facts asked of it on one date only
    (``asked``, "REGIME:field")."""
    if a == b:
        return None
    moved: dict[str, Any] = {"row": row, "id": ident,
                             "outcome": {"from": outcome[0], "to": outcome[1]}, "regimes": {}}
    touched: set[str] = set()
    for code in sorted(set(a) | set(b)):
        if a.get(code) == b.get(code):
            continue
        old = a.get(code, ("does_not_apply", frozenset(), frozenset()))
        new = b.get(code, ("does_not_apply", frozenset(), frozenset()))
        moved["regimes"][code] = {
            "outcome": {"from": old[0], "to": new[0]},
            "rules_added": sorted(new[1] - old[1]), "rules_removed": sorted(old[1] - new[1]),
            "review_policy": {"from": sorted(old[2]), "to": sorted(new[2])}}
        touched |= old[1] | new[1]
    moved["caused_by"] = explain(touched, set(moved["regimes"]), entries, asked)
    return moved


def impact_report(rules: RuleSet, d1: date, d2: date, changes: list[dict[str, Any]],
                  rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The impact report: the rule changes, the moved orders (:func:`moved_row`, in book
    order) and the orders grouped by cause."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for moved in rows:
        groups[", ".join(moved["caused_by"])].append(moved)
    return {"from": d1.isoformat(), "to": d2.isoformat(), "rules_version": rules.content_hash,
            "rule_changes": changes, "changed_rows": rows,
            "by_cause": {k: [r["id"] or r["row"] for r in v] for k, v in groups.items()}}


def order_impact(transactions: list[dict[str, Any]], rules: RuleSet, d1: date, d2: date,
                 numbers: list[int] | None = None,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Rows whose outcome, deciding rules or review policy change from ``d1`` to ``d2``,
    grouped by the rule change that explains it. ``numbers`` are the transactions' row
    numbers (by default 1, 2, ...) when they are a selection from a larger book;
    ``progress`` is told how many transactions are done, now and then."""
    changes = rule_changes(rules, d1, d2)
    explain = causes(rules, changes)
    rows = []
    for i, txn in enumerate(transactions):
        before, after = determine(txn, rules, d1), determine(txn, rules, d2)
        parties = txn.get("parties") or []

        def entries(parties: list[dict[str, Any]] = parties) -> frozenset[str]:
            return party_entries(parties, rules, d1) | party_entries(parties, rules, d2)

        moved = moved_row(numbers[i] if numbers else i + 1, txn.get("id"),
                          (before["outcome"], after["outcome"]), deciding(before),
                          deciding(after), explain, entries,
                          missing_fields(before) ^ missing_fields(after))
        if moved is not None:
            rows.append(moved)
        if progress is not None and (i + 1) % 100 == 0:
            progress(i + 1)
    if progress is not None:
        progress(len(transactions))
    return impact_report(rules, d1, d2, changes, rows)


def render_changes(changes: list[dict[str, Any]], d1: date, d2: date) -> str:
    lines = [f"Rule changes after {d1.isoformat()} up to {d2.isoformat()}: {len(changes)}"]
    for c in changes:
        lines.append(f"  {c['on']} {c['change']:12s} {c['kind']:18s} {c['id']} - {c['title']} "
                     f"[{c['citation']}]")
    return "\n".join(lines) + "\n"


def render_impact(report: dict[str, Any]) -> str:
    lines = [render_changes(report["rule_changes"], date.fromisoformat(report["from"]),
                            date.fromisoformat(report["to"])).rstrip(),
             "", f"Orders that change: {len(report['changed_rows'])}"]
    for cause, ids in report["by_cause"].items():  # (each order's line names its causes)
        lines.append(f"  caused by {cause}: {len(ids)} order(s)")
    for r in report["changed_rows"]:
        name = f"{r['id']} (row {r['row']})" if r["id"] else f"row {r['row']}"
        lines.append(f"  {name}: {r['outcome']['from']} -> {r['outcome']['to']}"
                     f"  [caused by {', '.join(r['caused_by'])}]")
        for code, ch in r["regimes"].items():
            lines.append(f"      {code}: " + "; ".join(_regime_move(ch)))
    return "\n".join(lines) + "\n"


def _regime_move(ch: dict[str, Any]) -> list[str]:
    """What moved in one regime's answer, in words: the outcome, the deciding rules added
    and removed, and the review policies when they changed."""
    out = [f"{ch['outcome']['from']} -> {ch['outcome']['to']}"]
    if ch["rules_added"]:
        out.append("rules added " + ", ".join(ch["rules_added"]))
    if ch["rules_removed"]:
        out.append("rules removed " + ", ".join(ch["rules_removed"]))
    # (the policies of the requirements that apply; one without a policy shows in its
    # rules added or removed)
    before, after = ([p for p in ch["review_policy"][end] if p] for end in ("from", "to"))
    if before != after:
        out.append(f"review policy {', '.join(before) or NO_POLICY} -> "
                   f"{', '.join(after) or NO_POLICY}")
    return out


def impact_summary(rules: RuleSet, d1: date, d2: date, counts: dict[str, int],
                   out: Any) -> dict[str, Any]:
    """An impact report whose moved orders are in the table ``out``: the rule changes and
    how many orders each cause moves (``counts``, in the report's order of causes)."""
    return {"from": d1.isoformat(), "to": d2.isoformat(), "rules_version": rules.content_hash,
            "rule_changes": rule_changes(rules, d1, d2),
            "changed_row_count": sum(counts.values()), "changed_rows_file": str(out),
            "by_cause_count": counts}


def render_impact_summary(summary: dict[str, Any]) -> str:
    """:func:`impact_summary` as text."""
    lines = [render_changes(summary["rule_changes"], date.fromisoformat(summary["from"]),
                            date.fromisoformat(summary["to"])).rstrip(),
             "", f"Orders that change: {summary['changed_row_count']} (one row each in "
                 f"{summary['changed_rows_file']})"]
    for cause, n in summary["by_cause_count"].items():
        lines.append(f"  caused by {cause}: {n} order(s)")
    return "\n".join(lines) + "\n"


NO_POLICY = "(none)"
"""A licence requirement without a review policy, in a table's policy cells."""
REGIME_CELLS = ("outcome_from", "outcome_to", "rules_added", "rules_removed",
                "review_policy_from", "review_policy_to")
"""A regime's cells in a table of moved orders, each as ``<REGIME>_<cell>``."""


def changed_row_columns(regimes: list[str]) -> list[str]:
    """The columns of a table of moved orders (:func:`changed_row_cells`)."""
    return ["row", "id", "outcome_from", "outcome_to", "caused_by",
            *(f"{code}_{cell}" for code in regimes for cell in REGIME_CELLS)]


def changed_row_cells(moved: dict[str, Any], regimes: list[str]) -> dict[str, Any]:
    """One moved order (:func:`moved_row`) as a table row: lists joined by ";", a regime's
    cells empty where its answer did not change."""
    row: dict[str, Any] = {"row": moved["row"], "id": moved["id"] or "",
                           "outcome_from": moved["outcome"]["from"],
                           "outcome_to": moved["outcome"]["to"],
                           "caused_by": ";".join(moved["caused_by"])}
    for code in regimes:
        ch = moved["regimes"].get(code)
        cells = ("", "", "", "", "", "") if ch is None else (
            ch["outcome"]["from"], ch["outcome"]["to"], ";".join(ch["rules_added"]),
            ";".join(ch["rules_removed"]),
            *(";".join(p or NO_POLICY for p in ch["review_policy"][end])
              for end in ("from", "to")))
        for name, value in zip(REGIME_CELLS, cells, strict=True):
            row[f"{code}_{name}"] = value
    return row
