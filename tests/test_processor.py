from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    InMemoryFeedbackExporter,
    record_feedback,
)
from otel_feedback import _attributes as a
from otel_feedback._recording.handoff import sinks_of_provider
from tests.conftest import Pipeline, make_pipeline


def test_nothing_is_exported_before_the_span_ends(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("run"):
        record = record_feedback("k", score=1)
        pipeline.flush()
        assert pipeline.feedback.get_finished_feedback() == ()
    pipeline.flush()
    assert record is not None
    built = record.to_feedback()
    assert pipeline.feedback.get_finished_feedback() == (built,)


def test_each_record_points_at_its_own_span(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("root") as root:
        with pipeline.tracer.start_as_current_span("child") as child:
            on_child = record_feedback("correctness", score=0)
        on_root = record_feedback("user_feedback", score=1)
    pipeline.flush()
    exported = {r.key: r for r in pipeline.feedback.get_finished_feedback()}
    assert on_child is not None
    assert on_root is not None
    on_child_built = on_child.to_feedback()
    on_root_built = on_root.to_feedback()
    assert exported == {
        "correctness": on_child_built,
        "user_feedback": on_root_built,
    }
    assert exported["correctness"].run_id == uuid.UUID(int=child.get_span_context().span_id)
    assert exported["user_feedback"].run_id == uuid.UUID(int=root.get_span_context().span_id)
    assert on_child.trace_id == on_root.trace_id


def test_feedback_survives_event_eviction(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("chatty") as span:
        record = record_feedback("k", score=1, comment="first")
        for i in range(300):
            span.add_event(f"token {i}")
    finished = pipeline.spans.get_finished_spans()[0]
    assert all(e.name != a.EVENT_NAME for e in finished.events)  # the SDK evicted it
    pipeline.flush()
    assert record is not None
    built = record.to_feedback()
    assert pipeline.feedback.get_finished_feedback() == (built,)


def test_records_are_whole_even_when_span_limits_truncate_the_event() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=8))
    exporter = InMemoryFeedbackExporter()
    processor = FeedbackSpanProcessor(exporter)
    provider.add_span_processor(processor)
    comment = "a long explanation that the span limits cut short"
    with provider.get_tracer("t").start_as_current_span("run"):
        record = record_feedback("k", score=1, comment=comment, value={"long": "x" * 50})
    processor.force_flush()
    assert record is not None
    built = record.to_feedback()
    assert exporter.get_finished_feedback() == (built,)
    assert exporter.get_finished_feedback()[0].comment == comment
    provider.shutdown()


def test_an_event_cut_by_span_limits_is_marked_and_never_decoded_as_whole() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=40))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("run"):
        record_feedback("k", score=1, comment="a long explanation, longer than forty characters")
        record_feedback("short", score=1, comment="tiny")
    events = memory.get_finished_spans()[0].events
    marks = [(e.attributes or {}).get(a.ATTR_TRUNCATED) for e in events]
    assert marks == [True, None]
    # Read from the event alone (no processor kept the record), the cut one is refused.
    exporter = InMemoryFeedbackExporter()
    late = FeedbackSpanProcessor(exporter)
    late.on_end(memory.get_finished_spans()[0])
    late.force_flush()
    assert [r.key for r in exporter.get_finished_feedback()] == ["short"]
    late.shutdown()
    provider.shutdown()


