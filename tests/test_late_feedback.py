"""Feedback after the run: by reference, on carrier spans, across processes, when unsampled."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_feedback import InvalidFeedbackError, record_feedback
from otel_feedback import _attributes as a
from otel_feedback._decode import decode
from otel_feedback._recording import handoff
from otel_feedback._recording import record as recording
from tests.conftest import Pipeline, _reset_global_tracer_provider, make_pipeline
from tests.otlp_receiver import OTLPReceiver


def _ended_run(pipeline: Pipeline) -> ReadableSpan:
    with pipeline.tracer.start_as_current_span("answer"):
        pass
    (run,) = pipeline.spans.get_finished_spans()
    pipeline.spans.clear()
    return run


def _carrier(pipeline: Pipeline) -> ReadableSpan:
    (carrier,) = [s for s in pipeline.spans.get_finished_spans() if s.name.startswith("feedback ")]
    return carrier


def _reference_forms(run: ReadableSpan) -> dict[str, dict[str, Any]]:
    ctx = run.get_span_context()
    assert ctx is not None
    return {
        "span": {"span": run},
        "span_context": {"span": ctx},
        "int ids": {"trace_id": ctx.trace_id, "run_id": ctx.span_id},
        "hex ids": {"trace_id": f"{ctx.trace_id:032x}", "run_id": f"{ctx.span_id:016x}"},
        "uuids": {"trace_id": uuid.UUID(int=ctx.trace_id), "run_id": uuid.UUID(int=ctx.span_id)},
        "uuid strings": {
            "trace_id": str(uuid.UUID(int=ctx.trace_id)),
            "run_id": str(uuid.UUID(int=ctx.span_id)),
        },
        "traceparent": {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"},
    }


FORMS = ["span", "span_context", "int ids", "hex ids", "uuids", "uuid strings", "traceparent"]


@pytest.mark.parametrize("form", FORMS)
def test_feedback_on_an_ended_run_rides_a_carrier_span(
    global_pipeline: Pipeline, form: str
) -> None:
    run = _ended_run(global_pipeline)
    ctx = run.get_span_context()
    assert ctx is not None
    record = record_feedback("user_rating", score=1, **_reference_forms(run)[form])
    assert record is not None
    built = record.to_feedback()
    assert record.trace_id == uuid.UUID(int=ctx.trace_id)
    assert record.run_id == uuid.UUID(int=ctx.span_id)

    carrier = _carrier(global_pipeline)
    assert carrier.name == "feedback user_rating"
    assert carrier.context is not None
    assert carrier.parent is not None
    assert carrier.context.trace_id == ctx.trace_id
    assert carrier.parent.span_id == ctx.span_id
    assert [link.context.span_id for link in carrier.links] == [ctx.span_id]
    (event,) = carrier.events
    assert event.name == a.EVENT_NAME
    attrs = dict(event.attributes or {})
    assert attrs[a.ATTR_KEY] == "user_rating"
    assert attrs[a.ATTR_TRACE_ID] == f"{ctx.trace_id:032x}"
    assert attrs[a.ATTR_RUN_ID] == f"{ctx.span_id:016x}"
    assert run.events == ()  # the ended span itself is never touched

    global_pipeline.flush()
    assert global_pipeline.feedback.get_finished_feedback() == (built,)  # the run's ids,
    assert record.run_id != uuid.UUID(int=carrier.context.span_id)  # never the carrier's


def test_the_carrier_event_alone_rebuilds_the_record(global_pipeline: Pipeline) -> None:
    run = _ended_run(global_pipeline)
    record = record_feedback("k", score=0.5, comment="late", span=run)
    carrier = _carrier(global_pipeline)
    assert carrier.context is not None
    (event,) = carrier.events
    rebuilt = decode(
        event.attributes or {},
        timestamp_ns=event.timestamp,
        trace_id=carrier.context.trace_id,
        span_id=carrier.context.span_id,
    )
    assert record is not None
    built = record.to_feedback()
    assert rebuilt == built


def test_no_sdk_warning_about_ended_spans(
    global_pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with global_pipeline.tracer.start_as_current_span("answer") as live:
        pass
    record_feedback("k", score=1, span=live)  # the Span object itself, already ended
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]
    assert _carrier(global_pipeline).parent is not None


def test_an_open_span_given_by_reference_gets_the_event(global_pipeline: Pipeline) -> None:
    tracer = global_pipeline.tracer
    with tracer.start_as_current_span("outer") as outer:
        with tracer.start_as_current_span("inner"):
            on_outer = record_feedback("k", score=1, span=outer)
            # A SpanContext cannot be looked up, so for an open span that is not the current
            # one it gets a carrier, a child of that span: the record is the same.
            by_context = record_feedback("j", score=2, span=outer.get_span_context())
        current = record_feedback("c", score=3, span=outer.get_span_context())
    spans = {s.name: s for s in global_pipeline.spans.get_finished_spans()}
    assert set(spans) == {"outer", "inner", "feedback j"}
    keys = [(e.attributes or {})[a.ATTR_KEY] for e in spans["outer"].events]
    assert keys == ["k", "c"]
    outer_run = uuid.UUID(int=outer.get_span_context().span_id)
    for record in (on_outer, by_context, current):
        assert record is not None
        assert record.run_id == outer_run
    assert spans["feedback j"].parent is not None
    assert spans["feedback j"].parent.span_id == outer.get_span_context().span_id


def test_a_trace_id_alone_is_feedback_on_the_whole_trace(global_pipeline: Pipeline) -> None:
    run = _ended_run(global_pipeline)
    assert run.context is not None
    record = record_feedback("trace_quality", score=1, trace_id=run.context.trace_id)
    assert record is not None
    built = record.to_feedback()
    assert record.run_id is None
    assert record.trace_id == uuid.UUID(int=run.context.trace_id)
    carrier = _carrier(global_pipeline)
    assert carrier.context is not None
    assert carrier.parent is not None
    assert carrier.context.trace_id == run.context.trace_id
    # The trace's root ended here: the carrier links it, and sits under it.
    assert carrier.parent.span_id == run.context.span_id
    assert [link.context.span_id for link in carrier.links] == [run.context.span_id]
    assert (carrier.events[0].attributes or {})[a.ATTR_RUN_ID] == ""
    global_pipeline.flush()
    assert global_pipeline.feedback.get_finished_feedback() == (built,)


TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


@pytest.mark.parametrize(
    ("arguments", "field", "reason"),
    [
        ({"trace_id": TRACE, "traceparent": f"00-{TRACE}-{SPAN}-01"}, "traceparent", "combined"),
        ({"span": SpanContext(1, 2, False), "trace_id": TRACE}, "trace_id", "combined"),
        ({"run_id": SPAN}, "trace_id", "required with run_id"),
        ({"traceparent": f"00-{TRACE}-{SPAN}-01", "run_id": SPAN}, "traceparent", "run_id"),
        ({"trace_id": "0" * 32}, "trace_id", "all zeros"),
        ({"trace_id": 0}, "trace_id", "all zeros"),
        ({"trace_id": TRACE, "run_id": "0" * 16}, "run_id", "all zeros"),
        ({"trace_id": "xyz"}, "trace_id", "hex digits"),
        ({"trace_id": TRACE[:-1]}, "trace_id", "hex digits"),
        ({"trace_id": 1 << 128}, "trace_id", "128-bit"),
        ({"trace_id": -5}, "trace_id", "128-bit"),
        ({"trace_id": TRACE, "run_id": str(uuid.uuid4())}, "run_id", "64-bit"),
        ({"trace_id": TRACE, "run_id": True}, "run_id", "hex digits"),
        ({"trace_id": 1.5}, "trace_id", "hex digits"),
        ({"traceparent": "garbage"}, "traceparent", "W3C"),
        ({"traceparent": f"00-{'0' * 32}-{SPAN}-01"}, "traceparent", "all-zero"),
        ({"traceparent": f"ff-{TRACE}-{SPAN}-01"}, "traceparent", "version"),
        ({"traceparent": f"00-{TRACE}-{SPAN}-01-extra"}, "traceparent", "format"),
        ({"traceparent": 5}, "traceparent", "string"),
        ({"span": "a span"}, "span", "a Span, a ReadableSpan or a SpanContext"),
    ],
)
def test_bad_targets_name_the_argument(arguments: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InvalidFeedbackError) as caught:
        record_feedback("k", score=1, **arguments)
    assert caught.value.field == field
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        (SpanContext(0, 0, False), "the SpanContext is not valid"),
        (trace.INVALID_SPAN, "the span has no valid SpanContext"),
    ],
)
def test_a_span_with_no_valid_context_is_refused_while_tracing_is_on(
    global_pipeline: Pipeline, span: trace.Span | SpanContext, reason: str
) -> None:
    with pytest.raises(InvalidFeedbackError) as caught:
        record_feedback("k", score=1, span=span)
    assert caught.value.field == "span"
    assert reason in str(caught.value)


@pytest.fixture
def tracing_off() -> Iterator[None]:
    """No SDK TracerProvider set: every tracer hands out the API's no-op span."""
    _reset_global_tracer_provider()
    yield
    _reset_global_tracer_provider()


