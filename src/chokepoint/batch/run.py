"""Determinations for a whole order book: streaming, crash-safe, resumable.

Rows are read one at a time (CSV, JSON Lines, or Parquet in record batches) and written in
input order. Invalid rows go to a rejects file with their row number and field; they never
stop the batch. Output is written to ``OUT.partial`` and renamed to ``OUT`` only when the
whole book is done, so an interrupted run leaves no partial ``OUT``; a checkpoint every
``CHUNK`` rows (a Parquet output: every part file) lets ``resume`` continue without
duplicating a row. With ``workers`` > 1 the
rows are evaluated by that many processes (forked, each with the rules already loaded) and
their results are still written here, in input order, by this process alone.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePath
from typing import IO, Any, TextIO, cast

from chokepoint.batch.columns import (
    cell_maps,
    read_column_map,
    recode_row,
    text_columns_only,
)
from chokepoint.batch.compressed import (
    book_format,
    compression,
    decompressing,
    open_bytes,
    open_text,
)
from chokepoint.batch.errors import BatchError, ColumnarRefused
from chokepoint.batch.flat import (
    LAYOUT,
    RAGGED,
    RowError,
    list_cell,
    ragged,
    row_to_transaction,
)
from chokepoint.batch.lacking import tally
from chokepoint.batch.lines import csv_lines, json_lines
from chokepoint.batch.parts import inside, part_files, partition_values, stamp
from chokepoint.contract import InputError, loads_json, validate_transaction
from chokepoint.engine.determine import as_of
from chokepoint.rules.ruleset import RuleSet
from chokepoint.screening.service import determine_screened, imported_state

CHUNK = 1000

OUTPUTS = ".csv, .parquet or .jsonl (CSV and JSON Lines may be .gz or .bz2)"
"""What ``batch`` writes, by OUT's name."""

REGIMES = ("US", "NL", "JP")
OUT_COLUMNS = ["row", "id", "outcome", "rules_version", "as_of",
               *[f"{r}_outcome" for r in REGIMES], *[f"{r}_rules" for r in REGIMES],
               *[f"{r}_review_policy" for r in REGIMES], "missing_facts", "screening_hits"]
REJECT_COLUMNS = ["row", "id", "field", "message"]


@dataclass
class Summary:
    rows: int = 0
    written: int = 0
    rejected: int = 0
    outcomes: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)  # what the user should know of the run
    missing: dict[str, int] = field(default_factory=dict)  # rows lacking each fact
    reviewed_until: str = "9999-12-31"  # (ISO) the rule files' review horizons' first end
    past_review: int = 0  # rows answered as of a later day
    rejected_by: dict[str, int] = field(default_factory=dict)  # rejected rows by field
    first_reject: dict[str, str] = field(default_factory=dict)  # and the first one's message


def count_reject(summary: Summary, reject: dict[str, Any]) -> None:
    """Count a rejected row (a row of the rejects file) under the field that stopped it."""
    summary.rejected += 1
    where = str(reject["field"])
    summary.rejected_by[where] = summary.rejected_by.get(where, 0) + 1
    summary.first_reject.setdefault(where, str(reject["message"]))


def new_summary(rules: RuleSet) -> Summary:
    """An empty summary of a run over ``rules``."""
    summary = Summary(outcomes={})
    until = rules.reviewed_until()
    if until is not None:  # (else the default: no row is past it)
        summary.reviewed_until = until.isoformat()
    return summary


