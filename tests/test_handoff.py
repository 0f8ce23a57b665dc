"""Feedback reaches the processors of its span's own provider, and none is lost or hoarded."""

from __future__ import annotations

import gc
import logging
import weakref

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider

from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter, record_feedback
from otel_feedback._recording.handoff import EventFeedback, feedback_of
from tests.conftest import Pipeline, make_pipeline


def _provider(
    **limits: int,
) -> tuple[TracerProvider, FeedbackSpanProcessor, InMemoryFeedbackExporter]:
    provider = TracerProvider(span_limits=SpanLimits(**limits))
    exporter = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor(exporter, max_queue_size=100_000)
    provider.add_span_processor(processor)
    return provider, processor, exporter


def test_two_providers_each_export_exactly_their_own(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="otel_feedback")
    first, second = make_pipeline(), make_pipeline(max_queue_size=10_000)
    try:
        with first.tracer.start_as_current_span("a"):
            mine = [record_feedback("k", score=i) for i in range(3)]
        open_spans = [second.tracer.start_span(f"b{i}") for i in range(5000)]
        theirs = []
        for span in open_spans:
            with trace.use_span(span):
                theirs.append(record_feedback("k", score=2))
        for span in open_spans:
            span.end()
        first.flush()
        second.flush()
        assert [r.id for r in first.feedback.get_finished_feedback()] == [
            r.id for r in mine if r is not None
        ]
        assert {r.id for r in second.feedback.get_finished_feedback()} == {
            r.id for r in theirs if r is not None
        }
        assert len(second.feedback.get_finished_feedback()) == 5000
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        first.provider.shutdown()
        second.provider.shutdown()


def test_a_span_that_never_ends_holds_only_its_events() -> None:
    provider, processor, exporter = _provider(max_events=8)
    span = provider.get_tracer("t").start_span("forever")
    with trace.use_span(span):
        made = [record_feedback("k", score=i) for i in range(1000)]
    # Each evicted event's record went to the processor as it was evicted: the span holds
    # its 8 events, and nothing else holds the other 992.
    assert len(span.events) == 8  # type: ignore[attr-defined]
    # Each handle, as it is or wrapped to build its record with the span's run attributes.
    assert [getattr(item, "handle", item) for item in feedback_of(span)] == made[-8:]
    processor.force_flush()
    assert [r.score for r in exporter.get_finished_feedback()] == list(range(992))
    span.end()
    processor.force_flush()
    assert [r.id for r in exporter.get_finished_feedback()] == [r.id for r in made if r is not None]
    assert processor.dropped_records == 0
    provider.shutdown()


def test_what_passes_the_queue_bound_is_counted() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_events=4))
    exporter = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor(
        exporter, max_queue_size=10, max_export_batch_size=10, schedule_delay_millis=60_000
    )
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("forever"):
        for i in range(100):
            record_feedback("k", score=i)
    processor.force_flush()
    provider.shutdown()
    exported = len(exporter.get_finished_feedback())
    assert exported + processor.dropped_records == 100
    # The queue is full at times, but the exporter takes batches: on_end waits for room.
    assert processor.dropped_records == 0


def test_many_open_spans_lose_no_record() -> None:
    provider, processor, exporter = _provider()
    tracer = provider.get_tracer("t")
    spans = [tracer.start_span(f"s{i}") for i in range(300)]
    for span in spans:
        with trace.use_span(span):
            for _ in range(150):  # past the default 128 events of a span
                record_feedback("k", score=1)
    for span in spans:
        span.end()
    processor.force_flush()
    assert len(exporter.get_finished_feedback()) == 300 * 150
    assert len({r.id for r in exporter.get_finished_feedback()}) == 300 * 150
    assert processor.dropped_records == 0
    provider.shutdown()


def test_foreign_events_evicted_from_a_watched_span_are_exported(pipeline: Pipeline) -> None:
    limited = TracerProvider(span_limits=SpanLimits(max_events=2))
    limited.add_span_processor(pipeline.processor)
    with limited.get_tracer("t").start_as_current_span("s") as span:
        record_feedback("ours", score=1)
        span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "theirs"})
        span.add_event("x")
        span.add_event("y")
    pipeline.flush()
    assert sorted(r.key for r in pipeline.feedback.get_finished_feedback()) == ["ours", "theirs"]


