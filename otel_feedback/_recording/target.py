"""Which run a piece of feedback is about: the current span, a span, ids, or a traceparent."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from otel_feedback import _environment as env
from otel_feedback._errors import InvalidFeedbackError
from otel_feedback._ids import IdLike, parse_span_id, parse_trace_id, parse_traceparent
from otel_feedback._log import logger
from otel_feedback._recording.responses import run_of_span

__all__ = [
    "Remote",
    "SpanLike",
    "Target",
    "current_target",
    "read_argument",
    "resolve_target",
    "tracing_off",
]


@dataclass(frozen=True, slots=True)
class Remote:
    """A run known by its ids only: ended, in another process, or not recorded here.

    ``span_id`` 0 means the whole trace. ``sampled`` is the trace's sampling decision when
    known (from a SpanContext or traceparent); ids alone are taken as sampled. ``run`` holds
    the judged span's correlation attributes when the span itself was given. ``local``: the
    span was made in this process (known from its SpanContext); ``flags``: its trace flags
    when known.
    """

    trace_id: int
    span_id: int
    sampled: bool
    run: Mapping[str, str] | None = None
    local: bool = False
    flags: int = trace.TraceFlags.SAMPLED


_T = TypeVar("_T")

# A recording span to put the event on, a run known by ids, or nothing to attach to.
Target = trace.Span | Remote | None


SpanLike = trace.Span | trace.SpanContext | ReadableSpan
"""The judged span: live or ended, or as exporters hold it, or just its context."""


def resolve_target(
    span: SpanLike | None,
    trace_id: IdLike | None,
    run_id: IdLike | None,
    traceparent: str | None,
) -> Target:
    """The run the caller means; with no argument given, the current span's.

    A span whose context is not valid (all-zero ids) while tracing is off is no run at all,
    like no span: that is the span every tracer hands out with no SDK set up, so code that
    passes its span on must run unchanged without tracing (in unit tests, say).

    Raises:
        InvalidFeedbackError: conflicting targets, a malformed or all-zero id, a ``span``
            that is not a span, or a span with no valid context while tracing is on.
    """
    _check_one_way(span, trace_id, run_id, traceparent)
    if trace_id is not None:
        span_id = 0 if run_id is None else read_argument(parse_span_id, run_id, "run_id")
        trace_number = read_argument(parse_trace_id, trace_id, "trace_id")
        return _prefer_current(Remote(trace_number, span_id, True))
    if traceparent is not None:
        return _prefer_current(read_argument(_parse_traceparent, traceparent, "traceparent"))
    if span is None:
        return current_target()
    return read_argument(_of_span, span, "span")


def _of_span(span: SpanLike, _argument: str) -> Target:
    if isinstance(span, trace.SpanContext):
        if not span.is_valid:
            return _invalid("the SpanContext is not valid (all-zero ids)")
        return _prefer_current(_remote_of(span))
    if isinstance(span, trace.Span) and span.is_recording():
        return span
    return _ended(span)


def read_argument(read: Callable[[Any, str], _T], value: Any, argument: str) -> _T:
    """``read(value, argument)``, where anything the caller's object raises is refused by name.

    An argument's own methods (``__repr__`` when an error message quotes it, ``strip``,
    ``get_span_context``) may raise anything: it becomes an InvalidFeedbackError naming the
    argument, never another exception.
    """
    try:
        return read(value, argument)
    except InvalidFeedbackError:
        raise
    except Exception as exc:  # noqa: BLE001 - a caller's object may raise anything
        raise InvalidFeedbackError(
            argument,
            f"could not be read: a {type(value).__name__} whose methods raise {type(exc).__name__}",
        ) from None


def _check_one_way(
    span: SpanLike | None,
    trace_id: IdLike | None,
    run_id: IdLike | None,
    traceparent: str | None,
) -> None:
    """Refuse targets given more than one way, and a run_id without its trace_id."""
    given = [
        name
        for name, value in (("span", span), ("trace_id", trace_id), ("traceparent", traceparent))
        if value is not None
    ]
    if len(given) > 1:
        raise InvalidFeedbackError(
            given[1], f"cannot be combined with {given[0]}: give the run one way only"
        )
    if run_id is not None and trace_id is None:
        field = given[0] if given else "trace_id"
        reason = (
            "cannot be combined with run_id: give the run one way only"
            if given
            else "is required with run_id: OpenTelemetry places feedback inside its trace"
        )
        raise InvalidFeedbackError(field, reason)


def _invalid(reason: str) -> Target:
    """A span with no valid context: no run (None) while tracing is off, else an error."""
    if tracing_off():
        _no_run()
        return None
    raise InvalidFeedbackError("span", reason)


def _ended(span: object) -> Target:
    """An ended SDK span, or a ReadableSpan as exporters and evaluators hold them."""
    get_context = getattr(span, "get_span_context", None)
    context = get_context() if callable(get_context) else None
    if not isinstance(context, trace.SpanContext):
        raise InvalidFeedbackError(
            "span", f"must be a Span, a ReadableSpan or a SpanContext, got {type(span).__name__}"
        )
    if not context.is_valid:
        return _invalid("the span has no valid SpanContext")
    return Remote(
        context.trace_id,
        context.span_id,
        context.trace_flags.sampled,
        run_of_span(span),
        local=not context.is_remote,
        flags=int(context.trace_flags),
    )


def tracing_off() -> bool:
    """Whether no SDK TracerProvider is set globally: every span is the API's no-op span."""
    return not isinstance(trace.get_tracer_provider(), TracerProvider)


