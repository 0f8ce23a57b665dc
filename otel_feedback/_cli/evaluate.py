"""``otel-feedback evaluate``: the online evaluators, run over stored traces.

The files hold OTLP/JSON lines, as the OpenTelemetry Collector's file exporter writes them.
Each span is judged as online evaluation would judge it when it ended (the same
:class:`JudgedRun`, the same evaluator spans, the same result ids, so judging a span again,
online or here, updates its feedback), and the results go to the configured exporters. The
evaluator spans go where the application's spans go (``OTEL_TRACES_EXPORTER``), so that each
score's judge is found beside the run it judged.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import click
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from otel_feedback import _environment as env
from otel_feedback._cli._common import (
    EXIT_OK,
    EXIT_REFUSED,
    SECONDS,
    Finite,
    command_deadline,
    err_console,
    notice,
    out_console,
    verbose,
)
from otel_feedback._cli._deadline import Deadline, exit_now, run_within
from otel_feedback._cli._delivery import Delivery, open_delivery
from otel_feedback._cli._input import lines_of_stream
from otel_feedback._cli._redact import scrub
from otel_feedback._cli._rows import parse_json_line
from otel_feedback._evaluation.evaluators import evaluators_of, load_evaluator
from otel_feedback._evaluation.judged import JudgedRun
from otel_feedback._evaluation.judging import is_judges_own, note_judge_span
from otel_feedback._evaluation.online import (
    DEFAULT_MAX_WORKERS,
    DEFAULT_TIMEOUT_MILLIS,
)
from otel_feedback._evaluation.otlp_json import InvalidSpanError, runs_of_otlp_json
from otel_feedback._evaluation.runner import Runner
from otel_feedback._evaluation.stats import Tally
from otel_feedback._ids import trace_sampled
from otel_feedback._recording.recorded import RecordedFeedback
from otel_feedback._recording.roots import CARRIER_SCOPE
from otel_feedback._version import __version__

__all__ = ["evaluate"]

# Runs read ahead of the evaluations: enough to keep every worker busy, little memory.
_READ_AHEAD = 256


class _JudgesOwn(SpanProcessor):
    """Marks the spans a judge makes under its evaluator span, as online evaluation does."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:  # noqa: ARG002
        note_judge_span(span)


@dataclass
class _Summary:
    """The results per key, as they are recorded (on the runner's threads)."""

    count: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    scores: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def note(self, recorded: RecordedFeedback, delivery: Delivery) -> None:
        delivery.sent(recorded.id)
        record = recorded.to_feedback()
        self.count[record.key] += 1
        if record.error:
            self.errors[record.key] += 1
        elif isinstance(record.score, int | float):
            self.scores[record.key].append(float(record.score))


