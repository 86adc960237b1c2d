"""``chokepoint`` - the command line (see shared/contract/README.md)."""

from __future__ import annotations

import json
import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from chokepoint.cli.report import render_determination
from chokepoint.contract import InputError, read_transactions
from chokepoint.engine import determine
from chokepoint.engine.determine import as_of
from chokepoint.rules.loader import RuleLoadError, default_rules

app = typer.Typer(
    name="chokepoint",
    help="Export controls on advanced AI chips and chipmaking tools, as cited, dated rules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_FILES_HELP = "YAML or JSON files, each holding one transaction or a list of them."
_DATE_HELP = "Apply the rules in force on this date (YYYY-MM-DD) to every transaction."


class Format(StrEnum):
    json = "json"
    text = "text"


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"chokepoint: {message}", err=True)
    return typer.Exit(code)


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _fail(f"--date: not a date (YYYY-MM-DD): {value!r}", 2) from exc


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help=_FILES_HELP)],
    format: Annotated[Format, typer.Option("--format", help="json or text")] = Format.text,
    on: Annotated[str | None, typer.Option("--date", help=_DATE_HELP)] = None,
) -> None:
    """Determine, per jurisdiction, whether each transaction needs a licence, and why."""
    override = _parse_date(on)
    try:
        transactions = [t for f in files for t in read_transactions(f)]
        rules = default_rules()
    except InputError as exc:
        raise _fail(str(exc), 2) from exc
    except RuleLoadError as exc:
        raise _fail(f"rule data: {exc}", 1) from exc
    today = date.today()
    results = [determine(t, rules, as_of(t, override, today)) for t in transactions]
    if format is Format.json:
        sys.stdout.write(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("\n".join(render_determination(d) for d in results))


@app.command("test")
def run_tests(
    paths: Annotated[list[Path], typer.Argument(help="YAML test-case files or folders.")],
) -> None:
    """Run YAML rule test cases; exit 1 if any fails."""
    from chokepoint.testcases import collect, run_case

    try:
        cases = collect(paths)
    except InputError as exc:
        raise _fail(str(exc), 2) from exc
    rules = default_rules()
    failed = 0
    for case in cases:
        problems = run_case(case, rules)
        if problems:
            failed += 1
            typer.echo(f"FAIL {case.source}: {case.name}", err=True)
            for p in problems:
                typer.echo(f"     {p}", err=True)
    typer.echo(f"{len(cases) - failed} passed, {failed} failed")
    raise typer.Exit(1 if failed else 0)


def main() -> None:  # pragma: no cover - console entry
    app()
