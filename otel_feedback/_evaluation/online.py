"""OnlineEvaluationProcessor: evaluators judge spans as they end, in the background."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_feedback._evaluation.evaluators import EvaluatorsLike, evaluators_of
from otel_feedback._evaluation.judged import JudgedRun
from otel_feedback._evaluation.judging import judging_spans, note_judge_span
from otel_feedback._evaluation.runner import Runner
from otel_feedback._evaluation.stats import (
    BUSY,
    FILTER_RAISED,
    FILTERED,
    SAMPLED_OUT,
    SHUT_DOWN,
    EvaluationStats,
    Tally,
)
from otel_feedback._ids import LOW_64_BITS, sampling_bound
from otel_feedback._log import warn_once
from otel_feedback._recording.handoff import sinks_of_provider
from otel_feedback._recording.roots import CARRIER_SCOPE
from otel_feedback._upstream import register_upstream
from otel_feedback._version import __version__

__all__ = ["OnlineEvaluationProcessor", "checked_rate"]

DEFAULT_MAX_QUEUE_SIZE = 1_000
DEFAULT_MAX_WORKERS = 4
DEFAULT_TIMEOUT_MILLIS = 30_000.0
MAX_TIMEOUT_MILLIS = 86_400_000.0


class OnlineEvaluationProcessor(SpanProcessor):
    """Hands ended spans to evaluators in the background; their results become feedback.

    Each evaluator is a plain callable, sync or ``async``, taking one :class:`JudgedRun` (the
    ended span, with its inputs and outputs read from the GenAI, OpenInference or OpenLLMetry
    conventions) and returning LangSmith's evaluation-result shape: a dict with ``key`` and
    any of ``score``, ``value``, ``comment``, ``correction``; a list of those;
    ``{"results": [...]}``; a bare bool, number or string (keyed by the evaluator's name); or
    ``None``. Each evaluation runs inside an evaluator span (OpenInference kind EVALUATOR,
    child of and linked to the judged span) and each result is recorded on it as feedback on
    the judged run, with ``feedback_source_type="model"``, ``source_run_id`` the evaluator
    span's run id, and an id derived from (evaluator, key, trace id, span id): judging a span
    again updates its feedback. A :class:`FeedbackSpanProcessor` on the same provider exports
    the records. An evaluator that raises or times out gives one ``error=True`` record.

    ``on_end`` never waits: a span is sampled by its trace id (a trace is judged whole or not
    at all), filtered, then queued; what is not judged is counted by reason in
    :meth:`stats`, and the losses among them (queue full, shut down) are logged.

    Example::

        def sentiment(run):
            return {"key": "user_sentiment", "score": my_model(run.input_text)}

        provider.add_span_processor(OnlineEvaluationProcessor([sentiment], sample_rate=0.1))

    Args:
        evaluators: callables, or a mapping from a name to each; the name (else the
            callable's ``__name__``) names its spans and is part of its results' ids.
        sample_rate: the share of traces judged, decided by trace id as the SDK's
            ``TraceIdRatioBased`` sampler does.
        span_filter: judge only the spans for which it returns true (called on the
            application's thread, in ``on_end``: keep it cheap).
        max_queue_size: spans waiting at most; past it, spans are skipped and counted.
        max_workers: evaluations running at once (and threads for plain evaluators).
        evaluation_timeout_millis: the time one evaluation may take.
        tracer_provider: where evaluator spans are made; default the global provider.
    """

    def __init__(
        self,
        evaluators: EvaluatorsLike,
        *,
        sample_rate: float = 1.0,
        span_filter: Callable[[ReadableSpan], bool] | None = None,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_workers: int = DEFAULT_MAX_WORKERS,
        evaluation_timeout_millis: float = DEFAULT_TIMEOUT_MILLIS,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        named = evaluators_of(evaluators)
        # The sampling rule of trace_sampled(), its bound worked out once.
        self._bound = sampling_bound(checked_rate(sample_rate, "sample_rate"))
        if span_filter is not None and not callable(span_filter):
            raise ValueError(f"span_filter: must be callable, got {type(span_filter).__name__}")
        self._span_filter = span_filter
        self._timeout_s = _positive(evaluation_timeout_millis, "evaluation_timeout_millis") / 1000
        self._provider = tracer_provider
        self._tracer_of: tuple[object, trace.Tracer] | None = None
        self._closed = False
        self._tally = Tally()
        self._runner: Runner[ReadableSpan] = Runner(
            named,
            to_run=JudgedRun.from_span,
            tracer=self._tracer,
            max_queue_size=_count(max_queue_size, "max_queue_size"),
            max_workers=_count(max_workers, "max_workers"),
            timeout_s=self._timeout_s,
            local=True,
            tally=self._tally,
        )
        self.evaluators = tuple(evaluator.name for evaluator in named)
        """The evaluators' names, in order."""
        register_upstream(self)

    def stats(self) -> EvaluationStats:
        """What became of the spans so far: queued, judged, timed out, skipped by reason."""
        return self._runner.stats()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:  # noqa: ARG002
        """Note spans started under an evaluator span: they are the judge's, never judged."""
        note_judge_span(span)

    def on_end(self, span: ReadableSpan) -> None:
        """Queue ``span`` for evaluation, unless sampled out, filtered or the queue is full."""
        context = span.context
        if context is None:
            return
        if judging_spans and context.span_id in judging_spans:
            return  # an evaluator span, or one of its judge's own (forgotten when it ends)
        scope = span.instrumentation_scope
        if scope is not None and scope.name == CARRIER_SCOPE:
            return  # feedback's own carriers
        if self._closed:
            self._tally.skip(SHUT_DOWN)
            return
        if context.trace_id & LOW_64_BITS >= self._bound:
            self._tally.chose(SAMPLED_OUT)
            return
        span_filter = self._span_filter
        if span_filter is not None:
            try:
                taken = span_filter(span)
            except Exception as error:  # noqa: BLE001 - the application's code must not break on_end
                warn_once(
                    "evaluation span_filter",
                    "span_filter raised %r; spans it raises on are not evaluated",
                    error,
                )
                self._tally.skip(FILTER_RAISED)
                return
            if not taken:
                self._tally.chose(FILTERED)
                return
        if not self._runner.put(span):
            self._tally.skip(BUSY)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait for the evaluation of every span queued so far; False if time ran out.

        The results are then on their way to the FeedbackSpanProcessors, whose own flush
        waits for this one first.
        """
        return self._runner.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Judge what is queued within the evaluation timeout, then stop; the rest is counted."""
        if self._closed:
            return
        self._closed = True
        self._runner.shutdown(self._timeout_s)

    def _flush_upstream(self, timeout_s: float) -> bool:
        return self._runner.flush(timeout_s)

    def _close_upstream(self, sink: object) -> None:
        provider = self._provider if self._provider is not None else trace.get_tracer_provider()
        takers = sinks_of_provider(provider)
        if sink in takers and len(takers) == 1:
            # The last FeedbackSpanProcessor of this provider is going: results would be lost.
            self._closed = True
            self._runner.shutdown(0.0)

    def _tracer(self) -> trace.Tracer:
        # The provider as it is now: the global one may be set after this processor is made.
        provider = self._provider if self._provider is not None else trace.get_tracer_provider()
        cached = self._tracer_of
        if cached is None or cached[0] is not provider:
            cached = self._tracer_of = (provider, provider.get_tracer(CARRIER_SCOPE, __version__))
        return cached[1]

    def __repr__(self) -> str:
        return f"OnlineEvaluationProcessor(evaluators={list(self.evaluators)!r})"


def checked_rate(value: object, argument: str) -> float:
    """``value`` as a float; ``ValueError`` naming ``argument`` unless it is from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{argument}: must be a number from 0 to 1, got {value!r}")
    return float(value)


def _positive(value: object, argument: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_TIMEOUT_MILLIS  # a longer one would make shutdown wait
    ):
        raise ValueError(
            f"{argument}: must be a positive number of at most {MAX_TIMEOUT_MILLIS:g} "
            f"(a day), got {value!r}"
        )
    return float(value)


def _count(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument}: must be a positive integer, got {value!r}")
    return value
