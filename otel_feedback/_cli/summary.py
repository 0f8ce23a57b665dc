"""``otel-feedback summary``: statistics of the JSONL files the ``jsonl`` exporter wrote."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from uuid import UUID

import click
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from otel_feedback._cli._common import EXIT_OK, EXIT_REFUSED, err_console, out_console
from otel_feedback._cli._input import lines_of
from otel_feedback._cli._report import html_report
from otel_feedback._cli._rows import parse_json_line
from otel_feedback._cli._stats import SPLITS, Group, summarize
from otel_feedback._model import Feedback

__all__ = ["summary"]

_MAX_LABELS_SHOWN = 4


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--by",
    type=click.Choice(SPLITS),
    default="key",
    show_default=True,
    help="One row per key, per key and source type, or per key and day (UTC).",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write a self-contained HTML page with a chart per key over time.",
)
@click.pass_context
def summary(
    ctx: click.Context, files: tuple[Path, ...], by: str, output: str, html_path: Path | None
) -> None:
    """Count, mean, min and max of the scores, and the values given, per key.

    FILES are JSON lines as the jsonl exporter writes them. JSON output is a list of objects
    with key, count, mean, min, max, values, and the split's field (source or day).

    Each feedback id is counted once, the last record read with it winning: delivery is
    at least once, and a file imported again keeps its ids. Lines are split at line feeds
    only; a line that cannot be read is named with the reason, and the rest is summed up.

    Exit status: 0 every line read, 1 some line unreadable (the rest is summed up).
    """
    read = _read(files)
    records = list(read.records.values())
    if read.folded:
        err_console.print(
            f"folded {read.folded} duplicate record(s): the same feedback id more than once "
            "(delivery is at least once, and a re-import keeps ids); the last one is counted",
            markup=False,
        )
    groups = summarize(records, by)
    if output == "json":
        click.echo(json.dumps([g.as_dict(by) for g in groups], indent=2))
    elif output == "csv":
        click.echo(_csv(groups, by), nl=False)
    else:
        out_console.print(_table(groups, by))
    if html_path is not None:
        title = "Feedback summary"
        page = html_report(records, title=title, sources=[p.name for p in files])
        try:
            html_path.write_text(page, encoding="utf-8")
        except OSError as error:
            err_console.print(f"{html_path}: cannot be written: {error.strerror}", markup=False)
            ctx.exit(EXIT_REFUSED)
        err_console.print(f"wrote {html_path}", markup=False)
    ctx.exit(EXIT_REFUSED if read.unreadable else EXIT_OK)


@dataclass
class _Read:
    records: dict[UUID, Feedback] = field(default_factory=dict)
    folded: int = 0
    unreadable: int = 0


def _read(files: tuple[Path, ...]) -> _Read:
    """Every record of ``files`` by id (the last one read wins); each bad line named."""
    read = _Read()

    def refuse(where: str, reason: str) -> None:
        read.unreadable += 1
        err_console.print(f"{where}: {reason}", markup=False)

    for path in files:
        try:
            data = path.read_bytes()
        except OSError as error:
            refuse(str(path), f"cannot be read: {error.strerror or error}")
            continue
        for line in lines_of(data):
            where = f"{path}:{line.number}"
            if line.text is None:
                refuse(where, line.error or "unreadable")
                continue
            record, reason = _record(line.text)
            if record is None:
                refuse(where, reason)
                continue
            if record.id in read.records:
                read.folded += 1
                del read.records[record.id]  # re-inserted: the last one read, in its place
            read.records[record.id] = record
    return read


def _record(text: str) -> tuple[Feedback | None, str]:
    fields, reason = parse_json_line(text)
    if reason is not None:
        return None, reason
    if not isinstance(fields, dict):
        return None, f"not a JSON object: {type(fields).__name__}"
    try:
        return Feedback.model_validate_json(text), ""
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "line"
        return None, f"{where}: {first['msg']}"
    except (TypeError, ValueError, RecursionError) as error:
        return None, f"not a record: {type(error).__name__}: {error}"


# Cells a spreadsheet would run as a formula (OWASP, "CSV Injection"): such a cell gets a
# leading apostrophe, which spreadsheets show as text and do not evaluate.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv(groups: list[Group], by: str) -> str:
    buffer = io.StringIO()
    columns = ["key", *([by] if by != "key" else []), "count", "mean", "min", "max", "values"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for group in groups:
        row = group.as_dict(by)
        row["values"] = json.dumps(row["values"], sort_keys=True)
        # Numbers are written by Python and are no formula; the text is the data's own.
        for name in ("key", by, "values"):
            if name in row:
                row[name] = _text_cell(row[name])
        writer.writerow(row)
    return buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _table(groups: list[Group], by: str) -> Table:
    table = Table(show_edge=False, header_style="bold")
    table.add_column("key")
    if by != "key":
        table.add_column(by)
    for name in ("count", "mean", "min", "max"):
        table.add_column(name, justify="right")
    table.add_column("values")
    for group in groups:
        labels = ", ".join(f"{v} ({n})" for v, n in group.values.most_common(_MAX_LABELS_SHOWN))
        if len(group.values) > _MAX_LABELS_SHOWN:
            labels += f", +{len(group.values) - _MAX_LABELS_SHOWN} more"
        split = [group.split or ""] if by != "key" else []
        # Keys and labels are data: never read as rich markup.
        table.add_row(
            Text(group.key),
            *(Text(s) for s in split),
            str(group.count),
            _number(group.mean),
            _number(group.min),
            _number(group.max),
            Text(labels),
        )
    return table
