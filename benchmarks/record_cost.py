"""What record_feedback costs the application's thread, span start to span end, next to floors.

Each measure times whole spans, so that what the FeedbackSpanProcessor does in ``on_end`` on
the application's thread is counted:

- live feedback: a span started, ``--per-span`` calls of record_feedback, the span ended;
  its floor is the same span with bare ``span.add_event`` calls of the same attributes, on a
  provider without the processor;
- late feedback: record_feedback about an ended span (a carrier span); its floors are a child
  span of a remote parent with one such event, and the same with what OpenInference's
  post-hoc form adds (the link to the judged span and the result's attributes), on a
  provider without the processor;
- spans with no feedback: start and end with the FeedbackSpanProcessor, next to the same with
  a SpanProcessor that does nothing; each a root span (the processor notes every trace's
  root, for feedback on a whole trace later), then each a child of one open span;
- what inline OpenInference ``annotations.0.annotation.*`` attributes would add to a span
  with one feedback event (the README says why live feedback does not write them);
- one feedback id: drawn from the operating system's randomness (a pool of ``os.urandom``
  bytes, as record_feedback draws them), next to the ``random.getrandbits`` they were drawn
  from before (the floor) and to ``uuid.uuid4()``.

    python benchmarks/record_cost.py [--spans N] [--per-span K] [--repeats R]

Two clocks: the application thread's own CPU time (``time.thread_time_ns``), which is what
recording costs the caller, and wall time, which also holds what the processor's background
thread takes from the application while it holds the GIL to build and export the records.
The measures take turns within every repeat, so the shared machine's noise falls on all of
them alike; the medians and their ratios are printed. Compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_feedback import FeedbackSpanProcessor, InMemoryFeedbackExporter, record_feedback
from otel_feedback._attributes import EVENT_NAME
from otel_feedback._codec import encode, evaluation_of
from otel_feedback._ids import random_uuid4_int

ARGUMENTS = {"score": 1, "value": "good", "comment": "matches the reference answer"}


Clock = Callable[[], int]
Run = Callable[[Clock], float]


def interleaved_medians(runs: list[Run], repeats: int) -> list[tuple[float, float]]:
    """Each run's medians by (thread CPU, wall) clock, the runs taking turns in every repeat."""
    samples: list[list[tuple[float, float]]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, kept in zip(runs, samples, strict=True):
            kept.append((run(time.thread_time_ns), run(time.perf_counter_ns)))
    return [
        (statistics.median(s[0] for s in kept), statistics.median(s[1] for s in kept))
        for kept in samples
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=200, help="spans per timed run")
    parser.add_argument("--per-span", type=int, default=50, help="live feedback calls per span")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    spans_per_run: int = args.spans
    per_span: int = args.per_span

    exporter = InMemoryFeedbackExporter()
    plain = TracerProvider()
    with_feedback = TracerProvider()
    processor = FeedbackSpanProcessor(exporter, max_queue_size=10_000_000)
    with_feedback.add_span_processor(processor)
    with_noop = TracerProvider()
    with_noop.add_span_processor(SpanProcessor())
    trace.set_tracer_provider(with_feedback)  # carrier spans come from the global provider

    # The floor's attributes: exactly those record_feedback writes on its event.
    with with_feedback.get_tracer("b").start_as_current_span("sample"):
        sample = record_feedback("correctness", **ARGUMENTS)  # type: ignore[arg-type]
    assert sample is not None
    attributes = encode(sample.to_feedback())

    def settle() -> None:
        # Off the clock: the background export of what the timed run produced.
        processor.force_flush()
        exporter.clear()

    plain_tracer = plain.get_tracer("b")
    feedback_tracer = with_feedback.get_tracer("b")

    def live_floor(clock: Clock) -> float:
        started = clock()
        for _ in range(spans_per_run):
            with plain_tracer.start_as_current_span("s") as span:
                for _ in range(per_span):
                    span.add_event(EVENT_NAME, attributes)
        return (clock() - started) / (spans_per_run * per_span) / 1000

    def live_feedback(clock: Clock) -> float:
        started = clock()
        for _ in range(spans_per_run):
            with feedback_tracer.start_as_current_span("s"):
                for _ in range(per_span):
                    record_feedback("correctness", **ARGUMENTS)  # type: ignore[arg-type]
        elapsed = (clock() - started) / (spans_per_run * per_span) / 1000
        settle()
        return elapsed

    with feedback_tracer.start_as_current_span("ended") as ended:
        pass
    judged = ended.get_span_context()
    remote_parent = trace.set_span_in_context(
        NonRecordingSpan(
            SpanContext(judged.trace_id, judged.span_id, True, TraceFlags(TraceFlags.SAMPLED))
        )
    )
    late_calls = spans_per_run * 5

    def late_floor(clock: Clock) -> float:
        started = clock()
        for _ in range(late_calls):
            span = plain_tracer.start_span("feedback correctness", context=remote_parent)
            span.add_event(EVENT_NAME, attributes)
            span.end()
        return (clock() - started) / late_calls / 1000

    judged_link = [trace.Link(judged)]
    carrier_attributes = {
        "openinference.span.kind": "EVALUATOR",
        **evaluation_of(attributes, "evaluations.0.evaluation."),
    }

    def late_floor_openinference(clock: Clock) -> float:
        # The same carrier written by hand as OpenInference's post-hoc form asks: the link
        # and the result's attributes too.
        started = clock()
        for _ in range(late_calls):
            span = plain_tracer.start_span(
                "feedback correctness",
                context=remote_parent,
                attributes=carrier_attributes,
                links=judged_link,
            )
            span.add_event(EVENT_NAME, attributes)
            span.end()
        return (clock() - started) / late_calls / 1000

    def late_feedback(clock: Clock) -> float:
        started = clock()
        for _ in range(late_calls):
            record_feedback("correctness", span=ended, **ARGUMENTS)  # type: ignore[arg-type]
        elapsed = (clock() - started) / late_calls / 1000
        settle()
        return elapsed

    span_calls = spans_per_run * 20

    def children_of(provider: TracerProvider) -> Run:
        tracer = provider.get_tracer("b")

        def run(clock: Clock) -> float:
            with tracer.start_as_current_span("parent"):
                started = clock()
                for _ in range(span_calls):
                    with tracer.start_as_current_span("s"):
                        pass
                elapsed = clock() - started
            return elapsed / span_calls / 1000

        return run

    inline = {
        f"annotations.0.annotation.{name}": value
        for name, value in evaluation_of(attributes, "").items()
    }

    def one_event(clock: Clock) -> float:
        started = clock()
        for _ in range(span_calls):
            with plain_tracer.start_as_current_span("s") as span:
                span.add_event(EVENT_NAME, attributes)
        return (clock() - started) / span_calls / 1000

    def one_event_inline(clock: Clock) -> float:
        started = clock()
        for _ in range(span_calls):
            with plain_tracer.start_as_current_span("s") as span:
                span.add_event(EVENT_NAME, attributes)
                span.set_attributes(inline)
        return (clock() - started) / span_calls / 1000

    def spans_of(provider: TracerProvider) -> Run:
        tracer = provider.get_tracer("b")

        def run(clock: Clock) -> float:
            started = clock()
            for _ in range(span_calls):
                with tracer.start_as_current_span("s"):
                    pass
            return (clock() - started) / span_calls / 1000

        return run

    id_calls = spans_per_run * 100
    getrandbits = random.getrandbits
    keep = ((1 << 128) - 1) & ~((0xF000 << 64) | (0xC000 << 48))
    version_4 = (4 << 76) | (0x8000 << 48)

    def ids_from_random(clock: Clock) -> float:
        # The id as it was drawn before: the global random module, which applications seed.
        started = clock()
        for _ in range(id_calls):
            (getrandbits(128) & keep) | version_4
        return (clock() - started) / id_calls / 1000

    def ids_from_os(clock: Clock) -> float:
        started = clock()
        for _ in range(id_calls):
            random_uuid4_int()
        return (clock() - started) / id_calls / 1000

    def ids_from_uuid4(clock: Clock) -> float:
        started = clock()
        for _ in range(id_calls):
            uuid.uuid4()
        return (clock() - started) / id_calls / 1000

    runs = [
        live_floor,
        live_feedback,
        late_floor,
        late_feedback,
        late_floor_openinference,
        spans_of(with_noop),
        spans_of(with_feedback),
        children_of(with_noop),
        children_of(with_feedback),
        spans_of(plain),
        one_event,
        one_event_inline,
        ids_from_random,
        ids_from_os,
        ids_from_uuid4,
    ]
    for run in runs:
        run(time.perf_counter_ns)  # warm up
    (
        live0,
        live1,
        late0,
        late1,
        late_oi,
        noop,
        ours,
        child_noop,
        child_ours,
        bare,
        event,
        event_inline,
        id_random,
        id_os,
        id_uuid4,
    ) = interleaved_medians(runs, args.repeats)
    # What one event adds to a span, and what the inline attributes add on top of that.
    added = tuple(e - b for e, b in zip(event, bare, strict=True))
    inline_added = tuple(i - e for i, e in zip(event_inline, event, strict=True))

    rows = [
        (
            f"span with {per_span} bare add_event, {len(attributes)} attributes (floor)",
            live0,
            live0,
        ),
        (f"span with {per_span} record_feedback, on_end included", live1, live0),
        ("child of a remote parent + 1 event (floor)", late0, late0),
        ("record_feedback after the run (carrier span)", late1, late0),
        ("the same by hand: + link + OpenInference attributes (floor)", late_oi, late_oi),
        ("record_feedback after the run (carrier span)", late1, late_oi),
        ("span start+end, a SpanProcessor that does nothing (floor)", noop, noop),
        ("span start+end, FeedbackSpanProcessor, no feedback", ours, noop),
        ("child span, a SpanProcessor that does nothing (floor)", child_noop, child_noop),
        ("child span, FeedbackSpanProcessor, no feedback", child_ours, child_noop),
        ("what 1 add_event adds to a span (floor)", added, added),
        (f"what {len(inline)} inline annotations.0.* attributes add on top", inline_added, added),
        ("one id, random.getrandbits(128) as before (floor)", id_random, id_random),
        ("one id, os.urandom drawn in pools (record_feedback's)", id_os, id_random),
        ("one id, uuid.uuid4()", id_uuid4, id_random),
    ]
    print(f"{'median, us per feedback or per span':<60}{'thread CPU':>17}{'wall':>17}")
    for label, (cpu, wall), (cpu0, wall0) in rows:
        print(f"{label:<60}{cpu:>9.2f} {cpu / cpu0:>6.2f}x{wall:>9.2f} {wall / wall0:>6.2f}x")
    for provider in (with_feedback, with_noop, plain):
        provider.shutdown()


if __name__ == "__main__":
    main()