@click.command("evaluate")
@click.argument("files", nargs=-1, required=True, type=click.File("rb"))
@click.option(
    "-e",
    "--evaluator",
    "references",
    multiple=True,
    metavar="MODULE:FUNCTION",
    help="An evaluator, e.g. mypackage.evals:correctness (repeat for more) "
    "[default: OTEL_PYTHON_FEEDBACK_EVALUATORS].",
)
@click.option(
    "--sample-rate",
    type=Finite(0, 1),
    help="The share of traces judged, by trace id as online evaluation decides "
    "[default: OTEL_PYTHON_FEEDBACK_EVALUATION_SAMPLE_RATE, else 1].",
)
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_WORKERS,
    show_default=True,
    help="Evaluations running at once.",
)
@click.option(
    "--evaluation-timeout",
    type=SECONDS,
    default=DEFAULT_TIMEOUT_MILLIS / 1000,
    show_default=True,
    help="Seconds one evaluation may take; a slower one is recorded as an error.",
)
@click.option(
    "--timeout",
    type=SECONDS,
    help="Seconds delivery may take once the last evaluation ended "
    "[default: OTEL_PYTHON_FEEDBACK_EXPORT_TIMEOUT].",
)
@click.pass_context
def evaluate(  # noqa: PLR0917 - click passes each option by keyword
    ctx: click.Context,
    files: tuple[IO[bytes], ...],
    references: tuple[str, ...],
    sample_rate: float | None,
    max_workers: int,
    evaluation_timeout: float,
    timeout: float | None,
) -> None:
    """Judge the spans in FILES (- for stdin) with evaluators; send their results.

    FILES hold OTLP/JSON lines, as the OpenTelemetry Collector's file exporter writes them.
    Each span is judged as online evaluation would judge it: inside an evaluator span, with
    feedback ids derived from (evaluator, key, trace, span), so judging spans again updates
    their feedback. Lines or spans that cannot be read are named by line and skipped.

    Exit status: 0 all judged and delivered, 1 a line or span unreadable, an evaluator
    failed, or a result not delivered, 2 bad arguments.
    """
    named = _evaluators(references)
    rate = env.evaluation_sample_rate() if sample_rate is None else sample_rate
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "otel-feedback")}
    )
    # --timeout bounds each export while evaluating, and delivery once they are done.
    bound = command_deadline(timeout)
    delivery = open_delivery(ctx, bound, notice=notice, verbose=verbose(ctx))
    provider = _provider(resource, delivery)
    summary = _Summary()
    runner: Runner[JudgedRun] = Runner(
        named,
        to_run=lambda run: run,
        tracer=lambda: provider.get_tracer(CARRIER_SCOPE, __version__),
        max_queue_size=_READ_AHEAD,
        max_workers=max_workers,
        timeout_s=evaluation_timeout,
        local=False,
        tally=Tally("otel-feedback evaluate"),
        on_record=lambda recorded: summary.note(recorded, delivery),
    )
    problems: list[str] = []
    spans = judged = own = not_judged = 0
    total = sum(_size(file) or 0 for file in files) or None
    with Progress(
        TextColumn("evaluating"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[spans]} span(s)"),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("evaluate", total=total, spans=0)
        # Evaluations end within their timeout, or hold their worker and are given up; an
        # async evaluator that blocks its event loop stops every evaluation, which no
        # timeout can end: the command gives up once no run was judged for this long.
        stall_s = 2 * evaluation_timeout + 5
        stalled = False
        for file in files:
            name = "stdin" if file.name == "<stdin>" else file.name
            for run in _runs(file, name, problems, lambda n: progress.advance(task, n)):
                spans += 1
                if is_judges_own(run):
                    own += 1  # an evaluator span, or a judge's own call: never judged
                elif trace_sampled(run.trace_id, rate):
                    judged += 1
                    queued = functools.partial(runner.put, run, wait_s=stall_s)
                    if stalled or not _while_progress(runner, queued):
                        stalled = True
                        not_judged += 1
                progress.update(task, spans=spans)
        stalled = not _while_progress(runner, lambda: runner.flush(stall_s)) or stalled
        runner.shutdown(timeout_s=0)
    stats = runner.stats()
    if stalled:
        problems.append(
            f"the evaluators judged nothing for {stall_s:g} s, and judging stopped (an async "
            "evaluator that blocks stops them all, a plain one that hangs holds its worker)"
        )
    if not_judged:
        problems.append(f"{not_judged} span(s) not judged: read after judging stopped")
    for reason, count in sorted(stats.skipped.items()):
        problems.append(f"{count} span(s) not judged: {reason}")
    judged -= not_judged + sum(stats.skipped.values())
    deadline = Deadline(bound.seconds, origin=bound.origin, started=time.monotonic())
    outcome = _finish(delivery, provider, deadline)
    if own:
        out_console.print(f"{own} span(s) of evaluators and their judges left out", markup=False)
    _report(summary, spans, judged, stats.failed + stats.timed_out, problems, delivery, outcome)
    failed = stats.failed + stats.timed_out
    code = EXIT_REFUSED if problems or failed or outcome.failed else EXIT_OK
    if outcome.stuck:
        exit_now(code)
    ctx.exit(code)


def _while_progress(runner: Runner[JudgedRun], attempt: Callable[[], bool]) -> bool:
    """Try ``attempt`` (a bounded wait) again while the evaluators make progress meanwhile.

    False once an attempt failed and no run was judged during it: the evaluators stopped.
    """
    while True:
        before = runner.finished()
        if attempt():
            return True
        if runner.finished() == before:
            return False


def _evaluators(references: tuple[str, ...]) -> Any:
    chosen = references or tuple(env.evaluator_references())
    if not chosen:
        raise click.UsageError(
            f"no evaluator: give --evaluator MODULE:FUNCTION or set "
            f"{env.OTEL_PYTHON_FEEDBACK_EVALUATORS}"
        )
    # Imported from the current directory too, as uvicorn and gunicorn import an app: a
    # console script's own directory is on the path, the user's project is not.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    loaded = {}
    for reference in chosen:
        try:
            name, function = load_evaluator(reference, argument="--evaluator")
        except ValueError as error:
            raise click.BadParameter(
                str(error).removeprefix("--evaluator: "), param_hint="'--evaluator'"
            ) from None
        loaded[name] = function
    return evaluators_of(loaded, argument="--evaluator")


def _provider(resource: Resource, delivery: Delivery) -> TracerProvider:
    """The provider of the evaluator spans: the spans to OTEL_TRACES_EXPORTER, results to ours."""
    from otel_feedback._configure import _span_exporter_from_environment  # noqa: PLC0415

    provider = TracerProvider(resource=resource)
    provider.add_span_processor(_JudgesOwn())
    exporter = _span_exporter_from_environment()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    provider.add_span_processor(delivery.processor)
    # Global, so that an instrumented judge's own LLM calls nest under its evaluator span.
    trace.set_tracer_provider(provider)
    return provider


def _runs(file: IO[bytes], name: str, problems: list[str], advance: Any) -> Any:
    for line in lines_of_stream(file):
        advance(len(line.text or "") + 1)
        where = f"{name} line {line.number}"
        if line.text is None:
            problems.append(f"{where}: {line.error}")
            continue
        document, error = parse_json_line(line.text)
        if error is not None:
            problems.append(f"{where}: {error}")
            continue
        if not isinstance(document, dict):
            problems.append(f"{where}: not a JSON object: {type(document).__name__}")
            continue
        for run in runs_of_otlp_json(document):
            if isinstance(run, InvalidSpanError):
                problems.append(f"{where}: {run}")
            else:
                yield run


def _finish(delivery: Delivery, provider: TracerProvider, deadline: Deadline) -> Any:
    delivery.deadline = deadline

    def spans_out() -> None:
        provider.force_flush(max(1, int(deadline.left() * 1000)))

    run_within(deadline, spans_out)
    outcome = delivery.finish()
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    run_within(deadline, provider.shutdown)
    return outcome


def _report(  # noqa: PLR0917 - one call site, each a count of its own
    summary: _Summary,
    spans: int,
    judged: int,
    failed: int,
    problems: list[str],
    delivery: Delivery,
    outcome: Any,
) -> None:
    table = Table("key", "results", "mean score", "errors")
    for key in sorted(summary.count):
        scores = summary.scores.get(key)
        mean = f"{sum(scores) / len(scores):.3f}" if scores else "-"
        table.add_row(key, str(summary.count[key]), mean, str(summary.errors[key]))
    if summary.count:
        out_console.print(table)
    out_console.print(
        f"judged {judged} of {spans} span(s); {sum(summary.count.values())} result(s), "
        f"{outcome.delivered} of {outcome.sent} delivered to "
        f"{', '.join(delivery.exporter_names)}; {failed} evaluation(s) failed",
        markup=False,
    )
    for problem in problems:
        err_console.print(problem, markup=False)
    for record_id, reason in list(outcome.failed.items())[:20]:
        err_console.print(f"result {record_id}: {scrub(reason)}", markup=False)


def _size(file: IO[bytes]) -> int | None:
    try:
        return os.fstat(file.fileno()).st_size or None
    except (OSError, ValueError, AttributeError):
        return None
