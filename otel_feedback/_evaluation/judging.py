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

import atexit
import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from otel_feedback import _attributes as a
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._evaluation.judged import JudgedRun
from otel_feedback._evaluation.results import BadResultError, Result, results_of
from otel_feedback._export.delivery.forkgate import inside
from otel_feedback._ids import evaluation_feedback_id, uuid_from_span_id
from otel_feedback._log import LossLog, logger
from otel_feedback._recording.carrier import deliver_remote, put_about, start_linked
from otel_feedback._recording.handoff import sinks_of_span
from otel_feedback._recording.record import recorded_about
from otel_feedback._recording.recorded import RecordedFeedback
from otel_feedback._recording.responses import run_of
from otel_feedback._recording.roots import CARRIER_SCOPE
from otel_feedback._recording.target import Remote

if TYPE_CHECKING:
    from otel_feedback._evaluation.evaluators import Evaluator

__all__ = [
    "ATTR_EVALUATOR",
    "ATTR_EVALUATOR_NAME",
    "Judging",
    "describe",
    "forget_family",
    "is_judges_own",
    "judging_spans",
    "note_judge_span",
]

ATTR_EVALUATOR: Final = a.PREFIX + "evaluator"
"""The evaluator's name, on its evaluator span and on every span started under it."""
ATTR_EVALUATOR_NAME: Final = "evaluator"
"""The key of the evaluator's name in each result's ``feedback_source.metadata``."""
_MAX_REASON_CHARS = 2_000
# Results no FeedbackSpanProcessor takes: counted, logged at once, then every 30 s and at exit.
_unexported = LossLog("evaluation result(s)")
atexit.register(_unexported.flush)

judging_spans: dict[int, tuple[int, str]] = {}
"""Evaluations under way and every span started under them: span id -> (evaluator span id,
evaluator name).

Online evaluation never judges these: a judge's own LLM call judged by the same judge would
never end. An evaluation's entries stay until it really ends, past its timeout too (its thread
may still call its model), and any number of processors may read them. Plain dict
operations, each one atomic.
"""
# A forked child runs none of its parent's evaluations.
os.register_at_fork(after_in_child=judging_spans.clear)


def note_judge_span(span: Any) -> None:
    """Mark ``span``, starting, as a judge's own when its parent is: noted, and attributed.

    Called for every span that starts (``on_start``): a dict test while no evaluation runs.
    The attribute lets stored traces tell a judge's spans from the application's.
    """
    if judging_spans:
        parent = span.parent
        if parent is not None:
            family = judging_spans.get(parent.span_id)
            if family is not None:
                judging_spans[span.context.span_id] = family
                span.set_attribute(ATTR_EVALUATOR, family[1])


def forget_family(evaluator_span_id: int) -> None:
    """The evaluation has really ended: forget its span and every span started under it."""
    for span_id, family in list(judging_spans.items()):
        if family[0] == evaluator_span_id:
            judging_spans.pop(span_id, None)


def is_judges_own(run: JudgedRun) -> bool:
    """Whether a stored span is an evaluator span, a carrier, or a judge's own call."""
    return run.scope == CARRIER_SCOPE or ATTR_EVALUATOR in run.attributes


def describe(error: BaseException) -> str:
    """``Type: message`` of an error whose ``__str__`` may itself raise."""
    name = type(error).__name__
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - any object may raise anything
        return f"{name} (its message could not be read)"
    return f"{name}: {text}" if text else name


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
        self._ended = False
        self._target = Remote(run.trace_id, run.span_id, True, local=local)
        self.span = start_linked(
            tracer,
            f"evaluate {evaluator.name}",
            self._target,
            {a.ATTR_SPAN_KIND: a.SPAN_KIND_EVALUATOR, ATTR_EVALUATOR: evaluator.name},
        )
        self.span_id = self.span.get_span_context().span_id
        judging_spans[self.span_id] = (self.span_id, evaluator.name)
        self._judged_run = run_of(run.attributes, run.name)

    def finish(self, returned: object) -> tuple[int, bool]:
        """Record what the evaluator returned: the records made, and whether all were results.

        What is not a result gives an error record saying why: the whole answer when it is no
        result at all, else each invalid result under its key, the others kept.
        """
        # Reading results and validating records is pydantic work, which a fork must not cut
        # through (see forkgate); the span ends outside, its processors may take their time.
        reason = None
        with inside():
            try:
                results = results_of(returned, evaluator=self.evaluator.name)
            except BadResultError as error:
                reason = f"returned an invalid result: {error}"
            except Exception as error:  # noqa: BLE001 - what it returned may raise anything
                reason = f"returned what cannot be read ({describe(error)})"
            if reason is not None:
                self._put_error(reason)
                made, valid = 1, False
            else:
                made = len(results)
                # Every result is recorded, valid or not: no short cut.
                outcomes = [self._record(result) for result in results]
                valid = all(outcomes)
        self._end(reason if reason is not None else None if valid else "an invalid result")
        return made, valid

    def fail(self, reason: str) -> None:
        """The evaluation failed: one ``error=True`` record under the evaluator's name."""
        with inside():
            self._put_error(reason)
        self._end(reason)

    def abandon(self) -> None:
        """End the span if nothing else did (a bug of ours): nothing stays open."""
        if not self._ended:
            self._end("the evaluation was abandoned")

    def forget(self) -> None:
        """The evaluation has really ended (past its timeout too): its spans are forgotten."""
        forget_family(self.span_id)

    def _put_error(self, reason: str) -> None:
        name = self.evaluator.name
        self._put(name, {"error": True, "comment": _bounded(f"{name} {reason}")})

    def _record(self, result: Result) -> bool:
        """Record one result; False when it was invalid (an error record of its key instead)."""
        try:
            self._put(result.key, dict(result.fields))
        except InvalidFeedbackError as error:
            reason = str(error)
        except Exception as error:  # noqa: BLE001 - the result's values may raise anything
            reason = describe(error)
        else:
            return True
        # One bad result does not cost the others: it becomes an error record of its key.
        self._put(result.key, {"error": True, "comment": _bounded(f"invalid result: {reason}")})
        return False

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
        if self._ended:
            return
        self._ended = True
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, _bounded(error)))
        self.span.end()


def _deliver(span: trace.Span, recorded: RecordedFeedback, target: Remote) -> None:
    timestamp = recorded._time_ns  # noqa: SLF001
    if span.is_recording():
        if not sinks_of_span(span):
            _unexported.report(
                "evaluation",
                "no FeedbackSpanProcessor (or none not shut down) on the evaluator span's "
                "provider: on the span's event only, not exported as feedback",
                1,
            )
        put_about(span, recorded, target, timestamp)
        return
    # Not recorded (its trace sampled out, or no SDK): straight to the processors.
    if deliver_remote(recorded, dataclasses.replace(target, sampled=False), timestamp) is None:
        logger.debug("Evaluation feedback %r had nowhere to go", recorded.key)


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"
