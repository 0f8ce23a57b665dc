"""Feedback about a run that no live span here can take: a carrier span, or straight out.

A run that has ended, or lives in another process, gets a short carrier span named
``feedback <key>`` whose parent is the judged span (a remote parent) and which links to it,
carrying the same ``gen_ai.evaluation.result`` event plus the target's ids. Trace-only
backends then show the late feedback inside the original trace, under the run it judges.
When no span can be recorded at all (the trace was sampled out, no SDK is set up), the record
goes straight to the global TracerProvider's FeedbackSpanProcessors, those that would have
seen the carrier: feedback is rarer and more precious than spans.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from otel_feedback import _attributes as a
from otel_feedback._environment import follow_trace_sampling, sdk_disabled
from otel_feedback._ids import span_hex, trace_hex, whole_trace_parent
from otel_feedback._log import logger, warn_once
from otel_feedback._recording.handoff import direct_sinks, hand_off, sinks_of_span
from otel_feedback._recording.recorded import RecordedFeedback
from otel_feedback._recording.target import Remote
from otel_feedback._sdk import add_carrying_event, cut_by_limits, keeps_no_events
from otel_feedback._version import __version__

__all__ = ["deliver_remote"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_tracer_of: tuple[object, trace.Tracer] | None = None


def _tracer() -> trace.Tracer:
    # The tracer of the global provider as it is now: a proxy tracer would stay bound to the
    # first provider it saw, and carriers must follow the provider that is set.
    global _tracer_of  # noqa: PLW0603
    provider = trace.get_tracer_provider()
    cached = _tracer_of
    if cached is None or cached[0] is not provider:
        cached = _tracer_of = (provider, provider.get_tracer("otel_feedback", __version__))
    return cached[1]


def deliver_remote(
    record: RecordedFeedback, target: Remote, timestamp_ns: int
) -> RecordedFeedback | None:
    """Send ``record`` about ``target`` on a carrier span, else directly; None if dropped."""
    if target.sampled and _carry(record, target, timestamp_ns):
        return record
    # A disabled SDK records no carrier: only then is the environment read.
    if sdk_disabled():
        return None
    if follow_trace_sampling():
        logger.debug("Feedback %r on a trace that is not recorded was dropped", record.key)
        return None
    sinks = direct_sinks()
    if not sinks:
        warn_once(
            "no-sink",
            "Feedback %r could not be exported: no span records it and no "
            "FeedbackSpanProcessor is set up (see otel_feedback.configure())",
            record.key,
        )
        return None
    hand_off(sinks, record)
    return record


def _carry(record: RecordedFeedback, target: Remote, timestamp_ns: int) -> bool:
    judged = target.span_id or whole_trace_parent(target.trace_id)
    parent = SpanContext(target.trace_id, judged, is_remote=True, trace_flags=_SAMPLED)
    carrier = _tracer().start_span(
        f"feedback {record.key}",
        context=trace.set_span_in_context(NonRecordingSpan(parent)),
        kind=SpanKind.INTERNAL,
        attributes={a.ATTR_KEY: record.key},
        # Feedback on a whole trace has no run to link to: the parent id is a stand-in.
        links=[Link(parent)] if target.span_id else None,
        start_time=timestamp_ns,
    )
    if not carrier.is_recording():
        return False
    attributes = {
        **record._attributes,  # noqa: SLF001 - the handle's own event attributes
        a.ATTR_TRACE_ID: trace_hex(target.trace_id),
        a.ATTR_RUN_ID: span_hex(target.span_id) if target.span_id else "",
    }
    # The carrier ends at once with this one event: only limits can lose it, and then the
    # whole record goes to the carrier's processors now, its event marked as cut.
    if keeps_no_events(carrier) or cut_by_limits(carrier, attributes):
        attributes[a.ATTR_TRUNCATED] = True
        hand_off(sinks_of_span(carrier), record)
        carrier.add_event(a.EVENT_NAME, attributes, timestamp=timestamp_ns)
    elif not add_carrying_event(carrier, a.EVENT_NAME, attributes, timestamp_ns, record):
        carrier.add_event(a.EVENT_NAME, attributes, timestamp=timestamp_ns)
    carrier.end()
    return True
