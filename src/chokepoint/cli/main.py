"""``chokepoint`` - the command line (see shared/contract/README.md)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from chokepoint.cli.report import render_determination
from chokepoint.contract import InputError, read_transactions
from chokepoint.engine.determine import as_of
from chokepoint.rules.loader import RuleLoadError, default_rules
from chokepoint.rules.ruleset import RuleSet

if TYPE_CHECKING:
    from chokepoint.batch.run import Summary

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


def _shown(value: object) -> str:
    return "unknown" if value is None else str(value)


def _parse_date(value: str | None, option: str = "--date") -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _fail(f"{option}: not a date (YYYY-MM-DD): {value!r}", 2) from exc


def _inputs(files: list[Path]) -> tuple[list[dict[str, object]], RuleSet]:
    """The transactions of the files (exit 2 naming the bad one) and the rules (exit 1)."""
    try:
        rules = default_rules()
        return [t for f in files for t in read_transactions(f, rules.assertions)], rules
    except InputError as exc:
        raise _fail(str(exc), 2) from exc
    except RuleLoadError as exc:
        raise _fail(f"rule data: {exc}", 1) from exc


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help=_FILES_HELP)],
    format: Annotated[Format, typer.Option("--format", help="json or text")] = Format.text,
    on: Annotated[str | None, typer.Option("--date", help=_DATE_HELP)] = None,
) -> None:
    """Determine, per jurisdiction, whether each transaction needs a licence, and why."""
    override = _parse_date(on)
    transactions, rules = _inputs(files)
    today = date.today()
    from chokepoint.screening.service import determine_screened

    results = [determine_screened(t, rules, as_of(t, override, today)) for t in transactions]
    if format is Format.json:
        sys.stdout.write(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("\n".join(render_determination(d) for d in results))


@app.command()
def classify(
    model: Annotated[str | None, typer.Option(help="Product name (catalogue look-up).")] = None,
    tpp: Annotated[float | None, typer.Option(help="Total processing performance.")] = None,
    tops: Annotated[float | None, typer.Option(help="Peak dense TOPS at --bit-length.")] = None,
    bit_length: Annotated[int | None, typer.Option(help="Bit length of --tops.")] = None,
    die_area: Annotated[float | None, typer.Option(help="Applicable die area, mm2.")] = None,
    datacenter: Annotated[bool | None, typer.Option(
        "--datacenter/--not-datacenter", help="Designed or marketed for datacenters.")] = None,
    interconnect: Annotated[float | None, typer.Option(help="Interconnect, GB/s.")] = None,
    memory_bandwidth: Annotated[float | None, typer.Option(help="DRAM bandwidth, GB/s.")] = None,
    memory_density: Annotated[float | None, typer.Option(
        help="HBM memory bandwidth density, GB/s per mm2.")] = None,
    kind: Annotated[str, typer.Option(help="chip or computer")] = "chip",
    eccn: Annotated[str | None, typer.Option(help="Your own ECCN, to be checked.")] = None,
    on: Annotated[str | None, typer.Option("--date", help=_DATE_HELP)] = None,
    format: Annotated[Format, typer.Option("--format", help="json or text")] = Format.text,
) -> None:
    """Classify a chip from its specifications or model name (3A090 / HBM), with reasoning."""
    from chokepoint.engine.classify import classify_item

    when = _parse_date(on) or date.today()
    figures = {"tpp": tpp, "tops": tops, "bit_length": bit_length, "die_area_mm2": die_area,
               "datacenter": datacenter, "interconnect_bandwidth_gbps": interconnect,
               "memory_bandwidth_gbps": memory_bandwidth,
               "memory_bandwidth_density_gbps_per_mm2": memory_density}
    item: dict[str, object] = {"kind": kind, "chip": {k: v for k, v in figures.items()
                                                      if v is not None}}
    if model:
        item["model"] = model
        if kind == "chip" and not any(v is not None for v in figures.values()):
            del item["kind"]  # let the catalogue say what it is
    if eccn:
        item["eccn"] = eccn
    try:
        result = classify_item(item, default_rules(), when, "US")
    except RuleLoadError as exc:
        raise _fail(f"rule data: {exc}", 1) from exc
    if format is Format.json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return
    lines = [f"Classification as of {result['as_of']}"
             + (f" - {result['model']}" if result["model"] else ""),
             f"ECCN: {result['eccn'] or 'not decided'}",
             f"TPP: {_shown(result['tpp'])}; "
             f"performance density: {_shown(result['performance_density'])}",
             "Reasoning:"]
    for step in result["trace"]:
        lines.append(f"  - {step['rule']}: {step.get('question', '')} -> {step['result']}"
                     + (f" [{step['citation']}]" if step.get("citation") else ""))
    for m in result["missing_facts"]:
        lines.append(f"  ? [{m['field']}] {m['question']}")
    sys.stdout.write("\n".join(lines) + "\n")


@app.command()
def gaps(
    files: Annotated[list[Path], typer.Argument(help=_FILES_HELP)],
    format: Annotated[Format, typer.Option("--format", help="json or text")] = Format.text,
    on: Annotated[str | None, typer.Option("--date", help=_DATE_HELP)] = None,
) -> None:
    """Which regimes (US, NL, JP) catch each transaction, which do not, and why."""
    from chokepoint.gaps import gap_report, render_gaps

    override = _parse_date(on)
    transactions, rules = _inputs(files)
    report = gap_report(transactions, rules, override)
    if format is Format.json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_gaps(report))


lists_app = typer.Typer(help="Restricted-party lists: import official files.",
                        no_args_is_help=True)
app.add_typer(lists_app, name="lists")


@lists_app.command("import")
def lists_import(
    files: Annotated[list[Path], typer.Argument(help="CSL CSV/JSON, OFAC sdn.csv, BIS DPL.")],
    current_on: Annotated[str | None, typer.Option(
        "--current-on", help="The day the files were downloaded or published (YYYY-MM-DD; "
        "default: the day each file was last written). A complete list clears parties of "
        "orders up to that day only.")] = None,
) -> None:
    """Store official list files (with their source and date) for screening."""
    from chokepoint.screening.lists import ListFormatError
    from chokepoint.screening.service import import_list

    day = _parse_date(current_on, "--current-on")
    for f in files:
        try:
            info = import_list(f, current_on=day)
        except ListFormatError as exc:
            raise _fail(str(exc), 2) from exc
        except OSError as exc:
            raise _fail(f"{f}: cannot read: {exc.strerror}", 2) from exc
        typer.echo(f"imported {info['entries']} entries from {info['source_file']} "
                   f"({info['format']}, {'complete list' if info['complete'] else 'partial'}"
                   f", current on {info['current_on']}) -> {info['stored_at']}", err=True)


@app.command()
def screen(
    name: Annotated[str | None, typer.Argument(help="The party name to screen.")] = None,
    country: Annotated[str | None, typer.Option(help="ISO country code of the party.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="CSV of names to screen.")] = None,
    lists: Annotated[list[Path] | None, typer.Option(
        "--list", help="Screen against these list files instead (repeatable).")] = None,
    threshold: Annotated[float, typer.Option(help="Lowest score reported (0..1).")] = 0.75,
    format: Annotated[str, typer.Option("--format", help="json, text or csv")] = "text",
    on: Annotated[str | None, typer.Option("--date", help=_DATE_HELP)] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64, help="Processes for --file (default: every core).")
    ] = os.cpu_count() or 1,
    encoding: Annotated[str | None, typer.Option(
        "--encoding", help="The encoding of the --file CSV, if not UTF-8 (e.g. gbk).")
    ] = None,
) -> None:
    """Screen party names against the Entity List, the CSL, SDN and imported lists."""
    import csv as csv_mod

    from chokepoint.screening.lists import ListFormatError
    from chokepoint.screening.service import Screener

    when = _parse_date(on) or date.today()
    try:
        screener = Screener.for_date(default_rules(), when, lists or None)
    except ListFormatError as exc:
        raise _fail(str(exc), 2) from exc
    queries: list[dict[str, str]] = []
    if file is not None:
        from chokepoint.batch.errors import BatchError
        from chokepoint.batch.run import known_encoding, not_text

        try:
            known_encoding(encoding or "utf-8")
        except BatchError as exc:
            raise _fail(str(exc), 2) from exc
        try:
            with file.open(newline="", encoding=encoding or "utf-8-sig") as fh:
                reader = csv_mod.DictReader(fh)
                if not reader.fieldnames or "name" not in reader.fieldnames:
                    raise _fail(f"{file}: line 1: needs a 'name' column", 2)
                for row in reader:
                    if not (row.get("name") or "").strip():
                        raise _fail(f"{file}: line {reader.line_num}: empty name", 2)
                    queries.append({"id": row.get("id") or "", "name": row["name"],
                                    "country": row.get("country") or ""})
        except UnicodeDecodeError as exc:  # (a name read as the wrong bytes: no match)
            raise _fail(str(not_text(file, encoding, exc)), 2) from exc
        except OSError as exc:
            raise _fail(f"cannot read {file}: {exc}", 2) from exc
    elif name:
        queries.append({"id": "", "name": name, "country": country or ""})
    else:
        raise _fail("give a NAME or --file NAMES.csv", 2)
    from chokepoint.screening.parallel import screen_many

    rows: list[dict[str, Any]] = []
    hits = screen_many(screener.index, [(q["name"], q["country"] or None) for q in queries],
                       threshold, workers=workers)
    for q, found in zip(queries, hits, strict=True):
        rows.extend({"query_id": q["id"], "query": q["name"], **h} for h in found)
    if format == "json":
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    elif format == "csv":
        cols = ["query_id", "query", "list", "entry_id", "name", "matched_name", "score",
                "band", "country", "footnotes"]
        writer = csv_mod.DictWriter(sys.stdout, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "footnotes": "unknown" if r["footnotes"] is None
                             else ";".join(map(str, r["footnotes"]))})
    else:
        if not rows:
            sys.stdout.write("no hit at or above the threshold\n")
        for r in rows:
            sys.stdout.write(
                f"{r['score']:.2f} {r['band']:6s} {r['list']}: {r['name']} "
                f"(matched '{r['matched_name']}'; entry {r['entry_id']}"
                + (f"; footnotes {r['footnotes']}" if r["footnotes"] else
                   "; footnotes not shown by the list" if r["footnotes"] is None else "")
                + ")\n"
                + "".join(f"     {e}\n" for e in r["evidence"])
                + (f"     unmatched: {', '.join(r['unmatched_query_tokens'])}\n"
                   if r["unmatched_query_tokens"] else ""))


_ENCODING_HELP = ("The encoding of a CSV book, if not UTF-8: e.g. gbk or gb18030 (Chinese "
                  "ERP exports), big5, shift_jis, cp1252.")


@app.command()
def batch(
    inp: Annotated[Path, typer.Argument(
        metavar="IN", help="Order book: .csv, .parquet, .jsonl (CSV and JSON Lines may be "
        ".gz or .bz2), or a directory of .csv or .parquet part files, partitioned "
        "(key=value directories) or not, read in the order of their paths")],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Results: .csv, .parquet, .jsonl "
                                        "(CSV and JSON Lines may be .gz or .bz2)")],
    on: Annotated[str | None, typer.Option("--date", help=_DATE_HELP)] = None,
    columns: Annotated[Path | None, typer.Option(
        "--columns", help="YAML map of your column names (and values) to the flat "
        "layout's (docs/batch.md).")] = None,
    encoding: Annotated[str | None, typer.Option(
        "--encoding", help=_ENCODING_HELP)] = None,
    trace: Annotated[bool, typer.Option("--trace", help="Add the full determination.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    engine: Annotated[str, typer.Option(
        "--engine", help="auto (columnar where it can take the run, else local), local "
        "(row by row), columnar (each rule once per distinct set of the facts it reads; "
        "the same rows, for CSV/Parquet without --trace) or spark (local[2])")] = "auto",
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, max=64, help="Processes evaluating rows (local and columnar "
        "engines); output order and crash safety are the same. Default: every core, as "
        "many as the book has blocks for and memory holds (1.5 GB each).")] = None,
    block: Annotated[int | None, typer.Option(
        "--block", min=1000, help="Rows the columnar engine evaluates together (and per "
        "checkpoint); fewer hold less memory, under 1 GB per process at 500,000 "
        "(docs/batch.md). Default: 500,000, or 1,000,000 shared by more than two "
        "--workers.")] = None,
) -> None:
    """Determinations for a whole order book, in input order, with a progress bar."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from chokepoint.batch.columns import read_column_map
    from chokepoint.batch.errors import BatchError
    from chokepoint.batch.parts import read_here
    from chokepoint.batch.run import (
        auto_workers,
        check_batch,
        count_rows,
        layout_warnings,
        pick_engine,
        run_batch,
    )

    override = _parse_date(on)
    # (a directory only Spark reads - one holding files of other names - is not read here)
    if inp.exists() and (engine != "spark" or read_here(inp)):
        try:
            for warning in layout_warnings(inp, columns, encoding):
                typer.echo(f"warning: {warning}", err=True)
        except BatchError as exc:
            raise _fail(str(exc), 2) from exc
    if engine == "spark":
        from chokepoint.spark import run_spark_batch

        if trace or resume:
            raise _fail("--engine spark takes neither --trace nor --resume", 2)
        try:
            mapping = read_column_map(columns)
            with Progress(TextColumn("{task.description}"), BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(),
                          console=Console(stderr=True)) as bar:
                phases: dict[str, TaskID] = {}

                def phase(label: str, done: int, total: int) -> None:
                    if label not in phases:  # (a bar a phase, as it starts)
                        phases[label] = bar.add_task(label, total=total or None)
                    bar.update(phases[label], completed=done, total=total or None)

                summary = run_spark_batch(inp, out, override, mapping=mapping,
                                          encoding=encoding, progress=phase)
        except (ValueError, OSError) as exc:
            raise _fail(str(exc), 2) from exc
        except Exception as exc:  # Spark's own failure: its message, not the JVM's stacks
            from chokepoint.spark import spark_failure

            message = spark_failure(exc)
            if message is None:
                raise
            raise _fail(f"Spark stopped the run (nothing written to {out}):\n{message}",
                        1) from exc
        _closing_lines(summary, out)
        return
    if engine not in ("auto", "local", "columnar"):
        raise _fail("--engine must be auto, local, columnar or spark", 2)
    rules = default_rules()
    kind = {"local": "scalar"}.get(engine, engine)
    try:  # (before the progress bar: a refusal is the only thing printed)
        check_batch(inp, out, rules, override=override, columns=columns, with_trace=trace,
                    resume=resume, engine=kind, encoding=encoding)
        kind, why_not = pick_engine(kind, inp, trace, rules)
    except BatchError as exc:
        raise _fail(str(exc), 2) from exc
    if not resume and out.with_name(out.name + ".checkpoint").exists():
        typer.echo(f"note: an interrupted run left {out.name}.checkpoint; this run starts "
                   "again from row 1 (--resume would have continued it)", err=True)
    try:  # (a text book is read through once for it: 2 s for 10^6 rows of a .csv.gz)
        with Console(stderr=True).status("counting the book's rows", spinner="dots"):
            total = count_rows(inp) if inp.exists() else None
    except OSError as exc:
        raise _fail(f"cannot read {inp}: {exc}", 1) from exc
    processes = workers or auto_workers(kind, total, block)
    if engine == "auto" or workers is None:  # (what was chosen, and why not faster)
        shown = "columnar" if kind == "columnar" else "local, row by row"
        typer.echo(f"engine: {shown}, {processes} process{'es' if processes > 1 else ''}"
                   + (f" (the columnar engine: {why_not})" if why_not else ""), err=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]} rows/s"), TimeRemainingColumn(),
                      console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task("determinations", total=total, rate="-")
            import time

            started = [time.perf_counter()]

            def tick(n: int) -> None:
                now = time.perf_counter()
                if n % 200 == 0 or n == total or kind == "columnar":
                    rate = n / max(now - started[0], 1e-9)
                    bar.update(task, completed=n, rate=f"{rate:,.0f}")

            summary = run_batch(inp, out, rules, override=override, columns=columns,
                                with_trace=trace, resume=resume, workers=processes,
                                progress=tick, block=block, encoding=encoding,
                                engine="auto" if engine == "auto" else kind)
    except BatchError as exc:
        raise _fail(str(exc), 2) from exc
    except OSError as exc:  # (the disk, permissions: nothing half-written is left as OUT)
        raise _fail(f"cannot run the batch: {exc}", 1) from exc
    _closing_lines(summary, out)


