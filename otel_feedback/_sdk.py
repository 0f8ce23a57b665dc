"""The OpenTelemetry SDK internals otel_feedback relies on, and nothing else, in one place.

The SDK offers no public way to learn what its span limits will do to an event, which
processors a span reports to, or which events a span evicted. Each reading of its
internals lives here, with the assumption it makes, and ``tests/test_sdk_internals.py``
checks every assumption against the installed SDK, so that a release that changes one
fails there rather than losing feedback. Every function degrades to "nothing known" for
spans that are not the SDK's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

__all__ = [
    "CarryingEvent",
    "DropNoting",
    "EvictionWatch",
    "PinnedTraceIds",
    "add_carrying_event",
    "attribute_dict",
    "cut_by_limits",
    "event_list",
    "events_full",
    "keeps_no_events",
    "processors_of_active",
    "processors_of_provider",
    "processors_of_span",
    "start_root_in_trace",
    "tracer_would_cut",
    "watch_drops",
    "watch_evictions",
]


_NO_PARENT = Context()  # an empty context: no current span, so a new root
_wrapping = threading.Lock()


def event_list(span: object) -> Any:
    """The span's own event list, or None for a span that is not the SDK's.

    Assumes ``span._events`` is a ``BoundedList`` (``len``, iteration under its lock,
    ``_dq`` a ``deque`` whose ``maxlen`` is the event count limit, ``_lock``), and that the
    ``ReadableSpan`` given to ``on_end`` holds the very same list (``Span._readable_span``).
    """
    return getattr(span, "_events", None)


def attribute_dict(span: object) -> Mapping[str, Any] | None:
    """The span's own attribute dict, to test names in at dict speed; None when not the SDK's.

    ``span.attributes`` is a read-only view over a ``BoundedAttributes`` whose every lookup
    runs Python code (a microsecond for three names); a check made on every span that ends
    reads the dict underneath. Assumes ``span._attributes`` is a ``BoundedAttributes`` (or
    None when empty) keeping its items in the dict ``_dict``, shared with the ``ReadableSpan``
    given to ``on_end``. Only read, never changed.
    """
    attributes = getattr(span, "_attributes", None)
    if attributes is None:
        return _NO_ATTRIBUTES
    found = getattr(attributes, "_dict", None)
    return found if found.__class__ is dict else None


_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


def keeps_no_events(span: object) -> bool:
    """Whether ``span``'s event count limit is 0 (an event added to it is dropped at once)."""
    return getattr(getattr(event_list(span), "_dq", None), "maxlen", None) == 0


def events_full(span: object) -> bool:
    """Whether ``span`` holds as many events as its limit: one more would evict the oldest."""
    events = getattr(event_list(span), "_dq", None)
    return events is not None and events.maxlen is not None and len(events) >= events.maxlen


def cut_by_limits(span: object, attributes: Mapping[str, object]) -> bool:
    """Whether ``span``'s limits would cut an event with ``attributes`` as it is added.

    Assumes ``span._limits`` is the span's ``SpanLimits``: ``max_attribute_length`` cuts
    string values, ``max_event_attributes`` drops attributes past that count; ``None``
    means no limit.
    """
    limits = getattr(span, "_limits", None)
    return limits is not None and _cut(
        attributes, limits.max_attribute_length, limits.max_event_attributes, 0
    )


def _cut(
    attributes: Mapping[str, object], length: int | None, count: int | None, already: int
) -> bool:
    """Whether values longer than ``length`` or more than ``count`` attributes in all are there."""
    if length is not None and any(
        value.__class__ is str and len(value) > length for value in attributes.values()
    ):
        return True
    return count is not None and len(attributes) + already > count


def processors_of_span(span: object) -> tuple[object, ...]:
    """The span processors of the TracerProvider that made ``span``.

    Assumes ``span._span_processor`` is its provider's active span processor, a
    ``SynchronousMultiSpanProcessor`` or ``ConcurrentMultiSpanProcessor`` whose
    ``_span_processors`` tuple holds the processors added to the provider.
    """
    return _processors_of(getattr(span, "_span_processor", None))


def processors_of_provider(provider: object) -> tuple[object, ...] | None:
    """The span processors added to ``provider``; None when it is not the SDK's.

    Assumes an SDK ``TracerProvider`` keeps them in ``_active_span_processor``, as above.
    """
    active = getattr(provider, "_active_span_processor", None)
    return None if active is None else _processors_of(active)