def current_target() -> Target:
    """The current span when it records, else its ids when it has any."""
    current = trace.get_current_span()
    if current.is_recording():
        return current
    target = _remote_of(current.get_span_context())
    if target is None:
        _no_run()
    return target


_AUTO_INSTRUMENTATION = "opentelemetry.instrumentation.auto_instrumentation"
_explained = False


def _no_run() -> None:
    """No run to attach feedback to: say once why when opentelemetry-instrument set up nothing.

    opentelemetry-distro makes OTLP/gRPC the default, and when the gRPC exporter is missing
    the SDK's start-up fails before any instrumentor runs: no span records, and no processor
    exports feedback. The first feedback that finds no run says so, with the fix.
    """
    global _explained  # noqa: PLW0603 - checked once per process
    if _explained:
        return
    _explained = True
    if (
        _AUTO_INSTRUMENTATION in sys.modules
        and tracing_off()
        and not env.sdk_disabled()
        and env.otlp_traces_protocol() == env.PROTOCOL_GRPC
        and not env.grpc_exporter_installed()
    ):
        logger.error(
            "opentelemetry-instrument set up no tracing: the OTLP protocol is grpc "
            "(opentelemetry-distro's default) but the gRPC exporter is not installed, so no "
            "span and no feedback is exported. Install it: pip install 'otel-feedback[grpc]'; "
            "or use OTLP/HTTP: OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and the endpoint's "
            "HTTP port (4318)"
        )


def _remote_of(context: trace.SpanContext) -> Remote | None:
    if not context.is_valid:
        return None
    return Remote(
        context.trace_id,
        context.span_id,
        context.trace_flags.sampled,
        local=not context.is_remote,
        flags=int(context.trace_flags),
    )


def _prefer_current(target: Remote | None) -> Target:
    # Feedback aimed by reference at the span that is current and recording goes straight
    # onto it, like feedback on the current span.
    if target is None or not target.span_id:
        return target
    current = trace.get_current_span()
    context = current.get_span_context()
    if (
        context.span_id == target.span_id
        and context.trace_id == target.trace_id
        and current.is_recording()
    ):
        return current
    return target


def _parse_traceparent(value: object, argument: str) -> Remote:
    trace_id, span_id, sampled = parse_traceparent(value, argument)
    return Remote(trace_id, span_id, sampled)
