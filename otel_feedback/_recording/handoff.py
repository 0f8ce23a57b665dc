"""Where recorded feedback meets the processors: the span event is the carrier of truth.

Feedback recorded on a live span is one ``gen_ai.evaluation.result`` event on it, and that
event is what the span's ``FeedbackSpanProcessor`` reads when the span ends
(:func:`feedback_of`). Nothing is kept aside for the common case. The record goes to the
processors by another way only when the span would lose its event:

- the span's limits would cut the event as it is added (a long value, too many
  attributes): the whole record is handed to the processors at once, and the event is
  marked ``otel_feedback.truncated`` so that it is not read again;
- the span's event count limit evicts a feedback event (the SDK evicts the oldest): the
  event is handed to the processors as it goes (:mod:`otel_feedback._sdk` watches evictions).

Either way the record reaches only the processors of the span's own TracerProvider, and
memory stays bounded: a span that never ends holds its few events, and what it evicts joins
the processors' bounded queue, where anything that does not fit is counted as dropped.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from otel_feedback._attributes import ATTR_TRUNCATED, EVENT_NAME
from otel_feedback._recording.responses import run_of_span
from otel_feedback._recording.roots import CARRIER_SCOPE
from otel_feedback._recording.unsampled import watch
from otel_feedback._sdk import (
    CarryingEvent,
    add_carrying_event,
    cut_by_limits,
    event_list,
    processors_of_provider,
    processors_of_span,
    watch_evictions,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from otel_feedback._model import Feedback
    from otel_feedback._recording.recorded import RecordedFeedback

__all__ = [
    "EventFeedback",
    "FeedbackItem",
    "FeedbackSink",
    "PlainWithRun",
    "direct_sinks",
    "feedback_of",
    "hand_off",
    "live_sinks",
    "put_on_span",
    "register",
    "sinks_of_provider",
    "sinks_of_span",
    "unregister",
]


class FeedbackItem(Protocol):
    """Feedback on its way to the exporters; the record is built off the application's thread."""

    def to_feedback(self) -> Feedback:
        """The record.

        Raises:
            InvalidFeedbackError: the item does not make a valid record (an event that other
                code wrote wrongly).
        """
        ...  # pragma: no cover - a protocol


class FeedbackSink(Protocol):
    """What takes feedback handed off before its span ends: a FeedbackSpanProcessor."""

    def _submit(self, item: FeedbackItem) -> None:
        """Export ``item``; it will not be found on an ending span."""


class EventFeedback(NamedTuple):
    """A feedback event read off a span: decoded into its record only when exported."""

    attributes: Mapping[str, Any]
    timestamp: int
    trace_id: int
    span_id: int
    span_attributes: Mapping[str, Any] | None = None
    """The attributes of the span the event sits on (the judged span's correlation keys)."""

    def to_feedback(self) -> Feedback:
        """The record the event carries (explicit target attributes win over the span's ids).

        Raises:
            InvalidFeedbackError: the event does not describe a valid record.
        """
        from otel_feedback._decode import decode  # noqa: PLC0415 - pydantic, on first export

        return decode(
            self.attributes,
            timestamp_ns=self.timestamp,
            trace_id=self.trace_id,
            span_id=self.span_id,
            span_attributes=self.span_attributes,
        )


class PlainWithRun:
    """A plain call's handle whose span has ended: its record is built with the run at once.

    The handle's own ``to_feedback()`` builds the record, then copies it to add the judged
    span's run attributes (the caller may hold the record). The exported record is new, so
    they are set as it is made: the same record for half the work off the application's
    thread.
    """

    __slots__ = ("handle",)

    def __init__(self, handle: RecordedFeedback) -> None:
        self.handle = handle

    def to_feedback(self) -> Feedback:
        """The record, equal to ``self.handle.to_feedback()``."""
        from otel_feedback._decode import decode_plain  # noqa: PLC0415 - pydantic, on first export

        handle = self.handle
        return decode_plain(
            handle._attributes,  # noqa: SLF001 - the handle's own parts, as it reads them
            id_number=handle._id,  # noqa: SLF001
            timestamp_ns=handle._time_ns,  # noqa: SLF001
            trace_id=handle._trace_id,  # noqa: SLF001
            span_id=handle._span_id,  # noqa: SLF001
            run=handle._run,  # noqa: SLF001
        )


_NOTHING: Sequence[FeedbackItem] = ()


def feedback_of(span: Any) -> Sequence[FeedbackItem]:
    """The feedback to export for ``span``, which is ending: what ``on_end`` hands off.

    Contract: runs on the application's thread, in ``on_end``, for every span; it only
    reads the span's events, in order, and decodes nothing. Every
    ``gen_ai.evaluation.result`` event still on the span gives one item, whether
    ``record_feedback`` or other code wrote it, except those marked
    ``otel_feedback.truncated``, whose whole records were already handed to the processors
    (as were evicted events); a plain call's handle is wrapped (:class:`PlainWithRun`) so
    that its record is built with the span's run attributes. Each item's ``to_feedback()``
    builds its record, or raises
    ``InvalidFeedbackError`` for an event that does not make one. Returns an empty sequence,
    at the least cost, for a span without events. The caller queues the items as they are.

    The span's final correlation attributes (``gen_ai.response.id``, LangSmith's ids) and
    its evaluation target go with each item: the span's attributes no longer change once it
    has ended.
    """
    events = event_list(span)
    if events is not None and not events:
        return _NOTHING
    context = span.context
    if context is None:
        return _NOTHING
    trace_id, span_id = context.trace_id, context.span_id
    items: list[FeedbackItem] = []
    for event in span.events if events is None else events:
        if event.__class__ is CarryingEvent:
            items.append(event.item)  # written by record_feedback: its handle is the item
        elif event.name == EVENT_NAME:
            attributes = event.attributes or {}
            if ATTR_TRUNCATED not in attributes:
                items.append(EventFeedback(attributes, event.timestamp, trace_id, span_id))
    if items:
        # A carrier's feedback judges another span, whose run it already holds.
        scope = span.instrumentation_scope
        run = None if scope is not None and scope.name == CARRIER_SCOPE else run_of_span(span)
        if run is not None:
            for index, item in enumerate(items):
                if item.__class__ is EventFeedback:
                    # Read after the event's own attributes, which win.
                    items[index] = item._replace(span_attributes=run)
                else:
                    item._run = run  # type: ignore[attr-defined] # noqa: SLF001 - now final
                    if item._record is None:  # type: ignore[attr-defined] # noqa: SLF001
                        items[index] = PlainWithRun(item)  # type: ignore[arg-type]
    return items