def _closing_lines(summary: Summary, out: Path) -> None:
    """What a batch run ends with on stderr, whichever engine ran it: its notes, the rows
    and outcomes counted, and the facts the answers lack."""
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    from chokepoint.engine.determine import OUTCOME_ORDER

    counts = summary.outcomes or {}
    outcomes = ", ".join(f"{counts[o]:,} {o}" for o in sorted(
        counts, key=lambda o: OUTCOME_ORDER.index(o) if o in OUTCOME_ORDER else 99))
    typer.echo(f"{summary.rows} rows: {summary.written} determined, {summary.rejected} "
               f"rejected (see {out.name}.rejects.csv); outcomes: {outcomes or 'none'}",
               err=True)
    if summary.rejected_by:  # (what stops rows: often the export's own words)
        typer.echo("rows rejected, by the column that stopped them (every one is in "
                   f"{out.name}.rejects.csv; a value map or date format in --columns reads "
                   "an export's own words and dates: docs/batch.md):", err=True)
        for where, count in sorted(summary.rejected_by.items(), key=lambda i: -i[1]):
            typer.echo(f"  {count:,} row{'s' if count > 1 else ''}  {where}  first: "
                       f"{summary.first_reject[where]}", err=True)
    if summary.missing:  # (what to add to the export first)
        from chokepoint.batch.lacking import report

        typer.echo("facts the answers lack, by the rows that lack them (give the column, "
                   "and those rows can be answered; docs/batch.md):", err=True)
        for line in report(summary.missing):
            typer.echo(line, err=True)


