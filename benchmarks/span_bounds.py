"""Where feedback goes when spans are many, long-lived, or from several providers.

    python benchmarks/span_bounds.py [--records N] [--open-spans S] [--per-span K]

Prints, for one process:
- two TracerProviders: what each one's FeedbackSpanProcessor exported, and the warnings;
- S spans open at once with K records each, then ended: recorded, exported, dropped;
- one span that never ends, collecting N records: the memory Python holds (tracemalloc)
  before and after them, and what was exported or counted as dropped.
"""

from __future__ import annotations

import argparse
import logging
import tracemalloc
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    record_feedback,
)


class Counting(FeedbackExporter):
    """Counts what it is given and keeps nothing, so that memory is the pipeline's own."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        self.count += len(batch)
        return FeedbackExportResult.SUCCESS


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def pipeline(**options: int) -> tuple[TracerProvider, FeedbackSpanProcessor, Counting]:
    provider = TracerProvider()
    exporter = Counting()
    processor = FeedbackSpanProcessor(exporter, **options)  # type: ignore[arg-type]
    provider.add_span_processor(processor)
    return provider, processor, exporter


def two_providers(warnings: Warnings) -> None:
    warnings.messages.clear()
    a, b = pipeline(max_queue_size=100_000), pipeline(max_queue_size=100_000)
    tracer_a, tracer_b = a[0].get_tracer("a"), b[0].get_tracer("b")
    for _ in range(5000):
        with tracer_a.start_as_current_span("a"):
            record_feedback("k", score=1)
    with tracer_b.start_as_current_span("b"):
        record_feedback("k", score=2)
    a[1].force_flush()
    b[1].force_flush()
    print(
        f"two providers: A recorded 5000, exported {a[2].count}; B recorded 1, exported "
        f"{b[2].count}; warnings: {len(warnings.messages)}"
    )
    a[0].shutdown()
    b[0].shutdown()


def open_spans(count: int, per_span: int) -> None:
    provider, processor, exporter = pipeline(max_queue_size=count * per_span)
    tracer = provider.get_tracer("x")
    spans = [tracer.start_span("s") for _ in range(count)]
    for span in spans:
        with trace.use_span(span):
            for _ in range(per_span):
                record_feedback("k", score=1)
    for span in spans:
        span.end()
    processor.force_flush()
    print(
        f"{count} open spans x {per_span} records: recorded {count * per_span}, exported "
        f"{exporter.count}, dropped_records {processor.dropped_records}"
    )
    provider.shutdown()


def never_ending(records: int) -> None:
    provider, processor, exporter = pipeline()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    with provider.get_tracer("x").start_as_current_span("forever"):
        for i in range(records):
            record_feedback("k", score=i)
        during = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    processor.force_flush()
    print(
        f"one never-ending span, {records} records: Python memory {before / 2**20:.1f} -> "
        f"{during / 2**20:.1f} MiB before its end; exported {exporter.count}, "
        f"dropped_records {processor.dropped_records}"
    )
    provider.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--open-spans", type=int, default=4300)
    parser.add_argument("--per-span", type=int, default=150)
    args = parser.parse_args()
    warnings = Warnings()
    logging.getLogger("otel_feedback").addHandler(warnings)
    two_providers(warnings)
    open_spans(args.open_spans, args.per_span)
    never_ending(args.records)


if __name__ == "__main__":
    main()
