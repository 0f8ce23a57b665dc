"""The ``otel-feedback`` command: record, import, evaluate, summarise, diagnose, make tokens.

Configured by the same environment variables as the library. Exit status: 0 all done,
1 something refused or undeliverable, 2 a usage error.
"""

from __future__ import annotations

import logging

import click

from otel_feedback._cli._common import Settings
from otel_feedback._cli.doctor import doctor
from otel_feedback._cli.evaluate import evaluate
from otel_feedback._cli.importing import import_
from otel_feedback._cli.record import record
from otel_feedback._cli.summary import summary
from otel_feedback._cli.token import token
from otel_feedback._version import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="otel-feedback")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also show the log lines of the exporters and the SDK while delivering.",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Feedback as OpenTelemetry records, from the command line.

    Configured by the library's environment variables (OTEL_PYTHON_FEEDBACK_EXPORTER,
    OTEL_EXPORTER_OTLP_*, PHOENIX_*, ...). Run `otel-feedback doctor` to see what they
    amount to and whether feedback would arrive.
    """
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    if verbose:
        logging.getLogger("otel_feedback").setLevel(logging.DEBUG)
    ctx.obj = Settings(verbose=verbose)


main.add_command(record)
main.add_command(import_)
main.add_command(evaluate)
main.add_command(summary)
main.add_command(doctor)
main.add_command(token)