def processors_of_active(active: object) -> tuple[object, ...]:
    """The span processors of a provider's active span processor (see :func:`watch_drops`)."""
    return _processors_of(active)


def _processors_of(active: object) -> tuple[object, ...]:
    processors = getattr(active, "_span_processors", ())
    return processors if isinstance(processors, tuple) else ()


class EvictionWatch(deque):  # type: ignore[type-arg]
    """A span's event deque that reports each event it is about to evict.

    Assumes the SDK adds a span's events one at a time through ``BoundedList.append``,
    which calls ``_dq.append`` under the list's lock, and that the deque evicts its oldest
    item when it is full (``maxlen``), or drops the new item when ``maxlen`` is 0.
    """

    __slots__ = ("on_evict",)

    def __init__(
        self,
        items: Any = (),
        maxlen: int | None = None,
        on_evict: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__(items, maxlen)
        self.on_evict = on_evict

    def append(self, item: Any) -> None:
        """Append ``item``, reporting the oldest event first when it is about to go."""
        on_evict = self.on_evict
        if on_evict is not None and len(self) == self.maxlen:
            # A limit of 0 keeps no event at all: the new one is the one that goes.
            on_evict(self[0] if self else item)
        super().append(item)


def watch_evictions(span: Any, reporter: Callable[[Any], Callable[[Any], None]]) -> None:
    """Make ``span`` report every event its event count limit evicts from now on.

    Cheap once done: the first call for a span swaps its deque for an :class:`EvictionWatch`
    calling ``reporter(span)`` (under the list's lock, so that no event added meanwhile is lost);
    later calls only check. Nothing happens for a span that is not the SDK's or whose events
    have no count limit.
    """
    events: Any = getattr(span, "_events", None)
    current = getattr(events, "_dq", None)
    if current is None or current.__class__ is EvictionWatch or current.maxlen is None:
        return
    on_evict = reporter(span)
    with events._lock:  # noqa: SLF001
        current = events._dq  # noqa: SLF001 - again, now that no other thread can swap it
        if current.__class__ is not EvictionWatch:
            events._dq = EvictionWatch(current, current.maxlen, on_evict)  # noqa: SLF001


class CarryingEvent(Event):
    """A span event that also carries an object of ours (``item``), for whoever reads it back.

    Assumes ``Event`` keeps its name, timestamp and attributes in ``_name``, ``_timestamp``
    and ``_attributes``, and that exporters read them through its properties.
    """

    def __init__(self, name: str, attributes: Mapping[str, Any], timestamp: int, item: Any) -> None:
        # EventBase.__init__ would read the clock when no timestamp is given: one always is.
        self._name = name
        self._timestamp = timestamp
        self._attributes = attributes
        self.item = item


def add_carrying_event(
    span: object, name: str, attributes: Mapping[str, Any], timestamp: int, item: Any
) -> bool:
    """Add a :class:`CarryingEvent` to an SDK ``span``; False for a span that is not the SDK's.

    ``attributes`` must already be valid attribute values, within the span's limits
    (:func:`cut_by_limits`): the SDK's own ``add_event`` would copy and check each value
    again, which is most of what an event costs. They are frozen behind a read-only view,
    as the SDK freezes its own. Assumes ``Span._add_event(event)`` appends ``event`` to the
    span's events (and warns, adding nothing, once the span has ended).
    """
    add = getattr(span, "_add_event", None)
    if add is None:
        return False
    add(CarryingEvent(name, MappingProxyType(attributes), timestamp, item))
    return True


def tracer_would_cut(tracer: object, attributes: Mapping[str, object], *, already: int) -> bool:
    """Whether a span of ``tracer`` would cut ``attributes`` given beside ``already`` others.

    Assumes an SDK ``Tracer`` keeps its ``SpanLimits`` in ``_span_limits``:
    ``max_span_attribute_length`` cuts a span's string values (it defaults to
    ``max_attribute_length``, which cuts events'), ``max_span_attributes`` evicts the oldest
    attributes past that count; ``None`` means no limit.
    """
    limits = getattr(tracer, "_span_limits", None)
    return limits is not None and _cut(
        attributes, limits.max_span_attribute_length, limits.max_span_attributes, already
    )


class PinnedTraceIds:
    """An SDK tracer's id generator that gives a chosen trace id to a new root span.

    Wraps the tracer's own generator; the chosen id is per thread, so other threads'
    spans keep getting fresh ids. Assumes ``Tracer.start_span`` asks ``id_generator`` for
    a trace id only when the span has no valid parent (and, in newer SDKs, asks
    ``is_trace_id_random()`` then).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pinned = threading.local()

    def generate_span_id(self) -> int:
        """A fresh span id from the tracer's own generator."""
        return int(self.inner.generate_span_id())

    def generate_trace_id(self) -> int:
        """The chosen trace id on this thread, else a fresh one."""
        return getattr(self.pinned, "trace_id", 0) or int(self.inner.generate_trace_id())

    def is_trace_id_random(self) -> bool:
        """False for a chosen trace id (it was made elsewhere), else as the tracer's own."""
        if getattr(self.pinned, "trace_id", 0):
            return False
        check = getattr(self.inner, "is_trace_id_random", None)
        return bool(check()) if callable(check) else False


def start_root_in_trace(tracer: Any, trace_id: int, name: str, **options: Any) -> Any:
    """A span of an SDK ``tracer`` with no parent in the existing trace ``trace_id``.

    Returns None for a tracer that is not the SDK's. Assumes ``Tracer.id_generator`` is the
    attribute ``start_span`` reads (a tracer of ours, so swapping it touches nobody else's).
    """
    generator = getattr(tracer, "id_generator", None)
    if generator is None:
        return None
    if generator.__class__ is not PinnedTraceIds:
        with _wrapping:
            # Once per tracer: two threads wrapping at once would pin on different wrappers.
            generator = tracer.id_generator
            if generator.__class__ is not PinnedTraceIds:
                generator = tracer.id_generator = PinnedTraceIds(generator)
    generator.pinned.trace_id = trace_id
    try:
        return tracer.start_span(name, context=_NO_PARENT, **options)
    finally:
        generator.pinned.trace_id = 0


class DropNoting(Sampler):
    """A provider's own sampler, which also reports each trace id whose span it drops.

    A span that its sampler drops is a ``NonRecordingSpan``: no processor sees it, and
    nothing in it says which provider made it. Asks the provider's sampler, then calls
    ``on_drop(trace_id)`` when the decision is not to record.
    """

    def __init__(self, inner: Sampler, on_drop: Callable[[int], None]) -> None:
        self.inner = inner
        self.on_drop = on_drop

    def should_sample(  # noqa: PLR0917 - the Sampler interface, called positionally by the SDK
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        """The provider's sampler's decision, reported when it drops the span."""
        result = self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is Decision.DROP:  # RECORD_ONLY makes a recording span
            self.on_drop(trace_id)
        return result

    def get_description(self) -> str:
        """The provider's sampler's description: it is what decides."""
        return self.inner.get_description()


def watch_drops(provider: object, on_drop: Callable[[object, int], None]) -> str:
    """Make an SDK ``provider`` report ``on_drop(active, trace_id)`` for each span it drops.

    ``active`` is the provider's active span processor (:func:`processors_of_active` reads
    its processors). Returns ``"watching"`` when it already was (a class check),
    ``"new"`` when it starts now (spans started before are not reported), ``"not-sdk"`` for
    a provider that is not the SDK's.

    Assumes ``TracerProvider.sampler`` is what ``get_tracer`` gives each new ``Tracer``, that
    ``Tracer.sampler`` is what ``start_span`` asks, and that the provider keeps the tracers it
    made in ``_tracers`` (a dict) under ``_tracers_lock``.
    """
    sampler = getattr(provider, "sampler", None)
    active = getattr(provider, "_active_span_processor", None)
    if not isinstance(sampler, Sampler) or active is None:
        return "not-sdk"
    if sampler.__class__ is DropNoting:
        return "watching"
    with _wrapping:
        sampler = provider.sampler  # type: ignore[attr-defined]
        if sampler.__class__ is DropNoting:
            return "watching"
        watching = DropNoting(sampler, lambda trace_id: on_drop(active, trace_id))
        provider.sampler = watching  # type: ignore[attr-defined]
        lock = getattr(provider, "_tracers_lock", None)
        tracers = getattr(provider, "_tracers", None)
        if lock is not None and isinstance(tracers, dict):
            with lock:
                for tracer in tracers.values():
                    if getattr(tracer, "sampler", None) is sampler:
                        tracer.sampler = watching
    return "new"