@pytest.mark.usefixtures("tracing_off")
def test_a_no_op_span_while_tracing_is_off_is_like_no_span(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trace.get_tracer("tests").start_as_current_span("answer") as span:
        assert not span.get_span_context().is_valid
        with caplog.at_level(logging.WARNING, logger="otel_feedback"):
            assert record_feedback("k", score=1, span=span) is None
            assert record_feedback("k", score=1, span=span.get_span_context()) is None
            assert record_feedback("k", score=1, span=trace.INVALID_SPAN) is None
        assert record_feedback("k", score=1, span=SpanContext(0, 0, False)) is None
        recording._not_recorded.flush()  # rate-limited: what the last 30 s summed, as at exit
    assert {r.levelname for r in caplog.records} == {"WARNING"}  # the no-span warning only
    assert "not recorded: no span current" in caplog.text


@pytest.mark.usefixtures("tracing_off")
@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"span": "a span"}, "span"),
        ({"span": trace.INVALID_SPAN, "trace_id": TRACE}, "trace_id"),
        ({"trace_id": "xyz"}, "trace_id"),
        ({"traceparent": "garbage"}, "traceparent"),
    ],
)
def test_malformed_targets_are_refused_while_tracing_is_off(
    arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidFeedbackError) as caught:
        record_feedback("k", score=1, **arguments)
    assert caught.value.field == field


