"""``otel-feedback summary``: statistics of the JSONL files the ``jsonl`` exporter wrote."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from otel_feedback._cli._common import EXIT_OK, EXIT_REFUSED, err_console, out_console
from otel_feedback._cli._report import html_report
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

    Exit status: 0 every line read, 1 some line unreadable (the rest is summed up).
    """
    records: list[Feedback] = []
    unreadable = 0
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(Feedback.model_validate_json(line))
            except ValidationError as error:
                unreadable += 1
                first = error.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                err_console.print(f"{path}:{number}: {where}: {first['msg']}", markup=False)
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
        html_path.write_text(page, encoding="utf-8")
        err_console.print(f"wrote {html_path}", markup=False)
    ctx.exit(EXIT_REFUSED if unreadable else EXIT_OK)


def _csv(groups: list[Group], by: str) -> str:
    buffer = io.StringIO()
    columns = ["key", *([by] if by != "key" else []), "count", "mean", "min", "max", "values"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for group in groups:
        row = group.as_dict(by)
        row["values"] = json.dumps(row["values"], sort_keys=True)
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