# The FeedbackSpanProcessors alive in this process. Only used to tell them apart from other
# span processors of a provider: feedback is never broadcast to all of them.
_sinks: weakref.WeakSet[Any] = weakref.WeakSet()
_sinks_lock = threading.Lock()  # for changes and copies; a membership test needs none


def register(sink: FeedbackSink) -> None:
    """Make ``sink`` one that :func:`sinks_of_span` and :func:`sinks_of_provider` find.

    From now on, the global provider notes the traces its sampler drops, so that feedback in
    them reaches its own processors (:mod:`otel_feedback._recording.unsampled`).
    """
    from opentelemetry import trace  # noqa: PLC0415 - already imported by the SDK

    with _sinks_lock:
        _sinks.add(sink)
    watch(trace.get_tracer_provider())


def live_sinks() -> list[FeedbackSink]:
    """Every FeedbackSpanProcessor of the process that has not shut down."""
    with _sinks_lock:
        return list(_sinks)


def unregister(sink: FeedbackSink) -> None:
    """Stop finding ``sink`` (it shut down)."""
    with _sinks_lock:
        _sinks.discard(sink)


def sinks_of_span(span: object) -> list[FeedbackSink]:
    """The FeedbackSpanProcessors of the TracerProvider that made ``span``."""
    return [p for p in processors_of_span(span) if p in _sinks]  # type: ignore[misc]


def sinks_of_provider(provider: object) -> list[FeedbackSink]:
    """The FeedbackSpanProcessors added to ``provider``."""
    return [p for p in processors_of_provider(provider) or () if p in _sinks]  # type: ignore[misc]


def direct_sinks() -> list[FeedbackSink]:
    """Where feedback that no span can carry goes: the global TracerProvider's processors.

    Those would have seen its carrier span. When the global provider is not the SDK's, no
    provider owns the feedback and every FeedbackSpanProcessor of the process takes it.
    """
    from opentelemetry import trace  # noqa: PLC0415 - already imported by the SDK

    processors = processors_of_provider(trace.get_tracer_provider())
    if processors is None:
        with _sinks_lock:
            return list(_sinks)
    return [p for p in processors if p in _sinks]  # type: ignore[misc]


def hand_off(sinks: Sequence[FeedbackSink], item: FeedbackItem) -> None:
    """Give ``item`` to each of ``sinks`` now, rather than when its span ends."""
    for sink in sinks:
        sink._submit(item)  # noqa: SLF001 - the sink protocol of this package


def report_evictions(span: object) -> Any:
    """The eviction reporter of a live ``span``: hands each evicted feedback event off."""
    sinks = sinks_of_span(span)
    context = span.get_span_context()  # type: ignore[attr-defined]
    trace_id, span_id = context.trace_id, context.span_id
    # Weakly: the reporter lives in the span's own event list, and a strong reference would
    # make every span with feedback a cycle that only the garbage collector frees.
    span_ref = weakref.ref(span)

    def evicted(event: Any) -> None:
        # The span is still running: its correlation attributes as they are now.
        live = span_ref()
        run = None if live is None else run_of_span(live)
        if event.__class__ is CarryingEvent:
            if run is not None:
                event.item._run = run  # noqa: SLF001
            hand_off(sinks, event.item)
            return
        if event.name != EVENT_NAME:
            return
        attributes = event.attributes or {}
        if ATTR_TRUNCATED not in attributes:
            hand_off(sinks, EventFeedback(attributes, event.timestamp, trace_id, span_id, run))

    return evicted


def put_on_span(span: Span, recorded: RecordedFeedback, timestamp_ns: int) -> None:
    """Record ``recorded`` as one event on the live ``span``, its carrier of truth.

    When the span's limits would cut the event, the event is marked cut and the whole record
    goes to the span's processors at once. Otherwise the event carries the handle itself, so
    that ``on_end`` hands the handle off as it is. Evictions are watched from the span's
    first feedback on, so that an evicted feedback event still reaches the processors.
    """
    watch_evictions(span, report_evictions)
    attributes = recorded._attributes  # noqa: SLF001 - the handle's own event attributes
    if cut_by_limits(span, attributes):
        span.add_event(EVENT_NAME, {**attributes, ATTR_TRUNCATED: True}, timestamp=timestamp_ns)
        # Handed off before the span ends: its correlation attributes as they are now.
        recorded._run = run_of_span(span)  # noqa: SLF001
        hand_off(sinks_of_span(span), recorded)
    elif not add_carrying_event(span, EVENT_NAME, attributes, timestamp_ns, recorded):
        span.add_event(EVENT_NAME, attributes, timestamp=timestamp_ns)