def test_a_record_cut_by_limits_goes_whole_to_the_spans_own_processors_only() -> None:
    provider, processor, exporter = _provider(max_attribute_length=8)
    bystander = make_pipeline()
    try:
        with provider.get_tracer("t").start_as_current_span("s"):
            recorded = record_feedback("k", score=1, comment="longer than eight")
            processor.force_flush()
            # Handed off at once, before its span ends.
            assert exporter.get_finished_feedback()[0].comment == "longer than eight"
        processor.force_flush()
        assert recorded is not None
        assert exporter.get_finished_feedback() == (recorded.to_feedback(),)
        bystander.flush()
        assert bystander.feedback.get_finished_feedback() == ()
    finally:
        provider.shutdown()
        bystander.provider.shutdown()


def test_feedback_with_no_span_goes_to_the_global_providers_processors(
    global_pipeline: Pipeline,
) -> None:
    bystander = make_pipeline()
    try:
        recorded = record_feedback("k", score=1, traceparent=f"00-{'a' * 32}-{'b' * 16}-00")
        global_pipeline.flush()
        bystander.flush()
        assert recorded is not None
        assert global_pipeline.feedback.get_finished_feedback() == (recorded.to_feedback(),)
        assert bystander.feedback.get_finished_feedback() == ()
    finally:
        bystander.provider.shutdown()


def test_a_foreign_event_item_decodes_or_says_why() -> None:
    good = EventFeedback(
        {"gen_ai.evaluation.name": "k", "gen_ai.evaluation.score.value": 1.0}, 5_000, 7, 9
    )
    assert good.to_feedback().key == "k"
    bad = EventFeedback({"gen_ai.evaluation.score.value": 1.0}, 5_000, 7, 9)
    with pytest.raises(ValueError, match=r"^gen_ai\.evaluation\.name"):
        bad.to_feedback()


def test_a_span_with_feedback_is_freed_without_the_garbage_collector(pipeline: Pipeline) -> None:
    # What watches a span's evictions lives in the span's own event list: it must not hold
    # the span, or every span with feedback would wait for a garbage collection to be freed.
    gc.disable()
    try:
        span = pipeline.tracer.start_span("run")
        with trace.use_span(span, end_on_exit=True):
            record_feedback("k", score=1)
        freed = weakref.ref(span)
        del span
        assert freed() is None
    finally:
        gc.enable()
    pipeline.flush()
    assert len(pipeline.feedback.get_finished_feedback()) == 1


def test_a_plain_call_is_exported_as_its_handle_builds_it_with_the_run(
    pipeline: Pipeline,
) -> None:
    """The exported record is built with the run attributes at once, not copied to add them."""
    from otel_feedback._model import checked_feedback
    from otel_feedback._recording.handoff import PlainWithRun

    with pipeline.tracer.start_as_current_span("generate") as span:
        plain = record_feedback("plain", score=1, value="good", comment="c")
        checked = record_feedback("checked", score=1, extra={"a": 1})
        span.set_attribute("gen_ai.response.id", "r-2")
    readable = pipeline.spans.get_finished_spans()[-1]
    queued = {type(item).__name__ for item in feedback_of(readable)}
    assert queued == {"PlainWithRun", "RecordedFeedback"}  # a validated record is the caller's
    pipeline.flush()
    run = {"gen_ai.response.id": "r-2", "gen_ai.evaluation.target": "generate"}
    exported = {r.key: r for r in pipeline.feedback.get_finished_feedback()}
    assert plain is not None
    assert checked is not None
    assert exported == {"plain": plain.to_feedback(), "checked": checked.to_feedback()}
    assert exported["plain"].run_attributes == exported["checked"].run_attributes == run
    assert PlainWithRun(plain).to_feedback() == plain.to_feedback()
    # Plain records share one private dict; the run went into one of the record's own.
    fresh = checked_feedback(key="k")
    assert fresh.run_attributes == {}