def test_a_sampled_out_current_span_sends_the_record_directly(pipeline: Pipeline) -> None:
    unsampled = NonRecordingSpan(SpanContext(7, 9, is_remote=False, trace_flags=TraceFlags(0)))
    with trace.use_span(unsampled):
        record = record_feedback("k", score=1)
    assert record is not None
    built = record.to_feedback()
    assert record.trace_id == uuid.UUID(int=7)
    assert record.run_id == uuid.UUID(int=9)
    pipeline.flush()
    assert pipeline.feedback.get_finished_feedback() == (built,)
    assert pipeline.spans.get_finished_spans() == ()


def test_an_unsampled_traceparent_sends_the_record_directly(global_pipeline: Pipeline) -> None:
    record = record_feedback("k", score=1, traceparent=f"00-{TRACE}-{SPAN}-00")
    global_pipeline.flush()
    assert record is not None
    built = record.to_feedback()
    assert global_pipeline.feedback.get_finished_feedback() == (built,)
    assert global_pipeline.spans.get_finished_spans() == ()  # no carrier in an unsampled trace


def test_following_trace_sampling_is_opt_in(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FEEDBACK_FOLLOW_TRACE_SAMPLING", "true")
    unsampled = NonRecordingSpan(SpanContext(7, 9, is_remote=False, trace_flags=TraceFlags(0)))
    with trace.use_span(unsampled):
        assert record_feedback("k", score=1) is None
    assert record_feedback("k", score=1, traceparent=f"00-{TRACE}-{SPAN}-00") is None
    pipeline.flush()
    assert pipeline.feedback.get_finished_feedback() == ()


def test_without_a_global_sdk_provider_ids_still_reach_the_processors(pipeline: Pipeline) -> None:
    assert not hasattr(trace.get_tracer_provider(), "add_span_processor")
    record = record_feedback("k", score=1, trace_id=TRACE, run_id=SPAN)
    pipeline.flush()
    assert record is not None
    built = record.to_feedback()
    assert pipeline.feedback.get_finished_feedback() == (built,)


def test_with_nowhere_to_go_it_warns_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No processor anywhere in the process: not even one an earlier test left running.
    monkeypatch.setattr(handoff, "_sinks", weakref.WeakSet())
    caplog.set_level(logging.WARNING, logger="otel_feedback")
    assert record_feedback("k", score=1, trace_id=TRACE, run_id=SPAN) is None
    assert record_feedback("k", score=1, trace_id=TRACE, run_id=SPAN) is None
    assert len([r for r in caplog.records if "no FeedbackSpanProcessor" in r.getMessage()]) == 1


def test_several_processors_each_get_the_record_once(global_pipeline: Pipeline) -> None:
    other = make_pipeline()
    try:
        record = record_feedback("k", score=1, trace_id=TRACE, run_id=SPAN)
        global_pipeline.flush()
        other.flush()
        assert record is not None
        built = record.to_feedback()
        assert global_pipeline.feedback.get_finished_feedback() == (built,)
        # The other provider did not record the carrier: its processor has nothing to export.
        assert other.feedback.get_finished_feedback() == ()
    finally:
        other.provider.shutdown()


FIRST = """
import otel_feedback
otel_feedback.configure()
from opentelemetry import trace
from opentelemetry.propagate import inject
with trace.get_tracer("first").start_as_current_span("answer"):
    carrier = {}
    inject(carrier)
print(carrier["traceparent"])
"""

SECOND = """
import sys
import otel_feedback
otel_feedback.configure()
record = otel_feedback.record_feedback("user_rating", score=0, traceparent=sys.argv[1])
print(record.to_feedback().model_dump_json())
"""


def test_feedback_from_a_second_process_lands_on_the_first_ones_run(
    receiver: OTLPReceiver,
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.http_endpoint

    def run(code: str, *args: str, service: str) -> str:
        env = environment | {"OTEL_SERVICE_NAME": service}
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    traceparent = run(FIRST, service="frontend")
    printed = run(SECOND, traceparent, service="feedback-worker")

    spans = {s.span.name: s for s in receiver.spans()}
    answer, carrier = spans["answer"], spans["feedback user_rating"]
    assert traceparent.split("-")[1:3] == [f"{answer.trace_id:032x}", f"{answer.span_id:016x}"]
    assert carrier.trace_id == answer.trace_id
    assert carrier.parent_span_id == answer.span_id
    assert [int.from_bytes(link.span_id, "big") for link in carrier.span.links] == [answer.span_id]
    assert carrier.resource["service.name"] == "feedback-worker"
    (log,) = receiver.logs()
    assert (log.trace_id, log.span_id) == (answer.trace_id, answer.span_id)
    record = log.feedback
    assert record.model_dump_json() == printed
    assert record.run_id == uuid.UUID(int=answer.span_id)
