"""Feedback about a run that no live span here can take: a carrier span, or straight out.

A run that has ended, or lives in another process, gets a short carrier span named
``feedback <key>``, as OpenInference's annotation convention describes post-hoc feedback:
``openinference.span.kind = EVALUATOR``, the result as ``evaluations.0.evaluation.*``
attributes (``trace.evaluations.0.evaluation.*`` for a whole trace), and exactly one Span
Link to the judged span, which is also its parent, so that trace-only backends show the late
feedback inside the original trace, under the run it judges. It carries the same
``gen_ai.evaluation.result`` event plus the target's ids, and the judged span's
``gen_ai.response.id`` and evaluation target when the span itself was given or ended here
with a response id (:mod:`otel_feedback._recording.responses`).

Feedback on a whole trace links the trace's root when a span of it ended here, else the
current span when it belongs to that trace. With no span of the trace known, the carrier
is a span with no parent inside that trace: no made-up parent that never arrives (which
backends show as an orphan, or drop), and its trace-scoped result reads as inline
feedback on the trace it sits in.
When no span can be recorded at all (the trace was sampled out, no SDK is set up), the record
goes straight to FeedbackSpanProcessors: those of the provider that made the judged span when
that can be known, else the global TracerProvider's, those that would have seen the carrier
(:mod:`otel_feedback._recording.unsampled`): feedback is rarer and more precious than spans.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import AttributeValue

from otel_feedback import _attributes as a
from otel_feedback._codec import evaluation_of
from otel_feedback._environment import follow_trace_sampling, sdk_disabled
from otel_feedback._ids import span_hex, trace_hex
from otel_feedback._log import logger, warn_once
from otel_feedback._recording.handoff import hand_off, live_sinks, sinks_of_span
from otel_feedback._recording.recorded import RecordedFeedback
from otel_feedback._recording.responses import noted_run
from otel_feedback._recording.roots import CARRIER_SCOPE, forget, root_of
from otel_feedback._recording.target import Remote
from otel_feedback._recording.unsampled import sinks_for_unrecorded
from otel_feedback._sdk import (
    add_carrying_event,
    cut_by_limits,
    events_full,
    keeps_no_events,
    start_root_in_trace,
    tracer_would_cut,
)
from otel_feedback._version import __version__

__all__ = ["CARRIER_SCOPE", "deliver_remote", "put_about", "start_linked"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_tracer_of: tuple[object, trace.Tracer] | None = None


def _tracer() -> trace.Tracer:
    # The tracer of the global provider as it is now: a proxy tracer would stay bound to the
    # first provider it saw, and carriers must follow the provider that is set.
    global _tracer_of  # noqa: PLW0603
    provider = trace.get_tracer_provider()
    cached = _tracer_of
    if cached is None or cached[0] is not provider:
        cached = _tracer_of = (provider, provider.get_tracer(CARRIER_SCOPE, __version__))
    return cached[1]


def deliver_remote(
    record: RecordedFeedback, target: Remote, timestamp_ns: int
) -> RecordedFeedback | None:
    """Send ``record`` about ``target`` on a carrier span, else directly; None if dropped."""
    # The judged span's correlation keys: from the span when it was given, else as noted
    # when it ended here.
    run = target.run
    if run is None and target.span_id:
        run = noted_run(target.trace_id, target.span_id)
    if run:
        record._run = run  # noqa: SLF001 - the judged span's correlation attributes
    if target.sampled and _carry(record, target, timestamp_ns):
        return record
    # A disabled SDK records no carrier: only then is the environment read.
    if sdk_disabled():
        return None
    if follow_trace_sampling():
        logger.debug("Feedback %r on a trace that is not recorded was dropped", record.key)
        return None
    sinks, why = sinks_for_unrecorded(target.trace_id, local=target.local, live=live_sinks())
    if not sinks:
        warn_once(
            "no-sink: " + why,
            "Feedback %r could not be exported: its trace is not recorded (sampled out, or "
            "no tracing set up), so no span carries it, and %s",
            record.key,
            why,
        )
        return None
    hand_off(sinks, record)
    return record


def _carry(record: RecordedFeedback, target: Remote, timestamp_ns: int) -> bool:
    tracer = _tracer()
    whole_trace = not target.span_id
    evaluation = evaluation_of(
        record._attributes,  # noqa: SLF001 - the handle's own event attributes
        a.TRACE_EVALUATION if whole_trace else a.SPAN_EVALUATION,
    )
    # A result the span's limits would cut is left out, as the spec asks; the event keeps
    # the whole record.
    if tracer_would_cut(tracer, evaluation, already=len(_START_ATTRIBUTES)):
        evaluation = {}
    attributes: dict[str, AttributeValue] = {**_START_ATTRIBUTES, **evaluation}
    name = f"feedback {record.key}"
    if target.span_id:
        linked, local, flags = target.span_id, target.local, target.flags | _SAMPLED
    else:
        linked, local, flags = _span_of_trace(target.trace_id), True, _SAMPLED
    if linked:
        carrier = start_linked(
            tracer,
            name,
            Remote(target.trace_id, linked, True, local=local, flags=flags),
            attributes,
            start_time=timestamp_ns,
        )
    else:
        # No span of the trace is known here: the carrier is a root of its own inside the
        # trace (no parent that never arrives, no link to a made-up span), and its
        # trace-scoped result reads as inline feedback on the trace it sits in.
        carrier = start_root_in_trace(
            tracer,
            target.trace_id,
            name,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=timestamp_ns,
        )
        if carrier is None:
            return False
    if not carrier.is_recording():
        return False
    put_about(carrier, record, target, timestamp_ns)
    carrier.end()
    # Its processors noted it as a root of the trace if it has no parent (or a remote one):
    # it is not one of the trace's own spans.
    own = carrier.get_span_context()
    forget(own.trace_id, own.span_id)
    return True


def start_linked(
    tracer: trace.Tracer,
    name: str,
    target: Remote,
    attributes: dict[str, AttributeValue],
    *,
    start_time: int | None = None,
) -> trace.Span:
    """A span about ``target``: its child, with exactly one link to it (OpenInference's form).

    The link names the judged span (or a span of the judged trace); the parent places the
    span under it, where trace views show it. A span of this process is not marked remote.
    """
    judged = SpanContext(
        target.trace_id,
        target.span_id,
        is_remote=not target.local,
        trace_flags=TraceFlags(target.flags | _SAMPLED),
    )
    return tracer.start_span(
        name,
        context=trace.set_span_in_context(NonRecordingSpan(judged)),
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        links=[Link(judged)],
        start_time=start_time,
    )


def put_about(
    span: trace.Span, record: RecordedFeedback, target: Remote, timestamp_ns: int
) -> None:
    """Put ``record`` about ``target`` on ``span`` (a recording carrier), as its one event.

    The event names the judged run's ids, which win over the span's own when it is read.
    """
    carrier = span
    if events_full(carrier):
        # One more event would evict an earlier one (an evaluator that returned many
        # results): this record goes to the span's processors now instead.
        hand_off(sinks_of_span(carrier), record)
        return
    event = {
        **record._attributes,  # noqa: SLF001 - the handle's own event attributes
        a.ATTR_TRACE_ID: trace_hex(target.trace_id),
        a.ATTR_RUN_ID: span_hex(target.span_id) if target.span_id else "",
    }
    if record._run:  # noqa: SLF001
        event.update(record._run)  # noqa: SLF001
    # The carrier ends at once with this one event: only limits can lose it, and then the
    # whole record goes to the carrier's processors now, its event marked as cut.
    if keeps_no_events(carrier) or cut_by_limits(carrier, event):
        event[a.ATTR_TRUNCATED] = True
        hand_off(sinks_of_span(carrier), record)
        carrier.add_event(a.EVENT_NAME, event, timestamp=timestamp_ns)
    elif not add_carrying_event(carrier, a.EVENT_NAME, event, timestamp_ns, record):
        carrier.add_event(a.EVENT_NAME, event, timestamp=timestamp_ns)


_START_ATTRIBUTES: dict[str, AttributeValue] = {a.ATTR_SPAN_KIND: a.SPAN_KIND_EVALUATOR}


def _span_of_trace(trace_id: int) -> int:
    """A real span of the trace to link: its root when seen here, else the current span."""
    root = root_of(trace_id)
    if root:
        return root
    context = trace.get_current_span().get_span_context()
    return context.span_id if context.trace_id == trace_id else 0
