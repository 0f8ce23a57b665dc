"""One evaluation: an evaluator span about the judged run, and the feedback it records.

The evaluator span is OpenInference's EVALUATOR: a child of the judged span with exactly one
link to it, as late feedback's carriers are, so that trace views show the judge under the run
it judged and an instrumented judge's own LLM calls nest under it. It is the current span
while the evaluator runs. Each result becomes one ``gen_ai.evaluation.result`` event on it
naming the judged run's ids, read by the FeedbackSpanProcessors as the span ends: the record
has ``feedback_source_type="model"``, ``source_run_id`` the evaluator span's run id, and an id
derived from (evaluator, key, trace id, span id), the same each time the run is judged.

An evaluator that raises, times out or returns what is not a result gives one record with
``error=True`` under its own name as key, the reason as comment. When the evaluator span is
not recorded (its trace sampled out), the records go straight to the processors, as
carriers' do.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from otel_feedback import _attributes as a
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._evaluation.results import BadResultError, Result, results_of
from otel_feedback._export.delivery.forkgate import inside
from otel_feedback._ids import evaluation_feedback_id, uuid_from_span_id
from otel_feedback._log import logger
from otel_feedback._recording.carrier import deliver_remote, put_about, start_linked
from otel_feedback._recording.record import recorded_about
from otel_feedback._recording.recorded import RecordedFeedback
from otel_feedback._recording.responses import run_of
from otel_feedback._recording.target import Remote

if TYPE_CHECKING:
    from otel_feedback._evaluation.evaluators import Evaluator
    from otel_feedback._evaluation.judged import JudgedRun

__all__ = ["ATTR_EVALUATOR", "ATTR_EVALUATOR_NAME", "Judging", "judging_spans"]

ATTR_EVALUATOR: Final = a.PREFIX + "evaluator"
"""The evaluator's name, on its evaluator span."""
ATTR_EVALUATOR_NAME: Final = "evaluator"
"""The key of the evaluator's name in each result's ``feedback_source.metadata``."""
_MAX_REASON_CHARS = 2_000

judging_spans: set[int] = set()
"""Span ids of the evaluator spans running now and of every span started under them.

Online evaluation never judges these: a judge's own LLM call judged by the same judge would
never end. Plain set operations, each one atomic.
"""
# A forked child runs none of its parent's evaluations.
os.register_at_fork(after_in_child=judging_spans.clear)


class Judging:
    """One evaluation of ``run`` by ``evaluator``, from its span's start to its records."""

    def __init__(
        self,
        evaluator: Evaluator,
        run: JudgedRun,
        tracer: trace.Tracer,
        *,
        local: bool,
        on_record: Callable[[RecordedFeedback], None] | None = None,
    ) -> None:
        self.evaluator = evaluator
        self._on_record = on_record
        self.run = run
        self._target = Remote(run.trace_id, run.span_id, True, local=local)
        self.span = start_linked(
            tracer,
            f"evaluate {evaluator.name}",
            self._target,
            {a.ATTR_SPAN_KIND: a.SPAN_KIND_EVALUATOR, ATTR_EVALUATOR: evaluator.name},
        )
        self.span_id = self.span.get_span_context().span_id
        judging_spans.add(self.span_id)
        self._judged_run = run_of(run.attributes, run.name)

    def finish(self, returned: object) -> int:
        """Record what the evaluator returned; the number of records made.

        Returns -1 when what it returned is not a result: one error record says why.
        """
        # Reading results and validating records is pydantic work, which a fork must not cut
        # through (see forkgate); the span ends outside, its processors may take their time.
        made, reason = -1, None
        with inside():
            try:
                results = results_of(returned, evaluator=self.evaluator.name)
            except BadResultError as error:
                reason = f"returned an invalid result: {error}"
                self._put_error(reason)
            else:
                made = sum(self._record(result) for result in results)
        self._end(reason)
        return made

    def fail(self, reason: str) -> None:
        """The evaluation failed: one ``error=True`` record under the evaluator's name."""
        with inside():
            self._put_error(reason)
        self._end(reason)

    def _put_error(self, reason: str) -> None:
        name = self.evaluator.name
        self._put(name, {"error": True, "comment": _bounded(f"{name} {reason}")})

    def _record(self, result: Result) -> int:
        try:
            self._put(result.key, dict(result.fields))
        except InvalidFeedbackError as error:
            # One bad result does not cost the others: it becomes an error record of its key.
            self._put(result.key, {"error": True, "comment": _bounded(f"invalid result: {error}")})
        return 1

    def _put(self, key: str, fields: dict[str, Any]) -> None:
        run = self.run
        # The evaluator's name in the source's metadata, where receivers show who judged
        # (MLflow's source id); what the evaluator said of itself (evaluator_info) joins it.
        fields["source_info"] = {
            ATTR_EVALUATOR_NAME: self.evaluator.name,
            **fields.get("source_info", {}),
        }
        recorded = recorded_about(
            run.trace_id,
            run.span_id,
            key=key,
            source_type="model",
            source_run_id=uuid_from_span_id(self.span_id),
            feedback_id=evaluation_feedback_id(self.evaluator.name, key, run.trace_id, run.span_id),
            **fields,
        )
        if self._judged_run:
            recorded._run = self._judged_run  # noqa: SLF001 - the judged span's correlation keys
        _deliver(self.span, recorded, self._target)
        if self._on_record is not None:
            self._on_record(recorded)

    def _end(self, error: str | None) -> None:
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, _bounded(error)))
        self.span.end()
        judging_spans.discard(self.span_id)


def _deliver(span: trace.Span, recorded: RecordedFeedback, target: Remote) -> None:
    timestamp = recorded._time_ns  # noqa: SLF001
    if span.is_recording():
        put_about(span, recorded, target, timestamp)
        return
    # Not recorded (its trace sampled out, or no SDK): straight to the processors.
    if deliver_remote(recorded, dataclasses.replace(target, sampled=False), timestamp) is None:
        logger.debug("Evaluation feedback %r had nowhere to go", recorded.key)


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"
