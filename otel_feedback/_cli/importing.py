"""``otel-feedback import``: many pieces of feedback at once, from JSON lines or CSV."""

from __future__ import annotations

from pathlib import Path
from typing import IO
from uuid import UUID

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from otel_feedback._cli._common import (
    EXIT_OK,
    EXIT_REFUSED,
    SECONDS,
    command_deadline,
    err_console,
    notice,
    out_console,
    verbose,
)
from otel_feedback._cli._deadline import exit_now
from otel_feedback._cli._delivery import open_delivery
from otel_feedback._cli._redact import scrub
from otel_feedback._cli._rows import Row, read_rows
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._recording.record import record_feedback

__all__ = ["import_"]


@click.command("import")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--format",
    "kind",
    type=click.Choice(["jsonl", "csv"]),
    help="The file's format [default: from its name; for stdin, CSV unless it starts with {].",
)
@click.option(
    "--timeout",
    type=SECONDS,
    help="Seconds the command may take in all [default: OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT].",
)
@click.pass_context
def import_(ctx: click.Context, file: IO[bytes], kind: str | None, timeout: float | None) -> None:
    """Send the feedback in FILE (- for stdin): JSON lines or CSV with a header.

    A JSON line is a record as the jsonl exporter writes it, or a short one: key, score
    and/or value, and the run (trace_id [+ run_id], or traceparent). CSV columns have the
    same names. A record keeps its id (a line without one gets an id derived from its
    content), so importing a file again updates its records rather than adding copies in
    backends that keep one record per id. Lines are split at line feeds only; each line that
    cannot be read (bytes that are not UTF-8, binary data, not JSON, nested too deep, too
    long) is refused alone, by its number, and the others are sent.

    Exit status: 0 all delivered, 1 some line refused or not delivered, 2 bad arguments.
    """
    deadline = command_deadline(timeout)
    data = file.read()
    kind = kind or _kind_of(file.name, data)
    delivery = open_delivery(ctx, deadline, notice=notice, verbose=verbose(ctx))
    refused: list[tuple[int, str]] = []
    handed: list[tuple[int, UUID]] = []
    rows = list(read_rows(data, kind))
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
                refused.append((row.line, "not sent: the --timeout passed before this line"))
                continue
            record_id = _send(row, refused)
            if record_id is None:
                continue
            delivery.sent(record_id)
            handed.append((row.line, record_id))
            waiting += 1
            # Flushed batch by batch, so that a large file never overflows the queue.
            if waiting >= delivery.batch_size:
                waiting = 0
                delivery.flush()
                # Only the deadline stops the import: a batch that was refused is no reason.
                timed_out = delivery.deadline.passed()
    if not timed_out and waiting:
        delivery.flush()
    outcome = delivery.finish()
    # Every line is counted once: delivered, or refused with its reason.
    delivered = 0
    for line, record_id in handed:
        reason = outcome.failed.get(record_id)
        if reason is None:
            delivered += 1
        else:
            refused.append((line, scrub(reason)))
    refused.sort()
    out_console.print(
        f"sent {delivered} of {len(rows)} record(s) to "
        f"{', '.join(delivery.exporter_names)}; {len(refused)} refused or not delivered",
        markup=False,
    )
    for line, reason in refused:
        err_console.print(f"line {line}: {reason}", markup=False)
    # Drops no exporter saw (a full queue, the shutdown deadline): counted, not by line.
    extra_drops = outcome.dropped_records - outcome.failed_deliveries
    if extra_drops > 0:
        err_console.print(f"{extra_drops} more record(s) dropped by an exporter")
    code = EXIT_REFUSED if refused or extra_drops > 0 else EXIT_OK
    if outcome.stuck:
        exit_now(code)
    ctx.exit(code)


def _kind_of(name: str, data: bytes) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    return "jsonl" if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


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
    except (TypeError, ValueError, RecursionError) as error:
        # A line whose fields record_feedback takes but cannot hold: refused alone.
        refused.append((row.line, f"cannot be recorded: {type(error).__name__}: {error}"))
        return None
    if recorded is None:
        refused.append((row.line, "nothing recorded (OTEL_SDK_DISABLED=true?)"))
        return None
    return recorded.id
