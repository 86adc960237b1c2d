"""Plain-text reports a compliance officer can read and file."""

from __future__ import annotations

import textwrap
from typing import Any

_OUTCOME_WORDS = {
    "license_required": "LICENCE REQUIRED",
    "no_license_required": "no licence required",
    "not_subject": "not subject to this regime",
    "undetermined": "UNDETERMINED - open questions below",
}


def _wrap(text: str, indent: str, width: int = 100) -> list[str]:
    return textwrap.wrap(str(text), width=width, initial_indent=indent,
                         subsequent_indent=indent + "  ") or [indent]


def _fmt_value(v: Any) -> str:
    if v is None:
        return "unknown"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]" if v else "[] (none)"
    return str(v)


def render_determination(d: dict[str, Any]) -> str:
    lines: list[str] = []
    title = f"Determination {d.get('id') or '(no id)'} - as of {d['as_of']}"
    lines += [title, "=" * len(title)]
    lines.append(f"Overall outcome: {_OUTCOME_WORDS[d['outcome']]}")
    lines.append(f"Rules version {d['rules_version']}; engine {d.get('engine_version', '?')}")
    for code, j in d["jurisdictions"].items():
        lines += ["", f"{code}: {_OUTCOME_WORDS[j['outcome']]}"]
        subject = {True: "yes", False: "no", None: "not yet decided"}[j.get("subject")]
        lines.append(f"  Subject to the regime: {subject}")
        for ref in j.get("basis", []):
            lines += _wrap(f"- {ref['rule']}: {ref['why']} [{ref['citation']}]", "    ")
        reqs = j.get("license_requirements", [])
        if reqs:
            lines.append("  Licence requirements:")
            for ref in reqs:
                policy = ref.get("review_policy") or "review policy not stated"
                lines += _wrap(f"- {ref['rule']} ({policy}): {ref['why']} [{ref['citation']}]",
                               "    ")
        for exc in j.get("license_exceptions", []):
            lines += _wrap(f"- licence exception {exc.get('exception', '?')}: "
                           f"{exc.get('why', '')}", "    ")
        missing = j.get("missing_facts", [])
        if missing:
            lines.append("  Open questions (answer these before relying on the outcome):")
            for i, m in enumerate(missing, 1):
                rules = f" (decides {', '.join(m['rules'])})" if m.get("rules") else ""
                lines += _wrap(f"{i}. [{m['field']}] {m['question']}{rules}", "    ")
        lines.append("  Rules applied (trace):")
        for step in j.get("trace", []):
            head = f"- {step['rule']}"
            if step.get("citation"):
                head += f" [{step['citation']}]"
            if step.get("question"):
                head += f" {step['question']}"
            lines += _wrap(f"{head} -> {step['result']}", "    ")
            facts = step.get("facts")
            if facts:
                shown = "; ".join(f"{k} = {_fmt_value(v)}" for k, v in facts.items())
                lines += _wrap(f"facts read: {shown}", "        ")
            for t in step.get("thresholds", []):
                lines += _wrap(f"used: {t['parameter']} = {_fmt_value(t['value'])} "
                               f"[{t['citation']}]", "        ")
            if step.get("working_position"):
                lines += _wrap(f"working position: {step['working_position']}", "        ")
            if step.get("note"):
                lines += _wrap(f"note: {step['note']}", "        ")
    return "\n".join(lines) + "\n"
