"""One test per assumption that otel_feedback._sdk makes about the SDK's internals."""

from __future__ import annotations

import copy
from collections import deque
from types import MappingProxyType
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList

from otel_feedback._sdk import (
    CarryingEvent,
    EvictionWatch,
    add_carrying_event,
    attribute_dict,
    cut_by_limits,
    event_list,
    keeps_no_events,
    processors_of_active,
    processors_of_provider,
    processors_of_span,
    start_root_in_trace,
    tracer_would_cut,
    watch_drops,
    watch_evictions,
)


def _sdk(span: object) -> Span:
    return cast(Span, span)


class _Keep(SpanProcessor):
    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


def test_a_span_keeps_its_events_in_a_bounded_list_shared_with_on_end() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_events=3))
    keep = _Keep()
    provider.add_span_processor(keep)
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.add_event("e")
        events = event_list(span)
    assert isinstance(events, BoundedList)
    raw: Any = events
    assert isinstance(raw._dq, deque)
    assert raw._dq.maxlen == 3
    assert raw._lock is not None
    assert event_list(keep.ended[0]) is events  # the very list, not a copy
    assert event_list(object()) is None


def test_limits_are_read_from_the_span() -> None:
    provider = TracerProvider(
        span_limits=SpanLimits(max_attribute_length=4, max_event_attributes=2)
    )
    with provider.get_tracer("t").start_as_current_span("s") as span:
        assert cut_by_limits(span, {"a": "12345"})
        assert not cut_by_limits(span, {"a": "1234", "b": 1})
        assert cut_by_limits(span, {"a": 1, "b": 2, "c": 3})
        # The SDK cuts exactly what the check predicts.
        span.add_event("e", {"a": "12345"})
    assert _sdk(span).events[0].attributes == {"a": "1234"}
    assert not cut_by_limits(object(), {"a": "x" * 10_000})


def test_no_limit_is_none() -> None:
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        assert not cut_by_limits(span, {"a": "x" * 100_000})


def test_a_span_reports_to_its_own_providers_processors() -> None:
    provider, other = TracerProvider(), TracerProvider()
    first, second, elsewhere = _Keep(), _Keep(), _Keep()
    provider.add_span_processor(first)
    provider.add_span_processor(second)
    other.add_span_processor(elsewhere)
    with provider.get_tracer("t").start_as_current_span("s") as span:
        assert processors_of_span(span) == (first, second)
    assert processors_of_provider(provider) == (first, second)
    assert processors_of_provider(other) == (elsewhere,)
    assert processors_of_span(object()) == ()
    assert processors_of_provider(trace.NoOpTracerProvider()) is None


def test_evictions_are_reported_and_the_sdk_still_counts_them() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_events=2))
    evicted: list[str] = []
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.add_event("before")
        watch_evictions(span, lambda _span: lambda event: evicted.append(event.name))
        watch_evictions(span, lambda _span: lambda event: evicted.append("twice"))  # once only
        for name in ("a", "b", "c"):
            span.add_event(name)
    assert evicted == ["before", "a"]
    assert [e.name for e in _sdk(span).events] == ["b", "c"]
    assert _sdk(span).dropped_events == 2
    assert isinstance(event_list(span)._dq, EvictionWatch)


def test_a_limit_of_zero_reports_the_event_itself() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_events=0))
    evicted: list[str] = []
    with provider.get_tracer("t").start_as_current_span("s") as span:
        assert keeps_no_events(span)
        watch_evictions(span, lambda _span: lambda event: evicted.append(event.name))
        span.add_event("only")
    assert evicted == ["only"]
    assert _sdk(span).events == ()


def test_unlimited_events_need_no_watch() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_events=SpanLimits.UNSET))
    with provider.get_tracer("t").start_as_current_span("s") as span:
        watch_evictions(span, lambda _span: lambda event: None)
        assert event_list(span)._dq.__class__ is deque
        assert not keeps_no_events(span)


def test_a_watched_deque_survives_a_deep_copy() -> None:
    watched = EvictionWatch([1, 2], 2, lambda item: None)
    copied = copy.deepcopy(watched)
    copied.append(3)
    assert list(copied) == [2, 3]


