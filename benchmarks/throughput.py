"""Throughput from span end to exporter, and memory under sustained load.

    python benchmarks/throughput.py [--records N] [--sustained M] [--runs R]

1. Throughput: N spans, each carrying one feedback record, end through on_end as fast as the
   processor takes them; the figure is records per second until the exporter has them all:
   to a counting in-memory exporter, and over OTLP/HTTP to a receiver in another process on
   127.0.0.1. Each is run R times: the best run and the median are printed (a shared
   machine's noise only ever slows a run down).
2. Memory: M records made and exported one after another through the bounded queue (to a
   counting exporter); peak RSS before and after, and the memory one queued record costs
   (tracemalloc, with the exporter held so that the queue fills).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import threading
import time
import tracemalloc
from collections.abc import Sequence

from _receiver import free_port, start_receiver
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_feedback import (
    Feedback,
    FeedbackExporter,
    FeedbackExportResult,
    FeedbackSpanProcessor,
    OTLPFeedbackExporter,
    record_feedback,
)

RECEIVER = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from tests.otlp_receiver import OTLPReceiver
count = 0
lock = threading.Lock()
def took(logs):
    global count
    with lock:
        count += len(logs)
        if count >= int(sys.argv[3]):
            print("all", flush=True)
OTLPReceiver(http_port=int(sys.argv[2]), on_logs=took).start()
print("ready", flush=True)
threading.Event().wait()
"""


class Counting(FeedbackExporter):
    def __init__(self) -> None:
        self.count = 0
        self.release = threading.Event()
        self.release.set()

    def export(self, batch: Sequence[Feedback]) -> FeedbackExportResult:
        self.release.wait()
        self.count += len(batch)
        return FeedbackExportResult.SUCCESS


def ended_spans(processor: FeedbackSpanProcessor, count: int) -> list[ReadableSpan]:
    """Spans with one record each, ended, for ``processor`` to take in its ``on_end``."""
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(count):
        with tracer.start_as_current_span("answer"):
            record_feedback("user_rating", score=i % 2, comment="fine")
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    assert processor.force_flush()
    return spans


def throughput(exporter: FeedbackExporter, count: int, done: threading.Event | None) -> float:
    processor = FeedbackSpanProcessor(
        exporter, max_queue_size=count, max_export_batch_size=512, schedule_delay_millis=10
    )
    spans = ended_spans(processor, count)
    started = time.perf_counter()
    for span in spans:
        processor.on_end(span)
    assert processor.force_flush(120_000)
    if done is not None:
        assert done.wait(120)
    elapsed = time.perf_counter() - started
    assert processor.dropped_records == 0
    processor.shutdown()
    return count / elapsed


def otlp_throughput(count: int) -> float:
    port = free_port()
    receiver = start_receiver(RECEIVER, port, str(count))
    assert receiver.stdout is not None
    everything = threading.Event()
    stdout = receiver.stdout

    def wait_for_all() -> None:
        if stdout.readline().strip() == "all":
            everything.set()

    threading.Thread(target=wait_for_all, daemon=True).start()
    try:
        exporter = OTLPFeedbackExporter(
            endpoint=f"http://127.0.0.1:{port}/v1/logs", resource=Resource.create({})
        )
        return throughput(exporter, count, everything)
    finally:
        receiver.kill()
        receiver.wait()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sustained(count: int) -> tuple[float, float, float]:
    exporter = Counting()
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(exporter, schedule_delay_millis=50)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    before = peak_rss_mib()
    started = time.perf_counter()
    for i in range(count):
        with tracer.start_as_current_span("answer"):
            record_feedback("user_rating", score=i % 2, comment="fine")
    assert processor.force_flush(120_000)
    elapsed = time.perf_counter() - started
    assert exporter.count + processor.dropped_records == count
    provider.shutdown()
    return before, peak_rss_mib(), count / elapsed


def bytes_per_queued_record(count: int = 10_000) -> float:
    exporter = Counting()
    exporter.release.clear()  # the worker blocks in export: records stay queued
    provider = TracerProvider()
    processor = FeedbackSpanProcessor(
        exporter, max_queue_size=count + 1, max_export_batch_size=1, schedule_delay_millis=1
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    with tracer.start_as_current_span("first"):
        record_feedback("user_rating", score=1)
    tracemalloc.start()
    baseline = tracemalloc.take_snapshot()
    for i in range(count):
        with tracer.start_as_current_span("answer"):
            record_feedback("user_rating", score=i % 2, comment="fine")
    grown = tracemalloc.take_snapshot().compare_to(baseline, "filename")
    tracemalloc.stop()
    exporter.release.set()
    provider.shutdown()
    return sum(stat.size_diff for stat in grown) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--sustained", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    # The sustained run first, so that its peak RSS is its own.
    rss_before, rss_after, sustained_rate = sustained(args.sustained)
    memory_rates = [throughput(Counting(), args.records, None) for _ in range(args.runs)]
    otlp_rates = [otlp_throughput(args.records) for _ in range(args.runs)]
    per_record = bytes_per_queued_record()

    print(f"{'measure':<58}{'best (median)':>20}")
    for label, rates in (
        ("span end -> in-memory exporter (records/s)", memory_rates),
        ("span end -> OTLP/HTTP receiver on 127.0.0.1 (records/s)", otlp_rates),
    ):
        figure = f"{max(rates):,.0f} ({statistics.median(rates):,.0f})"
        print(f"{label:<58}{figure:>20}")
    print(f"{'memory of one queued record (bytes)':<58}{per_record:>20,.0f}")
    label = f"{args.sustained:,} records made and exported (records/s)"
    print(f"{label:<58}{sustained_rate:>20,.0f}")
    print(f"{'peak RSS before / after (MiB)':<58}{f'{rss_before:.0f} / {rss_after:.0f}':>20}")


if __name__ == "__main__":
    main()
