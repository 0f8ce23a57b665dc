"""Per-call cost of record_feedback next to its floors, measured in one run.

On a live span the floor is a bare span.add_event with the same attributes; after the run it is
a child span of a remote parent carrying one such event. A third pair shows what the
FeedbackSpanProcessor adds to spans that carry no feedback.

    python benchmarks/record_cost.py [--calls N] [--repeats R]

Prints medians over R repeats of N calls each, and the ratios. The machines are shared and
noisy: compare the ratios, which are taken within one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter, record_feedback
from otel_feedback._attributes import EVENT_NAME
from otel_feedback._codec import encode

ARGUMENTS = {"score": 1, "value": "good", "comment": "matches the reference answer"}


def interleaved_medians(runs: list[Callable[[int], int]], calls: int, repeats: int) -> list[float]:
    """Per-call medians (us) of each run, the runs taking turns in every repeat.

    Taking turns spreads the shared machine's noise over all runs alike, so that the ratios
    between them hold even when the absolute figures wander.
    """
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, kept in zip(runs, samples, strict=True):
            kept.append(run(calls) / calls / 1000)
    return [statistics.median(kept) for kept in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    exporter = InMemoryFeedbackExporter()
    plain = TracerProvider()
    with_feedback = TracerProvider()
    processor = FeedbackSpanProcessor(exporter, max_queue_size=1_000_000)
    with_feedback.add_span_processor(processor)

    # The floor: the same attributes record_feedback writes, added as a bare event.
    with with_feedback.get_tracer("b").start_as_current_span("sample"):
        sample = record_feedback("correctness", **ARGUMENTS)  # type: ignore[arg-type]
    assert sample is not None
    attributes = encode(sample.to_feedback())

    # Each run times only its calls: ending the span and flushing happen off the clock.
    def bare_add_event(calls: int) -> int:
        with plain.get_tracer("b").start_as_current_span("s") as span:
            started = time.perf_counter_ns()
            for _ in range(calls):
                span.add_event(EVENT_NAME, attributes)
            return time.perf_counter_ns() - started

    def feedback(calls: int) -> int:
        with with_feedback.get_tracer("b").start_as_current_span("s"):
            started = time.perf_counter_ns()
            for _ in range(calls):
                record_feedback("correctness", **ARGUMENTS)  # type: ignore[arg-type]
            elapsed = time.perf_counter_ns() - started
        processor.force_flush()
        exporter.clear()
        return elapsed

    def spans(provider: TracerProvider) -> Callable[[int], int]:
        tracer = provider.get_tracer("b")

        def run(calls: int) -> int:
            started = time.perf_counter_ns()
            for _ in range(calls):
                with tracer.start_as_current_span("s"):
                    pass
            return time.perf_counter_ns() - started

        return run

    # What any span processor costs, doing nothing: the part of the processor's overhead
    # that is the SDK calling it (on_start, _on_ending, on_end) for every span.
    with_noop = TracerProvider()
    with_noop.add_span_processor(SpanProcessor())
    spans_without, spans_with, spans_noop = spans(plain), spans(with_feedback), spans(with_noop)

    # After the run: the floor is what a carrier is, a child span of a remote parent with
    # one event carrying the same attributes.
    trace.set_tracer_provider(with_feedback)
    with with_feedback.get_tracer("b").start_as_current_span("ended") as ended:
        pass
    judged = ended.get_span_context()
    remote_parent = trace.set_span_in_context(
        NonRecordingSpan(
            SpanContext(judged.trace_id, judged.span_id, True, TraceFlags(TraceFlags.SAMPLED))
        )
    )

    def bare_carrier(calls: int) -> int:
        tracer = with_feedback.get_tracer("b")
        started = time.perf_counter_ns()
        for _ in range(calls):
            span = tracer.start_span("feedback correctness", context=remote_parent)
            span.add_event(EVENT_NAME, attributes)
            span.end()
        elapsed = time.perf_counter_ns() - started
        processor.force_flush()
        exporter.clear()
        return elapsed

    def feedback_after(calls: int) -> int:
        started = time.perf_counter_ns()
        for _ in range(calls):
            record_feedback("correctness", span=ended, **ARGUMENTS)  # type: ignore[arg-type]
        elapsed = time.perf_counter_ns() - started
        processor.force_flush()
        exporter.clear()
        return elapsed

    runs = [
        bare_add_event,
        feedback,
        spans_without,
        spans_with,
        spans_noop,
        bare_carrier,
        feedback_after,
    ]
    for run in runs:
        run(200)  # warm up
    floor, ours, bare_spans, processed_spans, noop_spans, carrier_floor, after = (
        interleaved_medians(runs, args.calls, args.repeats)
    )

    rows = [
        (f"span.add_event, the same {len(attributes)} attributes (floor)", floor, 1.0),
        ("record_feedback on a live span", ours, ours / floor),
        ("span start+end, no FeedbackSpanProcessor", bare_spans, 1.0),
        (
            "span start+end, with FeedbackSpanProcessor",
            processed_spans,
            processed_spans / bare_spans,
        ),
        (
            "span start+end, with a SpanProcessor that does nothing",
            noop_spans,
            noop_spans / bare_spans,
        ),
        ("child of a remote parent + 1 event (floor)", carrier_floor, 1.0),
        ("record_feedback after the run (carrier span)", after, after / carrier_floor),
    ]
    print(f"{'measure (median per call)':<56}{'us':>9}{'ratio':>8}")
    for label, micros, ratio in rows:
        print(f"{label:<56}{micros:>9.2f}{ratio:>8.2f}")
    with_feedback.shutdown()
    with_noop.shutdown()
    plain.shutdown()


if __name__ == "__main__":
    main()