@app.command()
def sandbox(
    scenarios: Annotated[list[str], typer.Argument(
        metavar="SCENARIO...", help="Shipped scenario names (baseline, multilateral, "
        "unilateral-fdp, unilateral-no-fdp, hybrid-2024) or scenario YAML files.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for summary.json, plots and "
                                                    "report.html.")],
    months: Annotated[int, typer.Option("--months", min=1, max=240)] = 60,
    sweep: Annotated[bool, typer.Option("--sweep", help="Latin-hypercube sweep of the assumed "
                                                        "parameters; report bands.")] = False,
    samples: Annotated[int, typer.Option("--samples", min=2, max=1000,
                                         help="Sweep samples per scenario.")] = 24,
    flows: Annotated[int, typer.Option("--flows", min=1, help="Generated flows.")] = 100_000,
    flows_file: Annotated[Path | None, typer.Option(
        "--flows-file", help="Your own flow table (.csv or .parquet) instead of the "
                             "generated one.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Override a model parameter: NAME=VALUE (repeatable).")] = None,
) -> None:
    """Run policy scenarios over China-bound SME flows with the real rules; write the
    comparison (summary.json, PNG plots, report.html)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from chokepoint.sandbox.flows import FlowError
    from chokepoint.sandbox.report import write
    from chokepoint.sandbox.run import execute, plan
    from chokepoint.sandbox.scenario import ScenarioError

    overrides: dict[str, float] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        try:
            overrides[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise _fail(f"--param: expected NAME=NUMBER, got {item!r}", 2)
    try:
        rules = default_rules()
    except RuleLoadError as exc:
        raise _fail(str(exc), 1) from exc
    try:
        p = plan(scenarios, rules, months=months, flows=flows, seed=seed,
                 flows_file=flows_file, overrides=overrides)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(stderr=True)) as bar:
            task = bar.add_task("scenario runs", total=len(p.scenarios) * (
                1 + (samples if sweep else 0)))
            result = execute(p, sweep=samples if sweep else 0,
                             progress=lambda done, total: bar.update(task, completed=done))
        data = write(result, p, out)
    except (ScenarioError, FlowError) as exc:
        raise _fail(str(exc), 2) from exc
    except OSError as exc:
        raise _fail(f"cannot write the results to {out}: {exc}", 1) from exc
    console = Console(stderr=True)
    for name, entry in data.items():
        console.print(f"{name}: caught {entry['caught_value_usd'] / 1e9:,.1f} bn, blocked "
                      f"{entry['blocked_value_usd'] / 1e9:,.1f} bn, gap "
                      f"{entry['lpf_gap_usd'] / 1e9:,.1f} bn, stockpile "
                      f"{entry['stockpile_usd'] / 1e9:,.2f} bn USD")
    console.print(f"wrote {out / 'summary.json'} and {out / 'report.html'}")


@app.command()
def diff(
    date_from: Annotated[str, typer.Option("--from", help="Earlier date (YYYY-MM-DD).")],
    date_to: Annotated[str, typer.Option("--to", help="Later date (YYYY-MM-DD).")],
    orders: Annotated[Path | None, typer.Argument(
        help="Order book (.yaml/.json transactions, or .csv/.parquet/.jsonl, .gz or .bz2 "
        "for text, or a directory of .csv/.parquet part files).")] = None,
    format: Annotated[Format, typer.Option("--format", help="json or text")] = Format.text,
    out: Annotated[Path | None, typer.Option(
        "--out", help="With ORDERS: write the orders that change to this table (.csv, "
        ".parquet or .jsonl), one row each, and report only how many each rule change "
        "moves.")] = None,
    columns: Annotated[Path | None, typer.Option(
        "--columns", help="YAML map of your column names to the flat layout's (as for "
        "batch).")] = None,
    encoding: Annotated[str | None, typer.Option(
        "--encoding", help=_ENCODING_HELP)] = None,
) -> None:
    """What changed in the rules between two dates; with ORDERS, which orders it moves."""
    from chokepoint.diff import (
        render_changes,
        render_impact,
        render_impact_summary,
        rule_changes,
    )

    d1, d2 = _parse_date(date_from, "--from"), _parse_date(date_to, "--to")
    assert d1 is not None and d2 is not None
    if d2 < d1:
        raise _fail("--to must not be before --from", 2)
    if out is not None:
        from chokepoint.batch.compressed import book_format

        if orders is None or book_format(out) not in (".csv", ".parquet", ".jsonl"):
            from chokepoint.batch.run import OUTPUTS

            raise _fail(f"--out takes ORDERS and a table: {OUTPUTS}", 2)
    if (columns is not None or encoding is not None) and orders is None:
        raise _fail("--columns and --encoding are for ORDERS: name the book", 2)
    if out is not None and orders is not None and out.resolve() == orders.resolve():
        raise _fail(f"{out}: the table would replace the book; name another file", 2)
    if out is not None and orders is not None:
        from chokepoint.batch.parts import inside

        if inside(out, orders):  # (the next run would read it as one of the parts)
            raise _fail(f"{out}: the table would be written among the book's parts; name "
                        f"a file outside {orders.name}", 2)
    rules = default_rules()
    if orders is None:
        changes = rule_changes(rules, d1, d2)
        sys.stdout.write(json.dumps(changes, indent=2, ensure_ascii=False) + "\n"
                         if format is Format.json else render_changes(changes, d1, d2))
        return
    from chokepoint.batch.columns import read_column_map
    from chokepoint.batch.errors import BatchError
    from chokepoint.batch.run import layout_warnings

    try:
        mapping = read_column_map(columns)
        if orders.exists():
            for warning in layout_warnings(orders, columns, encoding):
                typer.echo(f"warning: {warning}", err=True)
    except BatchError as exc:
        raise _fail(str(exc), 2) from exc
    try:
        result = _book_impact(orders, rules, d1, d2, out, mapping, encoding)
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc}", 1) from exc
    if format is Format.json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_impact(result) if out is None else render_impact_summary(result))
    moved = len(result.get("changed_rows") or ())
    if out is None and moved > MOVED_SHOWN:  # (a line or two per order: a table reads better)
        typer.echo(f"note: {moved:,} orders moved; --out moved.csv (or .parquet) writes them "
                   "as a table, one row each", err=True)


MOVED_SHOWN = 1000  # moved orders past which `diff` suggests a table (--out)


def _book_impact(orders: Path, rules: RuleSet, d1: date, d2: date, out: Path | None,
                 mapping: dict[str, str], encoding: str | None = None) -> dict[str, Any]:
    """The impact report of a book; with ``out``, the moved orders written there and the
    report's summary (diff.impact_summary). A flat book is answered by the columnar engine
    (with a progress bar); one it cannot read, row by row (which names the bad row)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from chokepoint.batch.compressed import book_format
    from chokepoint.batch.errors import BatchError
    from chokepoint.batch.impact import (
        book_impact,
        book_impact_to,
        changed_rows_table,
        write_changed_rows,
    )
    from chokepoint.batch.run import count_rows
    from chokepoint.diff import impact_summary, order_impact

    if book_format(orders) in (".csv", ".parquet") and orders.exists():
        from chokepoint.batch.columnar import Unsupported

        try:  # the columnar engine answers every row on both dates
            with Progress(TextColumn("{task.description}"), BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(),
                          console=Console(stderr=True)) as bar:
                task = bar.add_task("orders answered on both dates", total=count_rows(orders))

                def tick(n: int) -> None:
                    bar.update(task, completed=n)

                found = (book_impact(orders, rules, d1, d2, mapping, tick, encoding)
                         if out is None else
                         book_impact_to(out, orders, rules, d1, d2, mapping, tick, encoding))
            if found is not None:
                return found
        except (Unsupported, BatchError):
            pass
    try:
        transactions = _read_book(orders, rules.assertions, mapping, encoding)
    except (InputError, BatchError) as exc:
        raise _fail(str(exc), 2) from exc
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("orders determined on both dates", total=len(transactions))
        report = order_impact(transactions, rules, d1, d2,
                              progress=lambda n: bar.update(task, completed=n))
    if out is None:
        return report
    regimes = sorted(rules.regimes)
    write_changed_rows([changed_rows_table(report["changed_rows"], regimes)], out, regimes)
    return impact_summary(rules, d1, d2, {k: len(v) for k, v in report["by_cause"].items()},
                          out)


