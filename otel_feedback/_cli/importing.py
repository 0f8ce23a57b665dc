"""``otel-feedback import``: many pieces of feedback at once, from JSON lines or CSV."""

from __future__ import annotations

from pathlib import Path
from typing import IO
from uuid import UUID

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from otel_feedback._cli._common import EXIT_OK, EXIT_REFUSED, err_console, out_console, verbose
from otel_feedback._cli._delivery import Delivery, NoExporterError
from otel_feedback._cli._rows import Row, read_rows
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._recording.record import record_feedback

__all__ = ["import_"]


@click.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--format",
    "kind",
    type=click.Choice(["jsonl", "csv"]),
    help="The file's format [default: from its name; for stdin, CSV unless it starts with {].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for delivery in all [default: OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT].",
)
@click.pass_context
def import_(ctx: click.Context, file: IO[str], kind: str | None, timeout: float | None) -> None:
    """Send the feedback in FILE (- for stdin): JSON lines or CSV with a header.

    A JSON line is a record as the jsonl exporter writes it, or a short one: key, score
    and/or value, and the run (trace_id [+ run_id], or traceparent). CSV columns have the
    same names. A record keeps its id (a line without one gets an id derived from its
    content), so importing a file again updates its records rather than adding copies in
    backends that keep one record per id.

    Exit status: 0 all delivered, 1 some line refused or not delivered, 2 bad arguments.
    """
    text = file.read()
    kind = kind or _kind_of(file.name, text)
    try:
        delivery = Delivery(timeout_s=timeout, verbose=verbose(ctx))
    except NoExporterError as error:
        err_console.print(f"[red]Not sent:[/] {error}")
        ctx.exit(EXIT_REFUSED)
    refused: list[tuple[int, str]] = []
    line_of: dict[UUID, int] = {}
    rows = list(read_rows(text, kind))
    timed_out = False
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("import", total=len(rows))
        waiting = 0
        for row in rows:
            progress.advance(task)
            if timed_out:
                refused.append((row.line, "not sent: delivery timed out before this line"))
                continue
            record_id = _send(row, refused)
            if record_id is None:
                continue
            delivery.sent(record_id)
            line_of[record_id] = row.line
            waiting += 1
            # Flushed batch by batch, so that a large file never overflows the queue.
            if waiting >= delivery.batch_size:
                waiting = 0
                timed_out = not delivery.flush()
    outcome = delivery.finish()
    refused.extend((line_of[i], reason) for i, reason in outcome.failed.items())
    refused.sort()
    out_console.print(
        f"sent {outcome.delivered} of {len(rows)} record(s) to "
        f"{', '.join(delivery.exporter_names)}; {len(refused)} refused or not delivered"
    )
    for line, reason in refused:
        err_console.print(f"line {line}: {reason}", markup=False)
    # Drops no exporter saw (a full queue, the shutdown deadline): counted, not by line.
    extra_drops = outcome.dropped_records - outcome.failed_deliveries
    if extra_drops > 0:
        err_console.print(f"{extra_drops} more record(s) dropped by an exporter")
    ctx.exit(EXIT_REFUSED if refused or extra_drops > 0 else EXIT_OK)


def _kind_of(name: str, text: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _send(row: Row, refused: list[tuple[int, str]]) -> UUID | None:
    if row.arguments is None:
        refused.append((row.line, row.error or "unreadable"))
        return None
    arguments = dict(row.arguments)
    key = arguments.pop("key")
    try:
        recorded = record_feedback(key, **arguments)
    except InvalidFeedbackError as error:
        refused.append((row.line, str(error)))
        return None
    if recorded is None:
        refused.append((row.line, "nothing recorded (OTEL_SDK_DISABLED=true?)"))
        return None
    return recorded.id
