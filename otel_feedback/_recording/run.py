"""current_run(): the current span as the handle a web app sends to its frontend."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from opentelemetry import trace

from otel_feedback._ids import traceparent_of, uuid_from_span_id, uuid_from_trace_id
from otel_feedback._recording.roots import real_root_of

__all__ = ["RunHandle", "current_run"]


@dataclass(frozen=True)
class RunHandle:
    """A run as a frontend needs it: its ids, its trace's root, its traceparent, feedback tokens.

    Example::

        run = current_run()
        response = {"answer": answer, "run": run.as_dict() if run else None}
    """

    trace_id: UUID
    """The run's trace, as the record holds it (``UUID(int=otel_trace_id)``)."""
    run_id: UUID
    """The run, as LangSmith reads it (``UUID(int=otel_span_id)``)."""
    traceparent: str
    """The W3C ``traceparent`` of the run: ``record_feedback(traceparent=...)`` takes it."""
    span_context: trace.SpanContext = field(repr=False, compare=False)
    """The run's OpenTelemetry span context."""
    root_run_id: UUID | None = None
    """The root run of the trace (``UUID(int=root_span_id)``), LangSmith's id of the trace;
    ``None`` when the trace's root is not in this process (it began elsewhere).

    Feedback on the whole trace from another process:
    ``record_feedback(key, trace_id=run.trace_id, run_id=run.root_run_id)``.
    """

    def feedback_token(
        self,
        *,
        key: str | None = None,
        expires_in: timedelta = timedelta(hours=3),
        secret: str | bytes | None = None,
    ) -> str:
        """A signed token that lets its holder give feedback on this run only.

        As :func:`create_feedback_token` for this run; see it for the arguments. The token
        also carries the trace's root when it is known here.

        Raises:
            FeedbackTokenError: no secret, or one that is too short.
            InvalidFeedbackError: a bad key or ``expires_in``.
        """
        from otel_feedback._recording.tokens import create_feedback_token  # noqa: PLC0415

        return create_feedback_token(
            span=self.span_context, key=key, expires_in=expires_in, secret=secret
        )

    def as_dict(self) -> dict[str, str]:
        """``trace_id``, ``run_id``, ``traceparent`` (and ``root_run_id`` when known) as strings."""
        ids = {
            "trace_id": str(self.trace_id),
            "run_id": str(self.run_id),
            "traceparent": self.traceparent,
        }
        if self.root_run_id is not None:
            ids["root_run_id"] = str(self.root_run_id)
        return ids


def current_run() -> RunHandle | None:
    """The current span as a :class:`RunHandle`; ``None`` when no span is recording.

    Example::

        with tracer.start_as_current_span("answer"):
            run = current_run()
            token = run.feedback_token(key="user_rating")
    """
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    context = span.get_span_context()
    root = real_root_of(context.trace_id)
    return RunHandle(
        trace_id=uuid_from_trace_id(context.trace_id),
        run_id=uuid_from_span_id(context.span_id),
        traceparent=traceparent_of(
            context.trace_id, context.span_id, sampled=context.trace_flags.sampled
        ),
        span_context=context,
        root_run_id=uuid_from_span_id(root) if root else None,
    )