def _read_book(path: Path, assertions: Collection[str], mapping: dict[str, str] | None = None,
               encoding: str | None = None) -> list[dict[str, object]]:
    from chokepoint.batch.compressed import book_format

    if book_format(path) in (".csv", ".parquet", ".jsonl"):
        from chokepoint.batch.flat import RowError
        from chokepoint.batch.run import parse_row, read_rows, row_label

        out = []
        for n, raw in read_rows(path, mapping or {}, encoding):
            try:
                out.append(parse_row(raw, n, assertions))
            except RowError as exc:
                raise InputError(f"{path}: {row_label(n, raw)}: {exc}") from exc
        return out
    return list(read_transactions(path, assertions))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    database: Annotated[str | None, typer.Option(
        "--database", help="SQLAlchemy URL (default: SQLite in the data directory, or "
        "CHOKEPOINT_DATABASE_URL).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    rate_limit: Annotated[float | None, typer.Option(
        "--rate-limit", min=0.001, help="Requests per second allowed per API key and worker "
        "(bursts of twice as many); default 500, or CHOKEPOINT_RATE_LIMIT.")] = None,
) -> None:
    """Start the HTTP API and the web page (uvicorn)."""
    import os

    import uvicorn

    from chokepoint.service.app import create_app, rate_limit_from
    from chokepoint.service.db import default_url, migrate

    url = database or default_url()
    try:
        rate = rate_limit_from(rate_limit)  # checked before any worker starts
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    os.environ["CHOKEPOINT_RATE_LIMIT"] = str(rate)
    if workers > 1:
        from chokepoint.service.app import WRITER_SOCKET
        from chokepoint.service.audit_writer import WriterUnavailable, running_writer
        from chokepoint.service.orphans import PARENT_PID

        migrate(url)  # once, before the workers start
        os.environ["CHOKEPOINT_DATABASE_URL"] = url
        os.environ[PARENT_PID] = str(os.getpid())  # (the workers end when this process has)
        try:
            # one process appends to the audit chain for all workers (see audit_writer)
            with running_writer(url) as writer:
                os.environ[WRITER_SOCKET] = writer.path
                uvicorn.run("chokepoint.service.app:app_from_env", factory=True, host=host,
                            port=port, workers=workers, log_level="warning")
        except WriterUnavailable as exc:
            raise _fail(str(exc), 1) from exc
    else:
        uvicorn.run(create_app(url, rate), host=host, port=port, log_level="warning")


keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="viewer, analyst, auditor or admin")],
    database: Annotated[str | None, typer.Option("--database")] = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from chokepoint.service.db import default_url, make_engine, migrate
    from chokepoint.service.keys import create_key

    url = database or default_url()
    migrate(url)
    try:
        key = create_key(make_engine(url), role)
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    typer.echo(key)


audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(database: Annotated[str | None, typer.Option("--database")] = None) -> None:
    """Check the audit log's hash chain; exit 1 if any record was altered, removed or moved."""
    from chokepoint.service import audit
    from chokepoint.service.db import default_url, make_engine, migrate

    url = database or default_url()
    migrate(url)
    intact, problems, count = audit.verify(make_engine(url))
    for p in problems:
        typer.echo(f"TAMPERED: {p}", err=True)
    typer.echo(f"{count} records checked: {'chain intact' if intact else 'CHAIN BROKEN'}")
    raise typer.Exit(0 if intact else 1)


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
