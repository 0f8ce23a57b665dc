"""``otel-feedback token``: make and check feedback tokens, to try a web flow by hand."""

from __future__ import annotations

from datetime import timedelta

import click

from otel_feedback._cli._common import EXIT_OK, EXIT_REFUSED, err_console, out_console
from otel_feedback._errors import FeedbackTokenError, InvalidFeedbackError
from otel_feedback._recording.tokens import create_feedback_token, read_feedback_token

__all__ = ["token"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _Duration(click.ParamType):  # type: ignore[type-arg]
    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        unit = _UNITS.get(text[-1:])
        number = text[:-1] if unit else text
        try:
            seconds = float(number) * (unit or 1)
        except ValueError:
            self.fail(
                f"must be a number of seconds, or like 90s, 15m, 3h, 2d: {value!r}", param, ctx
            )
        if not seconds > 0:
            self.fail(f"must be positive: {value!r}", param, ctx)
        try:
            return timedelta(seconds=seconds)
        except (OverflowError, ValueError):
            self.fail(f"too large: {value!r}", param, ctx)


@click.group()
def token() -> None:
    """Make and check feedback tokens (secret: OTEL_PYTHON_FEEDBACK_TOKEN_SECRET)."""


@token.command()
@click.option("--trace-id", required=True, help="The run's trace: 32 hex digits or a UUID.")
@click.option("--run-id", help="The run's span: 16 hex digits or a run UUID; none: the trace.")
@click.option("--key", help="The only feedback key the token allows [default: any].")
@click.option(
    "--expires-in", type=_Duration(), default="3h", show_default=True, help="e.g. 15m, 3h, 2d."
)
@click.pass_context
def create(
    ctx: click.Context,
    trace_id: str,
    run_id: str | None,
    key: str | None,
    expires_in: timedelta,
) -> None:
    """Print a token that allows feedback on one run until it expires."""
    try:
        made = create_feedback_token(
            trace_id=trace_id, run_id=run_id, key=key, expires_in=expires_in
        )
    except InvalidFeedbackError as error:  # FeedbackTokenError included: the secret
        raise click.BadParameter(error.reason, param_hint=_option(error.field)) from None
    click.echo(made)
    ctx.exit(EXIT_OK)


@token.command()
@click.argument("value", metavar="TOKEN")
@click.option("--key", help="Check also that the token allows this key.")
@click.pass_context
def verify(ctx: click.Context, value: str, key: str | None) -> None:
    """Check TOKEN's signature and expiry, and show the run and key it allows.

    Exit status: 0 valid, 1 refused (garbled, tampered, expired, other key), 2 no secret.
    """
    try:
        claims = read_feedback_token(value)
    except FeedbackTokenError as error:
        if error.field == "secret":
            raise click.BadParameter(error.reason, param_hint=_option("secret")) from None
        err_console.print(f"refused: {error}", markup=False)
        ctx.exit(EXIT_REFUSED)
    if key is not None and claims.key is not None and key != claims.key:
        err_console.print(f"refused: key: the token allows only the key {claims.key!r}")
        ctx.exit(EXIT_REFUSED)
    out_console.print(f"valid until {claims.expires.isoformat()}", markup=False)
    out_console.print(f"trace_id {claims.trace_id:032x}", markup=False)
    run = f"{claims.span_id:016x}" if claims.span_id else "(the whole trace)"
    out_console.print(f"run_id   {run}", markup=False)
    out_console.print(f"key      {claims.key if claims.key is not None else '(any)'}", markup=False)
    ctx.exit(EXIT_OK)


def _option(field: str) -> str:
    if field == "secret":
        return "OTEL_PYTHON_FEEDBACK_TOKEN_SECRET"
    return "--" + field.replace("_", "-")