def test_events_written_by_other_code_are_exported(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("judged") as span:
        span.add_event(
            a.EVENT_NAME,
            {
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.75,
                "gen_ai.evaluation.score.label": "relevant",
                "gen_ai.evaluation.explanation": "on topic",
            },
        )
        ours = record_feedback("k", score=1)
    pipeline.flush()
    exported = {r.key: r for r in pipeline.feedback.get_finished_feedback()}
    assert ours is not None
    ours_built = ours.to_feedback()
    assert exported["k"] == ours_built
    relevance = exported["relevance"]
    assert relevance.score == 0.75
    assert relevance.value == "relevant"
    assert relevance.comment == "on topic"
    assert relevance.run_id == uuid.UUID(int=span.get_span_context().span_id)
    assert relevance.feedback_source is None


def test_events_recorded_before_the_processor_existed_are_exported() -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("run"):
        record = record_feedback("k", score=True, value={"a": [1]}, source_run_id=uuid.uuid4())
        exporter = InMemoryFeedbackExporter()
        processor = FeedbackSpanProcessor(exporter)
        provider.add_span_processor(processor)
    processor.force_flush()
    # Decoded from the span event alone: the event format is lossless by itself.
    assert record is not None
    built = record.to_feedback()
    assert exporter.get_finished_feedback() == (built,)
    provider.shutdown()


def test_a_malformed_event_is_skipped_with_one_warning(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    with pipeline.tracer.start_as_current_span("run") as span:
        span.add_event(a.EVENT_NAME, {"gen_ai.evaluation.score.value": 1.0})  # no name
        span.add_event(a.EVENT_NAME, {a.ATTR_KEY: "k", a.ATTR_VALUE: "{not json"})
        span.add_event(a.EVENT_NAME, {a.ATTR_KEY: "k", a.ATTR_SCORE_VALUE: "high"})
        good = record_feedback("good", score=1)
    pipeline.flush()
    assert good is not None
    good_built = good.to_feedback()
    assert pipeline.feedback.get_finished_feedback() == (good_built,)
    messages = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(messages) == 3
    assert any(a.ATTR_KEY in m for m in messages)
    assert any(a.ATTR_VALUE in m for m in messages)


class ExplodingExporter(FeedbackExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        self.calls += 1
        raise RuntimeError("backend on fire")


class FailingExporter(FeedbackExporter):
    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        return FeedbackExportResult.FAILURE


def test_a_raising_exporter_never_reaches_the_app_nor_the_other_exporters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    exploding, healthy = ExplodingExporter(), InMemoryFeedbackExporter()
    provider = TracerProvider()
    processor = FeedbackSpanProcessor([exploding, healthy])
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for _ in range(3):
        with tracer.start_as_current_span("run"):
            record_feedback("k", score=1)
        assert processor.force_flush()
    assert exploding.calls == 3
    assert len(healthy.get_finished_feedback()) == 3
    assert processor.dropped_records == 3
    reason = "refused: the exporter raised RuntimeError"
    assert processor.stats().dropped["ExplodingExporter"] == {reason: 3}
    # The first loss is logged at once, the next ones summed up (here: at shutdown).
    assert len([r for r in caplog.records if reason in r.getMessage()]) == 1
    provider.shutdown()
    assert _logged_drops(caplog, reason) == 3


def test_a_failed_export_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(FailingExporter())
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for _ in range(4):
        with tracer.start_as_current_span("run"):
            record_feedback("a", score=1)
            record_feedback("b", score=1)
        processor.force_flush()
    assert processor.dropped_records == 8
    reason = "refused: the batch was refused"
    assert len([r for r in caplog.records if reason in r.getMessage()]) == 1
    provider.shutdown()
    assert _logged_drops(caplog, reason) == 8


def _logged_drops(caplog: pytest.LogCaptureFixture, reason: str) -> int:
    """The records the log says were dropped for ``reason``, summed over its lines."""
    lines = [r.getMessage() for r in caplog.records if r.getMessage().endswith(reason)]
    return sum(int(line.split()[1]) for line in lines)


class BlockingExporter(InMemoryFeedbackExporter):
    """Holds the worker inside export until released, so the queue can fill up."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        self.entered.set()
        assert self.release.wait(10)
        return super().export(batch)


def test_a_full_queue_drops_counts_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    exporter = BlockingExporter()
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(exporter, max_queue_size=3, max_export_batch_size=1)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("first"):
        record_feedback("k", score=0)
    assert exporter.entered.wait(10)  # the exporter now holds record 0 and is blocked
    for i in range(1, 10):
        with tracer.start_as_current_span("run"):
            record_feedback("k", score=i)
    # The exporter's backlog holds 3 with the one in flight, the queue 3 more; each later
    # one waited for room (briefly, as the endpoint takes batches) and was then refused.
    assert processor.dropped_records == 4
    exporter.release.set()
    assert processor.force_flush()
    assert [r.score for r in exporter.get_finished_feedback()] == [0, 1, 2, 3, 4, 5]
    full = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(full) == 1
    provider.shutdown()


def test_batches_respect_the_batch_size() -> None:
    sizes: list[int] = []

    class Sizes(FeedbackExporter):
        def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
            sizes.append(len(batch))
            return FeedbackExportResult.SUCCESS

    provider = TracerProvider()
    processor = FeedbackSpanProcessor(Sizes(), max_export_batch_size=10, max_queue_size=100)
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        for i in range(25):
            record_feedback("k", score=i)
    processor.force_flush()
    assert sum(sizes) == 25
    assert max(sizes) <= 10
    provider.shutdown()


def test_shutdown_exports_what_is_queued_and_stops() -> None:
    exporter = InMemoryFeedbackExporter()
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("run"):
        record = record_feedback("k", score=1)
    provider.shutdown()
    assert record is not None
    built = record.to_feedback()
    assert exporter.get_finished_feedback() == (built,)
    assert processor not in sinks_of_provider(provider)
    with tracer.start_as_current_span("late"):
        record_feedback("k", score=2)
    assert processor.force_flush()
    assert exporter.get_finished_feedback() == (built,)
    processor.shutdown()  # a second shutdown is harmless


class CountingUntil(FeedbackExporter):
    """Signals once it has received ``expected`` records."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.done = threading.Event()

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        self.received += len(batch)
        if self.received >= self.expected:
            self.done.set()
        return FeedbackExportResult.SUCCESS


def test_each_full_batch_leaves_without_waiting_for_the_schedule() -> None:
    exporter = CountingUntil(12)
    provider = TracerProvider()
    # No flush and an hour's delay: only filling a batch can wake the worker.
    processor = FeedbackSpanProcessor(
        exporter, max_export_batch_size=4, schedule_delay_millis=3_600_000
    )
    provider.add_span_processor(processor)
    for i in range(12):
        with provider.get_tracer("t").start_as_current_span(f"run {i}"):
            record_feedback("k", score=i)
    assert exporter.done.wait(30)
    assert exporter.received == 12
    provider.shutdown()


def test_the_partial_batch_leaves_after_the_schedule_delay() -> None:
    exporter = BlockingExporter()
    exporter.release.set()
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(exporter, schedule_delay_millis=5)
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("run"):
        record_feedback("k", score=1)
    # No flush: the worker's timer alone must export it.
    assert exporter.entered.wait(10)
    provider.shutdown()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_queue_size": 0}, "max_queue_size: must be positive"),
        ({"max_export_batch_size": -1}, "max_export_batch_size: must be positive"),
        ({"schedule_delay_millis": 0}, "schedule_delay_millis: must be positive"),
        ({"max_queue_size": 10, "max_export_batch_size": 11}, "must not exceed max_queue_size"),
    ],
)
def test_bad_processor_options_raise(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeedbackSpanProcessor(InMemoryFeedbackExporter(), **options)  # type: ignore[arg-type]


def test_an_exporter_is_required() -> None:
    with pytest.raises(ValueError, match="exporter: must be a FeedbackExporter"):
        FeedbackSpanProcessor([])
    with pytest.raises(ValueError, match="exporter: must be a FeedbackExporter"):
        FeedbackSpanProcessor(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "validated"])
def test_threads_record_at_once_each_record_exactly_once_on_its_span(plain: bool) -> None:
    # Small batches keep the worker taking from the queue while the threads add to it.
    pipeline = make_pipeline(max_queue_size=100_000, max_export_batch_size=16)
    threads, per_thread = 8, 200
    expected: dict[uuid.UUID, uuid.UUID] = {}
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            with pipeline.tracer.start_as_current_span(f"t{n}-{i}") as span:
                if plain:
                    record = record_feedback("k", score=i, comment=f"thread {n}")
                else:
                    record = record_feedback("k", score=i, extra={"thread": n})
            assert record is not None
            with lock:
                expected[record.id] = uuid.UUID(int=span.get_span_context().span_id)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    pipeline.flush()
    exported = pipeline.feedback.get_finished_feedback()
    assert len(exported) == threads * per_thread
    assert {r.id: r.run_id for r in exported} == expected
    pipeline.provider.shutdown()


def test_asyncio_tasks_record_at_once_each_on_its_own_span() -> None:
    pipeline = make_pipeline(max_queue_size=100_000)

    async def handle(n: int) -> tuple[uuid.UUID, uuid.UUID]:
        with pipeline.tracer.start_as_current_span(f"request {n}") as span:
            await asyncio.sleep(0)  # interleave the tasks inside their spans
            record = record_feedback("k", score=n)
            await asyncio.sleep(0)
        assert record is not None
        return record.id, uuid.UUID(int=span.get_span_context().span_id)

    async def main() -> list[tuple[uuid.UUID, uuid.UUID]]:
        return await asyncio.gather(*(handle(n) for n in range(500)))

    expected = dict(asyncio.run(main()))
    pipeline.flush()
    exported = pipeline.feedback.get_finished_feedback()
    assert len(exported) == 500
    assert {r.id: r.run_id for r in exported} == expected
    pipeline.provider.shutdown()