def count_results(summary: Summary, table: Any) -> None:
    """Add an Arrow table of result rows to the summary's counts (outcomes, the facts
    they lack, rows answered past the rule files' review)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from chokepoint.batch.columnar.arrow import strings

    assert summary.outcomes is not None
    summary.written += table.num_rows
    for item in table.column("outcome").value_counts().to_pylist():
        key = item["values"]
        summary.outcomes[key] = summary.outcomes.get(key, 0) + item["counts"]
    for item in table.column("missing_facts").value_counts().to_pylist():
        tally(summary.missing, item["values"] or "", item["counts"])
    until = strings([summary.reviewed_until])[0]  # (pa.scalar would import pandas)
    summary.past_review += pc.sum(pc.greater(
        table.column("as_of").cast(pa.string()), until)).as_py() or 0


def review_note(summary: Summary) -> None:
    """The run's note on rows answered past the rule files' review horizons, if any."""
    if summary.past_review:
        summary.notes.append(
            f"{summary.past_review:,} row{'s are' if summary.past_review != 1 else ' is'} "
            f"answered as of a day after {summary.reviewed_until}, when rule files pass "
            "their review horizon: amendments published since they were reviewed may be "
            "missing (a row's --trace names the files)")


def check_column_map(inp: Path, columns: Path | None, mapping: dict[str, str]) -> None:
    """BatchError when a column map is given for a JSON Lines book (contract transactions,
    which have no columns to map: it would be ignored), or converts the cells of a Parquet
    column that is not text (the parts are alike: the first part's schema stands for
    all)."""
    if columns is not None and book_format(inp) == ".jsonl":
        raise BatchError(f"{inp}: --columns maps the columns of a CSV or Parquet book; a "
                         "JSON Lines book holds contract transactions, read as they are")
    if cell_maps(mapping) and book_format(inp) == ".parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(part_files(inp)[0])
        text_columns_only(str(inp), schema.names, schema.types, mapping)


CSV_ENCODING = "utf-8-sig"  # a CSV book's, unless --encoding names another (a BOM is skipped)


def text_encoding(path: Path, encoding: str | None) -> str:
    """The encoding a book's text is read in: ``encoding`` (a CSV book's only: JSON Lines
    are UTF-8) or UTF-8; BatchError for a name Python does not know."""
    if encoding is None:
        return CSV_ENCODING
    if book_format(path) != ".csv":
        raise BatchError(f"{path}: --encoding is for CSV books (JSON Lines are UTF-8, "
                         "Parquet text is UTF-8)")
    return known_encoding(encoding)


def known_encoding(encoding: str) -> str:
    """``encoding``, if Python knows it (BatchError otherwise)."""
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise BatchError(f"--encoding {encoding}: not an encoding Python knows (e.g. gbk, "
                         "gb18030, big5, shift_jis, cp1252, latin-1)") from exc
    return encoding


def not_text(path: Path, encoding: str | None, exc: UnicodeDecodeError | None = None
             ) -> BatchError:
    """The error for a file that is not text in the encoding it is read in (``exc``: the
    decoder's, which shows the bytes)."""
    bad = "" if exc is None else f" (bytes {exc.object[exc.start:exc.start + 4].hex(' ')})"
    return BatchError(f"{path}: not {encoding or 'UTF-8'} text{bad}; "
                      + ("save the file as UTF-8, or name its encoding with --encoding, "
                         "e.g. gbk or cp1252" if encoding is None else
                         "name the encoding it was saved in with --encoding"))


def book_header(path: Path, encoding: str | None = None) -> list[str] | None:
    """The column names of a CSV or Parquet book (None for JSON Lines); of a directory's
    parts, which must all have the same (BatchError naming the first that differs)."""
    # (an empty CSV part - no header either, as Spark may write for an empty partition,
    # compressed or not - holds no rows; the first part with a header sets it)
    files = part_files(path)
    layouts = [(p, *_layout(p, encoding)) for p in files]
    kept = [x for x in layouts if book_format(x[0]) != ".csv" or x[1]] or layouts[:1]
    first, header, types = kept[0]
    # (a partitioned dataset's keys, the same for every part: part_files, come after the
    # files' columns, as Spark reads them)
    keys = list(partition_values(path, files[0]))
    for part, theirs, their_types in kept[1:]:
        if theirs != header:
            differs = f"its columns are {theirs}"
        else:
            differs = next((f"its column {name!r} is of type {b}, not {a}" for name, a, b
                            in zip(header or (), types, their_types, strict=False)
                            if a != b), "")
        if differs:
            raise BatchError(f"{part}: {differs}, unlike {first.relative_to(path)}; the "
                             "parts of a book share one header")
    return header + keys if header else header


def _layout(path: Path, encoding: str | None) -> tuple[list[str] | None, list[Any]]:
    """A file's column names and, in Parquet, their types (a block of rows spans parts,
    so parts must agree in both)."""
    if book_format(path) == ".parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        return list(schema.names), list(schema.types)
    return _file_header(path, encoding), []


def _file_header(path: Path, encoding: str | None) -> list[str] | None:
    suffix = book_format(path)
    if suffix == ".csv":
        with decompressing(path), open_text(path, text_encoding(path, encoding)) as fh:
            try:
                return next(csv.reader(fh), [])
            except UnicodeDecodeError as exc:
                raise not_text(path, encoding, exc) from exc
    if suffix == ".parquet":
        return _layout(path, encoding)[0]
    return None


def check_header(inp: str | PurePath, header: list[str] | None, mapping: dict[str, str]) -> None:
    """BatchError when the header, once mapped, names a column twice: which of the two
    holds the fact is not known (one engine took the last, another stopped)."""
    seen: dict[str, list[str]] = {}
    for column in header or ():
        seen.setdefault(mapping.get(column, column), []).append(column)
    for name, given in seen.items():
        if len(given) > 1:
            which = (f"the column {name!r} appears {len(given)} times" if len(set(given)) == 1
                     else f"columns {', '.join(map(repr, given))} "
                     f"{'both' if len(given) == 2 else 'all'} map to {name!r}")
            raise BatchError(f"{inp}: {which}; which one holds the fact is not known: "
                             "rename or drop the others (or map them elsewhere)")


def _separator_hint(unread: list[str], mapping: dict[str, str]) -> str:
    """A hint when unread header cells are layout columns joined by another separator (a
    spreadsheet's ';' or a tab): the book is then read as one column."""
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if any(mapping.get(p.strip(), p.strip()) in LAYOUT
               for c in unread if sep in c for p in c.split(sep)):
            return (f"; the header looks separated by {name}: chokepoint reads CSV "
                    "separated by commas (save the book as comma-separated)")
    return ""


def layout_warnings(inp: Path, columns: Path | None = None, encoding: str | None = None
                    ) -> list[str]:
    """What the book's header says the run will not read: columns that are not in the flat
    layout once mapped (their facts are read as unknown, and no determination relies on
    them), and column-map entries for columns the book does not have. Errors in the map
    itself, or a column named twice, raise :class:`BatchError`."""
    mapping = read_column_map(columns)
    check_column_map(inp, columns, mapping)
    header = book_header(inp, encoding)
    if header is None:
        return []
    check_header(inp, header, mapping)
    out = []
    unread = [c for c in header if mapping.get(c, c) not in LAYOUT]
    if unread:
        out.append(f"{inp.name}: {len(unread)} column(s) not in the flat layout, not read: "
                   + ", ".join(repr(c) for c in unread)
                   + " (name them as docs/batch.md does, or map them with --columns)"
                   + _separator_hint(unread, mapping))
    absent = [c for c in mapping if c not in header]
    if absent:
        out.append(f"{columns}: mapped column(s) not in {inp.name}: "
                   + ", ".join(repr(c) for c in absent))
    read = {mapping.get(c, c) for c in header}
    unmatched = [c for c in cell_maps(mapping) if c not in read]
    if unmatched:
        out.append(f"{columns}: value map(s) or format(s) for column(s) {inp.name} does "
                   "not have: "
                   + ", ".join(repr(c) for c in unmatched))
    return out


def read_rows(path: Path, mapping: dict[str, str], encoding: str | None = None
              ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, raw row) in input order; row 1 is the first data row. A CSV book is
    read in ``encoding`` (default UTF-8)."""
    suffix = book_format(path)
    if suffix == ".jsonl":
        with decompressing(path), open_text(path, "utf-8") as fh:
            try:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        yield n, {"__json__": line}
            except UnicodeDecodeError as exc:  # (JSON is UTF-8: no other encoding to name)
                raise BatchError(f"{path}: not UTF-8 text (JSON Lines are UTF-8)") from exc
    elif suffix in (".csv", ".parquet"):
        n = 0
        for part in part_files(path):  # (a directory's parts, numbered on)
            cells = (_csv_rows(part, mapping, encoding) if suffix == ".csv"
                     else _parquet_rows(part, mapping))
            given = {mapping.get(k, k): v for k, v in partition_values(path, part).items()}
            recode = cell_maps(mapping)
            for raw in cells:
                n += 1
                row = raw | given if given else raw
                yield n, (recode_row(row, recode) if recode else row)
    else:
        raise BatchError(f"{path}: input must be .csv, .parquet or .jsonl (CSV and JSON "
                         "Lines may be compressed: .csv.gz, .jsonl.bz2)")


def _parquet_rows(path: Path, mapping: dict[str, str]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK):
        for row in batch.to_pylist():
            yield {mapping.get(k, k): (list_cell(v) if isinstance(v, list) else v)
                   for k, v in row.items() if k != RAGGED}


def _csv_rows(path: Path, mapping: dict[str, str], encoding: str | None
              ) -> Iterator[dict[str, Any]]:
    with decompressing(path), open_text(path, text_encoding(path, encoding)) as fh:
        reader = csv.DictReader(fh)
        try:
            for row in reader:
                cells = {mapping.get(k, k): v for k, v in row.items()
                         if k is not None and k != RAGGED}  # (a book cannot set it)
                # (more cells than the header: the rest under None; fewer: None values)
                if None in row or None in cells.values():
                    header = len(reader.fieldnames or ())
                    count = header + len(row[None]) if None in row else sum(
                        v is not None for v in row.values())
                    cells.update(ragged(count, header))
                yield cells
        except UnicodeDecodeError as exc:
            raise not_text(path, encoding, exc) from exc


def parse_row(raw: dict[str, Any], row: int, assertions: Collection[str] | None = None
              ) -> dict[str, Any]:
    """One input row (flat cells or a JSON line) as a validated contract transaction (with
    the rules' ``assertions``); errors name it by its row number (``row``, counted from 1
    as in the rejects file)."""
    if "__json__" in raw:
        try:
            txn = loads_json(raw["__json__"])
        except json.JSONDecodeError as exc:
            raise InputError(f"row {row}: (the line): not JSON: {exc.msg}") from exc
    else:
        txn = row_to_transaction(raw)
    return validate_transaction(txn, row - 1, label=f"row {row}", assertions=assertions)


def regime_cells(j: dict[str, Any] | None) -> tuple[str, str, str, list[str]]:
    """One regime's answer as flat cells: outcome, deciding rules, review policies, and the
    fields it still needs (all empty when the regime does not reach the transaction)."""
    if not j:
        return "", "", "", []
    rules = [b["rule"] for b in j["basis"]] + [r["rule"] for r in j["license_requirements"]]
    policies = dict.fromkeys(r.get("review_policy") or "" for r in j["license_requirements"]
                             if r.get("review_policy"))
    return (j["outcome"], ";".join(dict.fromkeys(rules)), ";".join(policies),
            [m["field"] for m in j["missing_facts"]])


def result_row(row: int, d: dict[str, Any], with_trace: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"row": row, "id": d.get("id") or "", "outcome": d["outcome"],
                           "rules_version": d["rules_version"], "as_of": d["as_of"]}
    missing: list[str] = []
    for code in REGIMES:
        outcome, rules, policy, fields = regime_cells(d["jurisdictions"].get(code))
        out[f"{code}_outcome"], out[f"{code}_rules"], out[f"{code}_review_policy"] = (
            outcome, rules, policy)
        missing += [f"{code}:{f}" for f in fields]
    out["missing_facts"] = ";".join(missing)
    out["screening_hits"] = ";".join(f"{h['party']}->{h['name']} ({h['score']})"
                                     for h in d.get("screening") or [])
    if with_trace:
        out["trace"] = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
    return out


def evaluate_row(item: tuple[int, dict[str, Any]], rules: RuleSet, override: date | None,
                 today: date, with_trace: bool) -> tuple[str, dict[str, Any]]:
    """("ok", result row) or ("reject", rejects-file row) for one input row."""
    n, raw = item
    try:
        txn = parse_row(raw, n, rules.assertions)
        d = determine_screened(txn, rules, as_of(txn, override, today))
        return "ok", result_row(n, d, with_trace)
    except RowError as exc:  # (a cell that cannot be read: named by its column)
        return "reject", {"row": n, "id": _row_id(raw), "field": exc.column,
                          "message": f"{row_label(n, raw)}: {exc}"}
    except InputError as exc:  # ("row N (id ...): field: problem", from parse_row)
        message = str(exc)
        field = message.split(": ")[1] if message.count(": ") >= 2 else ""
        return "reject", {"row": n, "id": _row_id(raw), "field": field,
                          "message": message}


def row_label(n: int, raw: dict[str, Any]) -> str:
    """How a message names a book's row: its number and, if it has one, its id (as the
    contract's checks name a transaction)."""
    found = _row_id(raw)
    return f"row {n} (id {found!r})" if found else f"row {n}"


def _row_id(raw: dict[str, Any]) -> str:
    """A rejected row's id, if it has one: its cell, or a JSON line's ``id``."""
    if "__json__" not in raw:
        return str(raw.get("id") or "")
    try:
        txn = loads_json(raw["__json__"])
    except json.JSONDecodeError:
        return ""
    found = txn.get("id") if isinstance(txn, dict) else None
    return found if isinstance(found, str) else ""


_WORKER: dict[str, Any] = {}


def _in_worker(item: tuple[int, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    return evaluate_row(item, **_WORKER)


PARQUET_PART_ROWS = 100_000  # a Parquet output is checkpointed one part file at a time


def result_schema(columns: list[str]) -> Any:
    """The Arrow schema of result rows: ``row`` a number, every other column text."""
    import pyarrow as pa

    return pa.schema([(c, pa.int64() if c == "row" else pa.string()) for c in columns])


def conformed(table: Any, columns: list[str]) -> Any:
    """Result rows in the columns and types of :func:`result_schema`, a dictionary-encoded
    text column left as it is (the columnar engine's; written to Parquet as text)."""
    import pyarrow as pa

    schema = result_schema(columns)
    if table.column_names == columns and all(
            field.type == want.type or (pa.types.is_dictionary(field.type)
                                        and pa.types.is_string(want.type)
                                        and pa.types.is_string(field.type.value_type))
            for field, want in zip(table.schema, schema, strict=True)):
        return table
    return table.select(columns).cast(schema)


def write_part(table: Any, path: Path) -> None:
    """Result rows as an Arrow IPC file (zstd), durably: written aside, synced, renamed."""
    import pyarrow as pa

    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_file(fh, table.schema, options=options) as part_writer:
            part_writer.write_table(table)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class ResultWriter:
    """Appends result rows to OUT.partial in the output's format. A Parquet output is
    written to ``OUT.partial`` as it comes and, as each checkpoint's durable copy, as part
    files under ``OUT.parts/`` (a Parquet file is unreadable until it is closed): a resumed
    run starts ``OUT.partial`` again from the parts. The parts are Arrow IPC files
    compressed with zstd, which take about half the time of Parquet to write; a worker
    process may write a block's part itself (``block-*.arrow``), which :meth:`adopt`
    then takes as the next part. A writer without ``checkpoints`` (Spark's, which has no
    ``--resume``) streams a Parquet output's rows to ``OUT.partial`` only."""

    def __init__(self, path: Path, columns: list[str], append: bool,
                 parts_done: int = 0, checkpoints: bool = True) -> None:
        self.path, self.columns = path, columns
        self.checkpoints = checkpoints
        self.kind = book_format(path)
        self.packing = compression(path) if self.kind in (".csv", ".jsonl") else None
        mode = "a" if append else "w"
        self._rows: list[dict[str, Any]] = []
        if self.packing is not None:  # (in members: one ends at each checkpoint)
            self.raw: IO[bytes] = self.partial.open(mode + "b")
            self._member(header=not append)
        elif self.kind == ".csv":
            self.fh = path.with_name(path.name + ".partial").open(mode, newline="",
                                                                  encoding="utf-8")
            self.csv = csv.DictWriter(self.fh, fieldnames=columns)
            if not append:
                self.csv.writeheader()
        elif self.kind == ".jsonl":
            self.fh = path.with_name(path.name + ".partial").open(mode, encoding="utf-8",
                                                                  newline="")
        elif self.kind == ".parquet":
            self.fh = None  # type: ignore[assignment]
            self.parts_dir = path.with_name(path.name + ".parts")
            self.parts_dir.mkdir(exist_ok=True)
            self.parts = parts_done if append else 0
            for stale in self.parts_dir.glob("part-*"):
                if int(stale.stem.split("-")[1].split(".")[0]) >= self.parts:
                    stale.unlink()  # written after the last checkpoint
            for stale in self.parts_dir.glob("block-*"):
                stale.unlink()  # a worker's block never taken as a part
            self._stream: Any = None
            for i in range(self.parts):  # a resumed run: the rows already done
                self._streamed(self._read_part(i))
        else:
            raise BatchError(f"{path}: output must be {OUTPUTS}")

    @property
    def partial(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    def _member(self, header: bool = False) -> None:
        """Start the next compressed member of a .gz/.bz2 output (text written to it; the
        CSV header first if ``header``).
        A member ends at each checkpoint, so that the checkpoint's offset is where a
        resumed run cuts the file and appends; the members read as one text."""
        packer = cast(IO[bytes], (
            gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, compresslevel=6,
                          mtime=0)  # (no time: the same rows give the same bytes)
            if self.packing == "gzip" else bz2.BZ2File(self.raw, mode="wb")))
        self.fh = io.TextIOWrapper(packer, encoding="utf-8", newline="")
        if self.kind == ".csv":
            self.csv = csv.DictWriter(self.fh, fieldnames=self.columns)
            if header:
                self.csv.writeheader()

    def _durable(self) -> int:
        """Flush what is written to disk; its size in bytes (the checkpoint's offset)."""
        if self.packing is not None:
            self.fh.close()  # (ends the member; the file beneath stays open)
            self.raw.flush()
            os.fsync(self.raw.fileno())
            end = self.raw.tell()  # (before the next member's header)
            self._member()
            return end
        self.fh.flush()
        os.fsync(self.fh.fileno())
        return self.fh.tell()

    def write(self, row: dict[str, Any]) -> None:
        if self.kind == ".csv":
            self.csv.writerow(row)
        elif self.kind == ".jsonl":  # (keys in the columns' order, as write_table's rows)
            self.fh.write(json.dumps({c: row.get(c) for c in self.columns},
                                     ensure_ascii=False) + "\n")
        else:
            self._rows.append(row)
            if len(self._rows) >= 10 * PARQUET_PART_ROWS:  # a caller that never syncs
                self._write_part()  # (Spark); a syncing caller writes parts at checkpoints

    def _schema(self) -> Any:
        return result_schema(self.columns)

    def _write_part(self, table: Any = None) -> None:
        """The buffered rows (or ``table``) as the next part file, durably."""
        import pyarrow as pa

        if table is None:
            table = pa.Table.from_pylist(self._rows, schema=self._schema())
        table = conformed(table, self.columns)
        if self.checkpoints:
            write_part(table, self.parts_dir / f"part-{self.parts:06d}.arrow")
            self.parts += 1
        self._rows = []
        self._streamed(table)

    @property
    def takes_parts(self) -> bool:
        """Whether a worker may write a block's part itself (:meth:`adopt`)."""
        return self.kind == ".parquet" and self.checkpoints

    def adopt(self, block: Path) -> Any:
        """A block's rows that a worker wrote with :func:`write_part` (under
        ``parts_dir``), taken as the next part: renamed, then streamed to OUT.partial.
        Returns them (an Arrow table)."""
        assert self.takes_parts and not self._rows
        block.replace(self.parts_dir / f"part-{self.parts:06d}.arrow")
        self.parts += 1
        table = self._read_part(self.parts - 1)
        self._streamed(table)
        return table

    def _read_part(self, i: int) -> Any:
        import pyarrow as pa

        path = self.parts_dir / f"part-{i:06d}.arrow"
        if not path.exists():  # a checkpoint from before the parts were Arrow files
            import pyarrow.parquet as pq

            return pq.read_table(path.with_suffix(".parquet"))
        with pa.ipc.open_file(path) as part:
            return part.read_all()

    def _streamed(self, table: Any) -> None:
        """Rows appended to ``OUT.partial`` (Parquet)."""
        import pyarrow.parquet as pq

        if self._stream is None:  # (text columns are read back as text either way)
            self._stream = pq.ParquetWriter(self.partial, table.schema, store_schema=False)
        elif not table.schema.equals(self._stream.schema):
            table = table.cast(self._stream.schema)  # (a run resumed with another engine)
        self._stream.write_table(table)

    def write_table(self, table: Any) -> None:
        """Append a block of result rows (an Arrow table in the output's columns)."""
        if self.kind == ".parquet":
            assert not self._rows
            self._write_part(table)
        else:  # (UTF-8 bytes as Arrow built them, after the text written before)
            lines = csv_lines(table) if self.kind == ".csv" else json_lines(table)
            self.fh.flush()
            cast(TextIO, self.fh).buffer.write(lines)

    def offset(self) -> int:
        """The durable checkpoint offset after whole blocks were written."""
        if self.kind == ".parquet":
            return self.parts
        return self._durable()

    def sync(self) -> int | None:
        """Flush to disk; the checkpoint offset (the partial file's size, or the number of
        Parquet parts), or None when nothing durable was written (a Parquet part not full)."""
        if self.kind == ".parquet":
            if len(self._rows) < PARQUET_PART_ROWS:
                return None
            self._write_part()
            return self.parts
        return self._durable()

    def abandon(self) -> None:
        """A failed run: close the files, keep the checkpoint for ``resume``."""
        if self.fh is not None:
            self.fh.close()
            if self.packing is not None:
                self.raw.close()
        elif self._stream is not None:
            self._stream.close()

    def close(self) -> None:
        if self.kind != ".parquet":
            self.fh.close()
            if self.packing is not None:
                self.raw.close()
            return
        if self._rows:
            self._write_part()
        if self._stream is None:  # no rows at all: a file with the columns only
            self._streamed(self._schema().empty_table())
        self._stream.close()
        for part in [*self.parts_dir.glob("part-*"), *self.parts_dir.glob("block-*")]:
            part.unlink()
        self.parts_dir.rmdir()


WORKER_MEMORY = 3 << 29  # 1.5 GB a process: a columnar worker's peak at the default block
# is 0.75-1 GB (docs/notes.md)


def auto_workers(engine: str, rows: int | None, block: int | None = None) -> int:
    """Processes for a run when the user names none: every core this process may use, but
    no more than the book has blocks to share (the columnar engine's blocks, or 2,000 rows
    each row by row) nor than the machine's memory holds at WORKER_MEMORY each."""
    cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1)
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # (not on this system: one process)
        memory = WORKER_MEMORY
    if engine == "columnar":
        from chokepoint.batch.columnar_run import BLOCK

        share = block or BLOCK
    else:
        share = 2_000
    useful = -(-rows // share) if rows else 1
    return max(1, min(cpus, memory // WORKER_MEMORY, useful))


def pick_engine(engine: str, inp: Path, with_trace: bool, rules: RuleSet
                ) -> tuple[str, str | None]:
    """The engine a run takes ("scalar" or "columnar") and, for "auto", why not the
    columnar one when it cannot take the run (both give the same rows; the columnar one is
    some 100 times faster on a book of any size)."""
    if engine != "auto":
        return engine, None
    from chokepoint.batch.columnar_run import cannot_take

    reason = cannot_take(inp, with_trace, rules) if inp.exists() else None
    return ("scalar", reason) if reason is not None else ("columnar", None)


def check_batch(inp: Path, out: Path, rules: RuleSet, *, override: date | None = None,
                columns: Path | None = None, with_trace: bool = False, resume: bool = False,
                engine: str = "scalar", encoding: str | None = None) -> dict[str, str]:
    """What :func:`run_batch` checks before it writes anything (BatchError naming the
    problem), for a caller that wants it before showing progress; the column map."""
    if not inp.exists():
        raise BatchError(f"{inp}: no such file")
    part_files(inp)  # (a directory's parts: BatchError if it is not one book)
    if out.resolve() == inp.resolve():
        raise BatchError(f"{out}: the results would replace the book; name another file")
    if inside(out, inp):
        raise BatchError(f"{out}: the results would be written among the book's parts (the "
                         f"next run would read them as one); name a file outside {inp.name}")
    if not out.parent.is_dir():
        raise BatchError(f"{out.parent}: no such directory for the results")
    if book_format(out) not in (".csv", ".parquet", ".jsonl"):
        raise BatchError(f"{out}: output must be {OUTPUTS}")
    if engine not in ("auto", "scalar", "columnar"):
        raise BatchError(f"engine must be auto, scalar or columnar, not {engine!r}")
    if engine == "columnar":  # (auto takes it only where these hold: pick_engine)
        if with_trace:
            raise BatchError("--trace needs the full determination of each row: use the "
                             "scalar engine")
        if book_format(inp) not in (".csv", ".parquet"):
            raise BatchError(f"{inp}: the columnar engine reads .csv or .parquet books")
    mapping = read_column_map(columns)
    text_encoding(inp, encoding)  # (a name Python knows, for a CSV book)
    check_header(inp, book_header(inp, encoding), mapping)
    check_column_map(inp, columns, mapping)
    checkpoint = out.with_name(out.name + ".checkpoint")
    if resume:
        if not checkpoint.exists():
            raise BatchError(f"{checkpoint}: nothing to resume")
        run_file = checkpoint.with_name(checkpoint.name + ".run")
        if run_file.exists():  # (the same run? run_batch warns when it cannot tell)
            resumed_day(run_file, run_identity(inp, override, mapping, with_trace, rules,
                                               encoding), date.today())
    return mapping


def run_batch(inp: Path, out: Path, rules: RuleSet, *, override: date | None = None,
              columns: Path | None = None, with_trace: bool = False, resume: bool = False,
              today: date | None = None, workers: int = 1,
              progress: Callable[[int], None] | None = None,
              engine: str = "scalar", block: int | None = None,
              encoding: str | None = None) -> Summary:
    """Evaluate every row of ``inp`` and write ``out`` (and ``out.rejects.csv``).

    ``engine`` "scalar" determines row by row; "columnar" evaluates each rule once per
    distinct set of the facts it reads (:mod:`chokepoint.batch.columnar`), with the same
    answers, for CSV and Parquet books without ``with_trace``, ``block`` rows at a time
    (default ``columnar_run.BLOCK``); "auto" the columnar one where it can
    (:func:`pick_engine`)."""
    mapping = check_batch(inp, out, rules, override=override, columns=columns,
                          with_trace=with_trace, resume=resume, engine=engine,
                          encoding=encoding)
    chosen = engine == "auto"  # (then a refusal of the columnar engine is not the user's)
    engine = pick_engine(engine, inp, with_trace, rules)[0]
    cols = OUT_COLUMNS + (["trace"] if with_trace else [])
    checkpoint = out.with_name(out.name + ".checkpoint")
    rejects_path = out.with_name(out.name + ".rejects.csv")
    rejects_partial = rejects_path.with_name(rejects_path.name + ".partial")
    done = 0
    run_file = checkpoint.with_name(checkpoint.name + ".run")
    today = today or date.today()
    identity = run_identity(inp, override, mapping, with_trace, rules, encoding)
    if resume:  # (check_batch found the checkpoint)
        today = resumed_day(run_file, identity, today)
        state = json.loads(checkpoint.read_text())
        done = int(state["rows"])
        targets = [(rejects_partial, state["reject_bytes"])]
        if book_format(out) != ".parquet":  # Parquet parts are dropped by the writer
            targets.append((out.with_name(out.name + ".partial"), state["bytes"]))
        for target, size in targets:
            with target.open("r+b") as fh:
                fh.truncate(size)  # drop anything written after the last checkpoint
    writer = ResultWriter(out, cols, append=resume,
                          parts_done=int(state["bytes"]) if resume else 0)
    rej_fh = rejects_partial.open("a" if resume else "w", newline="", encoding="utf-8")
    rejects = csv.DictWriter(rej_fh, fieldnames=REJECT_COLUMNS)
    if not resume:
        rejects.writeheader()
        _write_json(run_file, {**identity, "today": today.isoformat()})
    summary = new_summary(rules)
    assert summary.outcomes is not None
    if engine == "columnar":
        summary.rows = done
        from chokepoint.batch.columnar_run import write_columnar

        try:
            write_columnar(inp, mapping, done, rules, override, today, workers, cols,
                           writer, rejects, rej_fh, checkpoint, summary, progress, block,
                           encoding)
        except ColumnarRefused as exc:
            if not chosen:
                writer.abandon()
                rej_fh.close()
                raise
            # the rows written so far stand (each block whole, as a resume takes them); the
            # rest goes row by row, as a resume by the other engine would
            summary.notes.append(f"from row {summary.rows + 1} on, the rows went row by row: "
                                 f"{exc.reason}")
            done = summary.rows
        except BaseException:
            writer.abandon()
            rej_fh.close()
            raise
        else:
            return _finish(writer, rej_fh, rejects_partial, rejects_path, out, checkpoint,
                           summary)
    todo = ((n, raw) for n, raw in read_rows(inp, mapping, encoding) if n > done)
    pool = None
    if workers > 1:
        _WORKER.update(rules=rules, override=override, today=today, with_trace=with_trace)
        pool = multiprocessing.get_context("fork").Pool(workers)
        results: Iterator[tuple[str, dict[str, Any]]] = pool.imap(_in_worker, todo,
                                                                 chunksize=64)
    else:
        results = (evaluate_row(item, rules, override, today, with_trace) for item in todo)
    summary.rows = done
    try:
        _write_all(results, writer, rejects, rej_fh, checkpoint, summary, progress)
    finally:
        if pool is not None:
            pool.terminate()  # every result is in (or the run failed): stop the workers
            pool.join()
    return _finish(writer, rej_fh, rejects_partial, rejects_path, out, checkpoint, summary)


def _finish(writer: ResultWriter, rej_fh: Any, rejects_partial: Path, rejects_path: Path,
            out: Path, checkpoint: Path, summary: Summary) -> Summary:
    """The whole book is done: move the results into place."""
    review_note(summary)
    writer.close()
    rej_fh.close()
    writer.partial.replace(out)
    rejects_partial.replace(rejects_path)
    checkpoint.unlink(missing_ok=True)
    checkpoint.with_name(checkpoint.name + ".run").unlink(missing_ok=True)
    return summary


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """A small JSON file, written aside and renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def checkpoint_after(checkpoint: Path, rows: int, offset: int, rej_fh: Any) -> None:
    """Record that rows up to ``rows`` are durably written (results and rejects)."""
    rej_fh.flush()
    os.fsync(rej_fh.fileno())
    _write_json(checkpoint, {"rows": rows, "bytes": offset, "reject_bytes": rej_fh.tell()})


_SETTINGS = {"book": "the book (its size or modification time)", "date": "--date",
             "columns": "--columns", "values": "--columns (its value maps and formats)",
             "trace": "--trace",
             "rules_version": "the rules (rules_version)",
             "lists": "the imported screening lists", "encoding": "--encoding"}
"""What a resumed run must share with the interrupted one, as the user knows each."""


def run_identity(inp: Path, override: date | None, mapping: dict[str, str],
                 with_trace: bool, rules: RuleSet, encoding: str | None = None
                 ) -> dict[str, Any]:
    """What decides a run's rows besides the engine and the worker count (which give the
    same rows): the book, the settings, the rules and the imported lists."""
    return {"book": stamp(inp),
            "date": override.isoformat() if override else None, "columns": dict(mapping),
            "values": {c: m.record() for c, m in cell_maps(mapping).items()} or None,
            "trace": with_trace, "rules_version": rules.content_hash,
            "lists": json.loads(json.dumps(imported_state(), default=str)),
            "encoding": encoding}


def resumed_day(run_file: Path, identity: dict[str, Any], today: date) -> date:
    """The day the interrupted run took as "today" (rows without a date are answered as of
    it), after checking that this run would give the rows that one gave; BatchError naming
    what differs otherwise. A checkpoint left by a version that did not record its run is
    resumed as it is (a warning on stderr)."""
    if not run_file.exists():
        print(f"warning: {run_file.name} is missing: cannot check that --resume continues "
              "the same run (book, --date, --columns, rules)", file=sys.stderr)
        return today
    recorded = json.loads(run_file.read_text())
    differs = [_SETTINGS[k] for k in _SETTINGS if recorded.get(k) != identity[k]]
    if differs:
        raise BatchError("cannot resume: " + ", ".join(differs) + " differ(s) from the "
                         "interrupted run, whose rows would not match; run again without "
                         "--resume")
    return date.fromisoformat(recorded["today"])


def _write_all(results: Iterator[tuple[str, dict[str, Any]]], writer: ResultWriter,
               rejects: Any, rej_fh: Any, checkpoint: Path, summary: Summary,
               progress: Callable[[int], None] | None) -> None:
    """Write the results in input order, with a checkpoint every CHUNK rows."""
    assert summary.outcomes is not None
    for kind, row in results:
        n = summary.rows = int(row["row"])
        if kind == "ok":
            writer.write(row)
            summary.written += 1
            summary.outcomes[row["outcome"]] = summary.outcomes.get(row["outcome"], 0) + 1
            tally(summary.missing, row["missing_facts"])
            summary.past_review += row["as_of"] > summary.reviewed_until
        else:
            rejects.writerow(row)
            count_reject(summary, row)
        if n % CHUNK == 0 and (size := writer.sync()) is not None:
            checkpoint_after(checkpoint, n, size, rej_fh)
        if progress is not None:
            progress(n)


def count_rows(path: Path) -> int | None:
    """Rows in the input, for the progress bar (cheap: no cell is parsed). A CSV line ends
    a row only outside quotes - an odd number of quote marks opens or closes a quoted
    cell, which may hold line breaks (an escaped quote is two marks; no encoding a book
    may be in uses the quote's byte inside another character)."""
    suffix = book_format(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return sum(int(pq.read_metadata(p).num_rows) for p in part_files(path))
    if suffix == ".jsonl":
        with decompressing(path), open_bytes(path) as fh:
            return sum(1 for line in fh if line.strip())
    if suffix == ".csv":
        return sum(_csv_count(p) for p in part_files(path))
    return None


def _csv_count(path: Path) -> int:
    rows, quoted = 0, False
    with decompressing(path), open_bytes(path) as fh:
        for line in fh:
            if not quoted and not line.strip():
                continue  # (a blank line is no row, as the csv module reads it)
            if line.count(b'"') % 2:
                quoted = not quoted
            rows += not quoted
    return max(rows - 1, 0)  # (the header)