def test_a_carrying_event_is_an_event_as_exporters_read_it() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    item = object()
    with provider.get_tracer("t").start_as_current_span("s") as span:
        assert add_carrying_event(span, "e", {"a": 1, "b": "x"}, 1234, item)
    (event,) = memory.get_finished_spans()[0].events
    assert isinstance(event, CarryingEvent)
    assert event.item is item
    assert (event.name, event.timestamp, dict(event.attributes or {})) == (
        "e",
        1234,
        {"a": 1, "b": "x"},
    )
    assert isinstance(event.attributes, MappingProxyType)  # read-only, as the SDK's are
    assert event.dropped_attributes == 0
    assert '"a": 1' in memory.get_finished_spans()[0].to_json()
    assert not add_carrying_event(object(), "e", {}, 1, item)


def test_an_ended_span_takes_no_carrying_event() -> None:
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        pass
    add_carrying_event(span, "e", {"a": 1}, 1, None)
    assert _sdk(span).events == ()


def test_a_tracers_span_limits_are_what_its_spans_get() -> None:
    limits = SpanLimits(max_attribute_length=5, max_span_attributes=3)
    tracer = TracerProvider(span_limits=limits).get_tracer("t")
    assert tracer_would_cut(tracer, {"k": "123456"}, already=0)
    assert tracer_would_cut(tracer, {"a": 1, "b": 2}, already=2)
    assert not tracer_would_cut(tracer, {"a": "12345", "b": 2}, already=1)
    span = _sdk(tracer.start_span("s", attributes={"a": "123456", "b": 1, "c": 2, "d": 3}))
    assert dict(span.attributes or {}) == {"b": 1, "c": 2, "d": 3}  # what was foretold
    assert not tracer_would_cut(trace.NoOpTracer(), {"k": "x" * 10_000}, already=10_000)


def test_a_root_span_can_be_started_in_a_given_trace() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("t")
    start_root_in_trace(tracer, 0xABC, "carrier").end()
    tracer.start_span("after").end()
    carrier, after = spans.get_finished_spans()
    assert carrier.context is not None
    assert after.context is not None
    assert carrier.context.trace_id == 0xABC
    assert carrier.parent is None
    assert after.context.trace_id != 0xABC
    assert start_root_in_trace(trace.NoOpTracer(), 0xABC, "carrier") is None


def test_a_spans_attributes_are_a_dict_shared_with_on_end() -> None:
    provider = TracerProvider()
    kept = _Keep()
    provider.add_span_processor(kept)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("s", attributes={"a": 1}) as span:
        span.set_attribute("gen_ai.response.id", "r")
    with tracer.start_as_current_span("empty"):
        pass
    ended, empty = kept.ended
    found = attribute_dict(ended)
    assert isinstance(found, dict)
    assert found == dict(ended.attributes or {}) == {"a": 1, "gen_ai.response.id": "r"}
    assert attribute_dict(span) is found  # the live span's own, not a copy
    assert attribute_dict(empty) == {}
    assert attribute_dict(object()) == {}  # no attributes at all: nothing to find
    assert attribute_dict(ReadableSpan("r")) == {}


def test_a_providers_tracers_ask_the_sampler_it_holds_and_drop_by_decision() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, StaticSampler

    provider = TracerProvider(sampler=ALWAYS_OFF)
    kept = _Keep()
    provider.add_span_processor(kept)
    early = provider.get_tracer("early")
    drops: list[tuple[object, int]] = []
    assert watch_drops(provider, lambda active, trace_id: drops.append((active, trace_id))) == "new"
    late = provider.get_tracer("late")
    assert late.sampler is provider.sampler  # type: ignore[attr-defined]
    assert early.sampler is provider.sampler  # type: ignore[attr-defined]
    spans = [early.start_span("a"), late.start_span("b")]
    assert [trace_id for _, trace_id in drops] == [s.get_span_context().trace_id for s in spans]
    assert {id(active) for active, _ in drops} == {id(provider._active_span_processor)}
    assert processors_of_active(drops[0][0]) == (kept,)
    assert isinstance(ALWAYS_OFF, StaticSampler)
    assert watch_drops(object(), lambda active, trace_id: None) == "not-sdk"
