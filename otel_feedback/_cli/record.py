"""``otel-feedback record``: one piece of feedback from a shell or a batch job."""

from __future__ import annotations

from uuid import UUID

import click
from rich.text import Text

from otel_feedback._cli._common import (
    EXIT_OK,
    EXIT_REFUSED,
    SCORE,
    SECONDS,
    command_deadline,
    err_console,
    notice,
    out_console,
    verbose,
)
from otel_feedback._cli._deadline import exit_now
from otel_feedback._cli._delivery import Outcome, open_delivery
from otel_feedback._cli._redact import scrub
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._recording.record import record_feedback

__all__ = ["record"]

# record_feedback's argument names, as this command spells them.
_OPTION_OF_ARGUMENT = {
    "key": "KEY",
    "score": "--score",
    "value": "--value",
    "comment": "--comment",
    "feedback_source_type": "--source-type",
    "user_id": "--user-id",
    "feedback_id": "--id",
    "trace_id": "--trace-id",
    "run_id": "--run-id",
    "traceparent": "--traceparent",
}


@click.command()
@click.argument("key")
@click.option("--score", type=SCORE, help="A number, true or false.")
@click.option("--value", help="A display or categorical value (a label).")
@click.option("--comment", help="Why this score.")
@click.option(
    "--source-type", default="api", show_default=True, help="Who gave it: api, model, app, ..."
)
@click.option("--user-id", help="The person who gave the feedback.")
@click.option("--id", "feedback_id", help="The record's id (a UUID); sending it again updates.")
@click.option("--traceparent", help="The judged span as a W3C traceparent header value.")
@click.option("--trace-id", help="The judged trace: 32 hex digits or a LangSmith UUID.")
@click.option("--run-id", help="The judged span in --trace-id: 16 hex digits or a run UUID.")
@click.option(
    "--timeout",
    type=SECONDS,
    help="Seconds the command may take in all [default: OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT].",
)
@click.pass_context
def record(
    ctx: click.Context,
    *,
    key: str,
    score: bool | float | None,
    value: str | None,
    comment: str | None,
    source_type: str,
    user_id: str | None,
    feedback_id: str | None,
    traceparent: str | None,
    trace_id: str | None,
    run_id: str | None,
    timeout: float | None,
) -> None:
    """Send one piece of feedback on a run, and wait until it is delivered.

    The run is named by --traceparent, or by --trace-id (with --run-id for one span;
    without it, the whole trace). Records go through the exporters of
    OTEL_PYTHON_FEEDBACK_EXPORTER, configured by the same variables as the library.

    Exit status: 0 delivered, 1 refused or not delivered in time, 2 bad arguments.
    """
    if traceparent is None and trace_id is None:
        raise click.UsageError("give the run: --traceparent, or --trace-id [--run-id]")
    deadline = command_deadline(timeout)
    delivery = open_delivery(ctx, deadline, notice=notice, verbose=verbose(ctx))
    try:
        recorded = record_feedback(
            key,
            score=score,
            value=value,
            comment=comment,
            feedback_source_type=source_type,
            user_id=user_id,
            feedback_id=feedback_id,
            trace_id=trace_id,
            run_id=run_id,
            traceparent=traceparent,
        )
    except InvalidFeedbackError as error:
        delivery.processor.shutdown()
        option = _OPTION_OF_ARGUMENT.get(error.field, error.field)
        raise click.BadParameter(error.reason, param_hint=option) from None
    if recorded is None:
        delivery.processor.shutdown()
        err_console.print(
            "[red]Not sent:[/] nothing was recorded "
            "(OTEL_SDK_DISABLED=true, or OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING=true "
            "with a traceparent that is not sampled)"
        )
        ctx.exit(EXIT_REFUSED)
    delivery.sent(recorded.id)
    delivery.flush()
    outcome = delivery.finish()
    code = _report(outcome, recorded.id, delivery.exporter_names)
    if outcome.stuck:
        exit_now(code)
    ctx.exit(code)


def _report(outcome: Outcome, record_id: UUID, exporters: list[str]) -> int:
    reason = outcome.failed.get(record_id)
    if reason is None and outcome.dropped_records == 0:
        out_console.print(f"delivered {record_id} to {', '.join(exporters)}")
        return EXIT_OK
    why = scrub(reason or "dropped by an exporter")
    err_console.print(Text.assemble(("Not delivered: ", "red"), f"{record_id}: {why}"))
    return EXIT_REFUSED
